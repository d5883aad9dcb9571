"""The Discord `PostingPort`: the scheduler's daily picks as one message per pick.

Each message carries the pick's embed and its 👍 👎 🔖 buttons; the bot then adds
👍 and 👎 reactions so people can simply click them. Sending is idempotent:
each message has a deterministic nonce with `enforce_nonce`, so Discord returns
the existing message when a send is retried (discord.py itself retries on 5xx),
and `resume=True` first looks in the channel for picks already posted. A 429 is
waited out by discord.py (it honours `retry_after`) up to the client's
`max_ratelimit_timeout`; beyond that the port raises `RateLimited`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import discord

from adapters.discord.buttons import FEEDBACK_ID, feedback_view
from adapters.discord.embeds import CONTENT_LIMIT, clip, defuse_mentions, pick_embed
from adapters.discord.tenancy import PLATFORM
from bot.domain import ChannelRef, Pick
from bot.models import utcnow
from bot.posting import (
    ChannelNotFound,
    MissingPermission,
    PostingError,
    RateLimited,
    message_key,
    record_at_once,
)

if TYPE_CHECKING:
    from adapters.discord.client import PaperClient

log = logging.getLogger(__name__)

NONCE_CHARS = 25  # Discord's maximum nonce length
FEEDBACK_REACTIONS = ("👍", "👎")
# What a daily post cannot go without in its channel (the bot's own 👍/👎 can: the
# buttons work without them), by discord.Permissions flag and as Discord names it.
POST_PERMISSIONS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
}
# How far back `resume` looks for picks already posted; a daily post is at most ten messages.
RESUME_HISTORY = 50
# How far back a resumed post looks for its own recorded messages. An unfinished
# post is resumed within PAPERBOT_POST_GRACE of its claim (6 h by default), or
# given up; a longer grace still has the channel's history to go on.
RESUME_LOOKBACK = timedelta(days=1)
NO_MENTIONS = discord.AllowedMentions.none()


def nonce(channel: ChannelRef, key: str) -> str:
    """A deterministic nonce of 25 characters from the channel and the message's key.

    The scheduler's key names the delivery (channel and day), `message_key` adds
    the index; hashing keeps it within Discord's limit whatever the key's length.
    """
    text = f"{channel.workspace}/{channel.channel}/{key}"
    return hashlib.sha256(text.encode()).hexdigest()[:NONCE_CHARS]


class DiscordPostingPort:
    platform = PLATFORM

    # Pauses before re-sending after a dropped connection (discord.py retries 5xx itself,
    # but not a reset on Linux). The nonce makes a re-send of a stored message harmless.
    retry_delays: tuple[float, ...] = (0.5, 2.0)

    def __init__(self, client: PaperClient) -> None:
        self._client = client

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        target = await self._target(channel)
        already = await self._already_posted(channel, target) if resume else {}
        ids = []
        for i, pick in enumerate(picks):
            message_id = already.get(pick.paper_id)
            if message_id is None:
                message = await self._send(
                    target,
                    embed=pick_embed(pick),
                    view=feedback_view([pick]),
                    nonce=nonce(channel, message_key(key, i)),
                )
                message_id = str(message.id)
                await record_at_once(
                    self._client.core.record_posts, channel, message_id, pick.paper_id
                )
                await self._add_reactions(message)
            ids.append(message_id)
        return ids

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        target = await self._target(channel)
        message = await self._send(
            target, content=clip(defuse_mentions(text), CONTENT_LIMIT), nonce=nonce(channel, key)
        )
        return str(message.id)

    async def _target(self, channel: ChannelRef) -> discord.PartialMessageable:
        if channel.platform != PLATFORM:
            raise ValueError(f"not a Discord channel: {channel}")
        await self._client.wait_logged_in()
        try:
            channel_id, guild_id = int(channel.channel), int(channel.workspace)
        except ValueError:
            raise ChannelNotFound(f"not a Discord channel id: {channel.channel[:40]}") from None
        # A partial messageable needs no cache or fetch: posting works before READY too.
        return self._client.get_partial_messageable(channel_id, guild_id=guild_id)

    async def _send(self, target: discord.PartialMessageable, **kwargs: object) -> discord.Message:
        delays = iter(self.retry_delays)
        while True:
            try:
                return await target.send(allowed_mentions=NO_MENTIONS, **kwargs)  # type: ignore[call-overload]
            except discord.HTTPException as exc:
                raise posting_error(exc, target.id) from exc
            except discord.RateLimited as exc:
                raise RateLimited(exc.retry_after) from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                delay = next(delays, None)
                if delay is None:
                    raise PostingError(f"connection to Discord lost: {exc}"[:300]) from exc
                log.warning("connection lost posting to %s, retrying: %s", target.id, exc)
                await asyncio.sleep(delay)

    async def _add_reactions(self, message: discord.Message) -> None:
        for emoji in FEEDBACK_REACTIONS:
            try:
                await message.add_reaction(emoji)
            except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
                # Without Add Reactions (or a connection) the post still works through its buttons.
                log.warning("could not add %s to message %s: %s", emoji, message.id, exc)
                return

    async def _already_posted(
        self, channel: ChannelRef, target: discord.PartialMessageable
    ) -> dict[str, str]:
        """paper id -> message id of the picks a resumed post already sent.

        The post's messages were recorded as they went out; the channel's last
        messages add one whose record a crash cut off. Reading history alone
        missed them in a busy channel: a resume comes a lease after the crash,
        when Discord's nonce no longer deduplicates, and more than
        `RESUME_HISTORY` messages may have been written since. A channel is never
        posted a paper twice while others are left (`channel_picks`), so a
        recent record of one of the picks is this post's.
        """
        since = utcnow() - RESUME_LOOKBACK
        recorded = await asyncio.to_thread(self._client.core.posted_papers, channel, since)
        return {**await self._posted_papers(target), **recorded}

    async def _posted_papers(self, target: discord.PartialMessageable) -> dict[str, str]:
        """paper id -> message id of picks this bot posted among the channel's last messages."""
        me = self._client.user
        found: dict[str, str] = {}
        try:
            async for message in target.history(limit=RESUME_HISTORY):
                if me is None or message.author.id != me.id:
                    continue
                for row in message.components:
                    for component in getattr(row, "children", ()):
                        match = FEEDBACK_ID.fullmatch(getattr(component, "custom_id", None) or "")
                        if match:
                            found.setdefault(match["paper_id"], str(message.id))
        except discord.HTTPException as exc:
            raise posting_error(exc, target.id) from exc
        return found


def posting_error(exc: discord.HTTPException, channel_id: int) -> PostingError:
    """Discord's answer as the error the scheduler understands."""
    if isinstance(exc, discord.NotFound):
        return ChannelNotFound(f"Discord channel {channel_id} not found")
    if isinstance(exc, discord.Forbidden):
        return MissingPermission(
            f"missing permission in Discord channel {channel_id}: {exc.text[:200]}"
        )
    if exc.status == 429:
        retry_after = float(exc.response.headers.get("Retry-After", 1.0))
        return RateLimited(retry_after)
    return PostingError(f"Discord answered {exc.status}: {exc.text[:200]}")
