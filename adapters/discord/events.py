"""Gateway events: reactions become feedback, leaving a guild cancels its daily posts.

Raw reaction events are used, not `on_reaction_add`, because they arrive for
every message, cached or not - including messages posted before a restart.
Whether a message is one of ours is decided by the core from the
posted-messages table, so the cache plays no part.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from adapters.discord.tenancy import PLATFORM, workspace
from bot.feedback import ReactionEvent
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
        workspace=workspace(payload.guild_id),
        channel=str(payload.channel_id),
        message_id=str(payload.message_id),
        user=str(payload.user_id),
        emoji=emoji.name,
        active=payload.event_type == "REACTION_ADD",
    )


async def on_reaction(
    core: PaperBot, payload: discord.RawReactionActionEvent, bot_user_id: int | None
) -> str | None:
    """Store one reaction. Returns the paper it counted for; never raises into discord.py."""
    try:
        event = reaction_event(payload, bot_user_id)
        if event is None:
            return None
        return await asyncio.to_thread(core.handle_reaction, event)
    except Exception:
        log.exception(
            "reaction on message %s in guild %s not stored",
            getattr(payload, "message_id", "?"),
            getattr(payload, "guild_id", "?"),
        )
        return None


async def on_guild_left(core: PaperBot, guild_id: int) -> None:
    """Kicked, or the guild was deleted: stop posting there."""
    try:
        await asyncio.to_thread(core.cancel_tenant, PLATFORM, workspace(guild_id))
    except Exception:
        log.exception("could not cancel the subscriptions of guild %s", guild_id)
