"""posted_messages: an index to find a platform's recent posts

After a gateway session is lost, the Discord adapter reads the reactions on
its recent posts again (reactions made while it was away are never sent);
this index keeps that lookup from scanning every message ever posted.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_posted_messages_recent", "posted_messages", ["platform", "posted_at"])


def downgrade() -> None:
    op.drop_index("ix_posted_messages_recent", table_name="posted_messages")
