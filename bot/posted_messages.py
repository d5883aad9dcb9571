"""Which paper each message the bot posted shows, so a reaction on it can be resolved."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.database import dialect_insert
from bot.domain import ChannelRef
from bot.models import PostedMessage, table, utcnow


def record(
    session: Session,
    channel: ChannelRef,
    posts: Sequence[tuple[str, str]],
    delivery_id: int | None = None,
) -> None:
    """Upsert [(message_id, paper_id)] of one channel."""
    record_many(session, [(channel, posts, delivery_id)])


def record_many(
    session: Session,
    batch: Sequence[tuple[ChannelRef, Sequence[tuple[str, str]], int | None]],
) -> None:
    """Upsert the posted messages of many channels: [(channel, [(message_id, paper_id)], delivery_id)].

    One executemany of one compiled statement, whatever the batch. A port may
    record each message the moment it is out (so reactions during a long post
    already count) and the ledger records them again with the delivery id; the
    second write must not lose what the first one knew.
    """
    now = utcnow()
    rows = [
        {
            "platform": channel.platform,
            "workspace": channel.workspace,
            "channel_id": channel.channel,
            "message_id": message_id,
            "paper_id": paper_id,
            "delivery_id": delivery_id,
            "posted_at": now,
        }
        for channel, posts, delivery_id in batch
        for message_id, paper_id in posts
    ]
    if not rows:
        return
    insert = dialect_insert(session)(table(PostedMessage))
    statement = insert.on_conflict_do_update(
        index_elements=["platform", "workspace", "channel_id", "message_id"],
        set_={
            "paper_id": insert.excluded.paper_id,
            "delivery_id": sa.func.coalesce(
                insert.excluded.delivery_id, table(PostedMessage).c.delivery_id
            ),
        },
    )
    session.connection().execute(statement, rows)
