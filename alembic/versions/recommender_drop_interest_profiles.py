"""drop user_interest_profiles: interest models are cached in memory under a stamp of their inputs

The table held a per-user `feedback_version` to invalidate cached models. The
model is now keyed by its inputs (the user's reactions, follows, the catalogue
and the day), which is exact even across a forget, so the counter and the
extra write on every reaction are gone.

Revision ID: recommender
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'recommender'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table('user_interest_profiles')


def downgrade() -> None:
    op.create_table('user_interest_profiles',
    sa.Column('platform', sa.String(length=64), nullable=False),
    sa.Column('workspace', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('feedback_version', sa.Integer(), nullable=False),
    sa.Column('built_version', sa.Integer(), nullable=False),
    sa.Column('model', sa.LargeBinary(), nullable=True),
    sa.Column('built_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['platform', 'workspace', 'user_id'], ['users.platform', 'users.workspace', 'users.user_id'], name='fk_user_interest_profiles_user', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('platform', 'workspace', 'user_id')
    )
