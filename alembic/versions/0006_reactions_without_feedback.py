"""reactions: drop rows that hold no feedback any more

Taking back the last 👍, 👎 or 🔖 on a paper used to leave its row with every
timestamp empty, and the paper then counted as rated: never shown again, and
no longer a skipped pick. Such rows are now deleted when the feedback is taken
back; this removes the ones left from before.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM reactions WHERE up_at IS NULL AND down_at IS NULL AND saved_at IS NULL"
    )


def downgrade() -> None:
    pass  # the deleted rows held nothing: there is nothing to restore
