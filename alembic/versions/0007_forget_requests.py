"""forget_requests: a `/papers forget` is remembered while reactions are read back

An adapter back from an outage re-stores the reactions on its recent posts.
The emoji of someone who asked to be forgotten stay on those posts; this table
(a digest of their id, and when they asked) keeps the read-back from storing
them again. Rows older than the read-back window are deleted daily.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forget_requests",
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("user_digest", sa.String(length=64), nullable=False),
        sa.Column("forgotten_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "workspace", "user_digest"),
    )


def downgrade() -> None:
    op.drop_table("forget_requests")
