"""The posting port: how the scheduler puts picks in a channel, on any platform.

Each adapter implements `PostingPort`. Sending is idempotent per key where the
platform allows (Discord's nonce, the local platform's unique key); with
`resume=True` a port first looks for messages it already sent under the key,
so a retry after a crash does not post twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.domain import ChannelRef, Pick


class PostingError(Exception):
    """A send that failed for a reason the scheduler handles, not a crash."""


class ChannelNotFound(PostingError):
    pass


class MissingPermission(PostingError):
    pass


class RateLimited(PostingError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class PostingPort(Protocol):
    platform: str

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        """Post one message per pick; return their message ids, in order."""
        ...

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        """Post a short plain message (for example "no new papers today")."""
        ...


# `PaperBot.record_posts`: remember which paper each posted message shows.
RecordPosts = Callable[[ChannelRef, Sequence[tuple[str, str]]], None]


async def record_at_once(
    record: RecordPosts, channel: ChannelRef, message_id: str, paper_id: str
) -> None:
    """Record a pick's message the moment it is out, not after the whole post.

    A reaction is resolved through the recorded messages: one on the first pick
    while the rest are still going out (seconds on a chat platform, far longer
    if a later send fails and waits for a retry) would otherwise be dropped.
    The ledger's own record, with the delivery id, merges into the same row.
    """
    await asyncio.to_thread(record, channel, [(message_id, paper_id)])


def message_key(key: str, index: int) -> str:
    """The idempotency key of the index-th message of a post."""
    return f"{key}:{index}"
