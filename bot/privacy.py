"""Deleting everything about a user: `/papers forget`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from bot.domain import UserRef

USER_COLUMNS = ("platform", "workspace", "user_id")


def user_tables() -> list[sa.Table]:
    """Every table with a user key, found from the metadata so new tables are covered too.

    Children come first, so the count is exact rather than hidden in cascades.
    """
    tables = [
        t for t in SQLModel.metadata.sorted_tables if all(c in t.columns for c in USER_COLUMNS)
    ]
    return list(reversed(tables))


def forget(session: Session, user: UserRef) -> int:
    deleted = 0
    for table in user_tables():
        result = session.execute(
            sa.delete(table).where(
                table.c.platform == user.platform,
                table.c.workspace == user.workspace,
                table.c.user_id == user.user,
            )
        )
        deleted += result.rowcount or 0
    return deleted
