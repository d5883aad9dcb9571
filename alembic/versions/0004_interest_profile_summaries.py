"""user_interest_profiles keep the learned interests' summary under a stamp of their inputs

The table first held a serialised model and a per-user feedback counter bumped
on every reaction. Models are now rebuilt in memory from their inputs (they
depend on the whole catalogue's vocabulary, too large to store per user), so
the table keeps what `/papers profile` shows, stamped with a digest of the
inputs. The rows are derived data: recreating the table loses nothing.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def _create(*columns: sa.Column) -> None:
    op.create_table(
        "user_interest_profiles",
        *[sa.Column(name, sa.String(length=64), nullable=False)
          for name in ("platform", "workspace", "user_id")],
        *columns,
        sa.ForeignKeyConstraint(
            ["platform", "workspace", "user_id"],
            ["users.platform", "users.workspace", "users.user_id"],
            name="fk_user_interest_profiles_user",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("platform", "workspace", "user_id"),
    )


def upgrade() -> None:
    op.drop_table("user_interest_profiles")
    _create(
        sa.Column("stamp", sa.String(length=64), nullable=False),
        sa.Column("interests", sa.JSON(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_interest_profiles")
    _create(
        sa.Column("feedback_version", sa.Integer(), nullable=False),
        sa.Column("built_version", sa.Integer(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=True),
        sa.Column("built_at", sa.DateTime(), nullable=True),
    )
