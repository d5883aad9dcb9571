"""deliveries: the feed day and each pick's score and reason, stored at claim time

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_day", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("pick_notes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("pick_notes")
        batch_op.drop_column("feed_day")
