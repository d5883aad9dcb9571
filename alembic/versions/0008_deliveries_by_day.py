"""deliveries: indexes for the tick's reads of the ledger, by day and by feed day

Every minute the tick looks up the ledger rows of today's local days, and when
posts are due, the newest feed day each channel was posted from. Without these
indexes both read the whole ledger, a row per channel and day since the bot
started. The feed-day index leads with the status: the lookup asks for posted
rows by status too, and SQLite (which keeps no statistics here) would answer
it from the status index alone, reading every posted row there is.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deliveries_day", "deliveries", ["day"])
    op.create_index("ix_deliveries_status_feed_day", "deliveries", ["status", "feed_day"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_feed_day", table_name="deliveries")
    op.drop_index("ix_deliveries_day", table_name="deliveries")
