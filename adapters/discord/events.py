"""Gateway events: reactions become feedback, leaving a guild cancels its daily posts.

Raw reaction events are used, not `on_reaction_add`, because they arrive for
every message, cached or not - including messages posted before a restart.
Whether a message is one of ours is decided by the core from the
posted-messages table, so the cache plays no part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import cast

import discord

from adapters.discord.tenancy import PLATFORM, workspace
from bot import missed_reactions
from bot.database import is_transient
from bot.domain import ChannelRef
from bot.feedback import ReactionEvent, is_feedback_emoji
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)

MAX_EMOJI_CHARS = 64


def reaction_event(
    payload: discord.RawReactionActionEvent, bot_user_id: int | None
) -> ReactionEvent | None:
    """The platform-neutral event, or None for reactions that cannot be feedback.

    Ignored: the bot's own 👍/👎 (it adds them to every post), direct messages
    (no guild, so no tenant) and custom emoji (only Unicode emoji are feedback).
    """
    ids = [
        getattr(payload, name, None) for name in ("guild_id", "channel_id", "message_id", "user_id")
    ]
    # discord.py parsed the frame, but check anyway: a malformed event is dropped, never stored.
    if not all(type(i) is int for i in ids) or payload.user_id == bot_user_id:
        return None
    emoji = getattr(payload, "emoji", None)
    if not isinstance(emoji, discord.PartialEmoji) or emoji.id is not None:
        return None
    if not emoji.name or len(emoji.name) > MAX_EMOJI_CHARS:
        return None
    if payload.event_type not in ("REACTION_ADD", "REACTION_REMOVE"):
        return None
    return ReactionEvent(
        platform=PLATFORM,
        workspace=workspace(cast(int, payload.guild_id)),  # an int: `ids` was checked
        channel=str(payload.channel_id),
        message_id=str(payload.message_id),
        user=str(payload.user_id),
        emoji=emoji.name,
        active=payload.event_type == "REACTION_ADD",
    )


class ReactionHandler:
    """Stores reactions in arrival order per (member, message), outlasting database outages.

    discord.py runs every event handler as its own task and the core call runs in
    a worker thread, so a quick 👍-then-un-👍 could otherwise be stored in the
    wrong order; a per-(member, message) lock keeps arrival order. The core
    already retries a locked or restarting database for a while; beyond that the
    reaction is retried here, so none is lost to an outage of a few minutes.
    """

    retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0, 120.0)

    def __init__(self, core: PaperBot) -> None:
        self._core = core
        self._queues: dict[tuple[str, str, str], tuple[asyncio.Lock, list[int]]] = {}

    async def handle(
        self, payload: discord.RawReactionActionEvent, bot_user_id: int | None
    ) -> str | None:
        """Store one reaction. Returns the paper it counted for; never raises into discord.py."""
        event = reaction_event(payload, bot_user_id)
        return None if event is None else await self.store(event)

    async def store(self, event: ReactionEvent) -> str | None:
        """Store a platform-neutral reaction in order with the others of its member and message."""
        key = (event.workspace, event.user, event.message_id)
        lock, users = self._queues.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:  # asyncio.Lock is fair: waiters go in arrival order
                return await self._store(event)
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._queues[key]

    async def _store(self, event: ReactionEvent) -> str | None:
        delays = iter(self.retry_delays)
        while True:
            try:
                return await asyncio.to_thread(self._core.handle_reaction, event)
            except Exception as exc:
                delay = next(delays, None) if is_transient(exc) else None
                if delay is None:
                    log.exception(
                        "reaction by %s on message %s in guild %s not stored",
                        event.user,
                        event.message_id,
                        event.workspace,
                    )
                    return None
                log.warning("database unavailable, retrying a reaction in %.0f s", delay)
                await asyncio.sleep(delay)


async def recover_missed_reactions(
    client: discord.Client, core: PaperBot, handler: ReactionHandler
) -> int:
    """Read back the reactions made while the gateway session was lost (`bot.missed_reactions`).

    A RESUME replays the events of a dropped connection, but a new session (the
    first start, or one after an invalidated session) does not.
    """
    own_id = client.user.id if client.user else None

    async def reactions_of(channel: ChannelRef, message_id: str) -> AsyncIterator[tuple[str, str]]:
        try:
            message = await client.get_partial_messageable(int(channel.channel)).fetch_message(
                int(message_id)
            )
            for reaction in message.reactions:
                # Each emoji's users are one more request: only feedback emoji
                # (never custom ones) with someone besides the bot are worth it.
                emoji = reaction.emoji
                if not isinstance(emoji, str) or not is_feedback_emoji(emoji):
                    continue
                if reaction.count <= int(reaction.me):
                    continue
                async for member in reaction.users():
                    if member.id != own_id:
                        yield emoji, str(member.id)
        except discord.NotFound:
            return  # the message or channel was deleted: nothing to read back
        except discord.HTTPException as exc:
            log.warning("could not read the reactions on message %s: %s", message_id, exc)

    return await missed_reactions.read_back(core, PLATFORM, reactions_of, handler.store)


async def on_guild_left(core: PaperBot, guild_id: int) -> None:
    """Kicked, or the guild was deleted: stop posting there."""
    try:
        await asyncio.to_thread(core.cancel_tenant, PLATFORM, workspace(guild_id))
    except Exception:
        log.exception("could not cancel the subscriptions of guild %s", guild_id)
