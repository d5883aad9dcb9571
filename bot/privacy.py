"""Deleting everything about a user: `/papers forget`.

The tables are found from the SQLModel metadata, not listed by hand, so a table
added later is covered without anyone remembering to come here:

- a table keyed by (platform, workspace, user_id) holds rows ABOUT the user:
  they are deleted;
- a table with (platform, workspace) and a `created_by` column holds shared rows
  the user merely made (a channel's subscription): the row stays for the
  channel, the user's id is erased from it.

The request itself is kept, as a digest of the id (`ForgetRequest`), for as
long as adapters read back the reactions on recent posts: the person's 👍/👎
stay on those posts, and reading them back must not undo the forget.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col

import bot.models  # noqa: F401  (registers every table on the metadata)
from bot.database import rowcount, upsert
from bot.domain import UserRef
from bot.feedback import READ_BACK_WINDOW
from bot.models import ForgetRequest, utcnow

TENANT_COLUMNS = ("platform", "workspace")
OWNER_COLUMN = "user_id"
AUTHOR_COLUMN = "created_by"


def user_tables() -> list[sa.Table]:
    """Every table with rows about one user, children first so the count is exact."""
    tables = [
        t
        for t in SQLModel.metadata.sorted_tables
        if all(c in t.columns for c in (*TENANT_COLUMNS, OWNER_COLUMN))
    ]
    return list(reversed(tables))


def authored_tables() -> list[sa.Table]:
    """Every tenant table that records which user created a row."""
    return [
        t
        for t in SQLModel.metadata.sorted_tables
        if all(c in t.columns for c in (*TENANT_COLUMNS, AUTHOR_COLUMN))
    ]


def forget(session: Session, user: UserRef) -> int:
    """Delete the user's rows in their tenant, and erase them as author. Returns the row count.

    Running it again finds nothing and returns 0; the same id in another
    workspace or platform is a different person and is left alone.
    """
    changed = 0
    for table in user_tables():
        result = session.execute(
            sa.delete(table).where(
                table.c.platform == user.platform,
                table.c.workspace == user.workspace,
                table.c[OWNER_COLUMN] == user.user,
            )
        )
        changed += rowcount(result)
    for table in authored_tables():
        result = session.execute(
            sa.update(table)
            .where(
                table.c.platform == user.platform,
                table.c.workspace == user.workspace,
                table.c[AUTHOR_COLUMN] == user.user,
            )
            .values({AUTHOR_COLUMN: None})
        )
        changed += rowcount(result)
    now = utcnow()
    forget_old_requests(session, now)
    row = {"platform": user.platform, "workspace": user.workspace, "user_digest": _digest(user)}
    upsert(session, ForgetRequest, [{**row, "forgotten_at": now}], update=["forgotten_at"])
    return changed


def forget_old_requests(session: Session, now: datetime) -> int:
    """Delete the forget requests older than the read-back window: no read-back can
    reach the posts they guard any more. Returns how many."""
    old = sa.delete(ForgetRequest).where(col(ForgetRequest.forgotten_at) < now - READ_BACK_WINDOW)
    return rowcount(session.execute(old))


def forgotten_at(session: Session, user: UserRef) -> datetime | None:
    """When this user last asked to be forgotten, within `READ_BACK_WINDOW`."""
    return session.scalar(
        sa.select(col(ForgetRequest.forgotten_at)).where(
            col(ForgetRequest.platform) == user.platform,
            col(ForgetRequest.workspace) == user.workspace,
            col(ForgetRequest.user_digest) == _digest(user),
            col(ForgetRequest.forgotten_at) >= utcnow() - READ_BACK_WINDOW,
        )
    )


def _digest(user: UserRef) -> str:
    return hashlib.sha256(f"{user.platform}\0{user.workspace}\0{user.user}".encode()).hexdigest()
