"""impressions: an index by when each was shown, for the batches of picks

For someone who never 👎, the model reads the batches of picks their likes
were in (`bot.skipped_picks`): the impressions shown at the same time as a
liked paper. Without this index SQLite walks every impression of the person
and looks each row up in the table for its `shown_at`; with it, it seeks each
batch, and `paper_id` at the end answers the read from the index alone.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_impressions_batches",
        "impressions",
        ["platform", "workspace", "user_id", "shown_at", "paper_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_impressions_batches", table_name="impressions")
