"""The `local` platform: a posting port that writes messages into the database.

The web adapter shows these messages as its channel; tests and `paperbot tick`
use it for channels such as `local:demo:#general`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import col

from bot.database import Database, dialect_insert
from bot.domain import ChannelRef, Pick
from bot.models import Channel, LocalMessage, table, utcnow
from bot.posting import message_key

PLATFORM = "local"


@dataclass(frozen=True, slots=True)
class LocalPost:
    """One message in a local channel: a pick, or a plain notice."""

    id: int
    created_at: datetime
    pick: Pick | None
    text: str | None


class LocalPostingPort:
    platform = PLATFORM

    def __init__(self, db: Database) -> None:
        self._db = db

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        bodies = [
            (message_key(key, i), pick.paper_id, _pick_body(pick)) for i, pick in enumerate(picks)
        ]
        return await asyncio.to_thread(self._store, channel, bodies)

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        ids = await asyncio.to_thread(self._store, channel, [(key, None, {"text": text})])
        return ids[0]

    def history(self, channel: ChannelRef, limit: int = 100) -> list[LocalPost]:
        """The channel's newest `limit` messages, oldest first, as a chat shows them."""
        with self._db.read() as session:
            rows = session.scalars(
                sa.select(LocalMessage)
                .where(
                    col(LocalMessage.workspace) == channel.workspace,
                    col(LocalMessage.channel_id) == channel.channel,
                )
                .order_by(col(LocalMessage.id).desc())
                .limit(limit)
            ).all()
        return [
            LocalPost(
                id=row.id or 0,
                created_at=row.created_at,
                pick=_pick_from_body(row.body) if row.paper_id else None,
                text=None if row.paper_id else str(row.body.get("text", "")),
            )
            for row in reversed(rows)
        ]

    def channels(self, workspace: str) -> list[str]:
        """The workspace's local channels: those with messages, and those a command
        named (a subscription creates its channel before its first post)."""
        with self._db.read() as session:
            named = sa.select(col(Channel.channel_id)).where(
                col(Channel.platform) == PLATFORM, col(Channel.workspace) == workspace
            )
            posted = sa.select(col(LocalMessage.channel_id)).where(
                col(LocalMessage.workspace) == workspace
            )
            return sorted(session.scalars(sa.union(named, posted)).all())

    def _store(
        self, channel: ChannelRef, bodies: Sequence[tuple[str, str | None, dict[str, object]]]
    ) -> list[str]:
        keys = [key for key, _, _ in bodies]
        now = utcnow()
        rows = [
            {
                "workspace": channel.workspace,
                "channel_id": channel.channel,
                "idempotency_key": key,
                "paper_id": paper_id,
                "body": body,
                "created_at": now,
            }
            for key, paper_id, body in bodies
        ]

        def work(session: sa.orm.Session) -> list[str]:
            # The unique key makes a re-send after a crash return the first messages.
            # The table, not the entity, on the session's connection: no ORM work
            # for rows nobody loads (a daily fan-out sends thousands of these).
            messages = table(LocalMessage)
            ids = dict(
                session.connection()
                .execute(
                    dialect_insert(session)(messages)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(messages.c.idempotency_key, messages.c.id)
                )
                .all()
            )
            if resent := [key for key in keys if key not in ids]:
                ids.update(
                    session.execute(
                        sa.select(col(LocalMessage.idempotency_key), col(LocalMessage.id)).where(
                            col(LocalMessage.idempotency_key).in_(resent)
                        )
                    ).all()
                )
            return [str(ids[key]) for key in keys]

        return self._db.write_retrying(work, what="post local message")


def _pick_body(pick: Pick) -> dict[str, object]:
    body = asdict(pick)
    body["listed_on"] = pick.listed_on.isoformat() if pick.listed_on else None
    body["authors"] = list(pick.authors)
    return body


def _pick_from_body(body: dict[str, object]) -> Pick:
    # Only the fields Pick has now: a message stored by another version still renders.
    fields = {k: v for k, v in body.items() if k in Pick.__dataclass_fields__}
    listed_on = fields.get("listed_on")
    fields["listed_on"] = date.fromisoformat(listed_on) if isinstance(listed_on, str) else None
    fields["authors"] = tuple(fields.get("authors") or ())  # type: ignore[arg-type]
    return Pick(**fields)  # type: ignore[arg-type]
