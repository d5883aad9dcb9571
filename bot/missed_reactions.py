"""Reading back the reactions on recent posts that were made while an adapter was away.

A platform drops events it could not deliver (a Discord session that had to
re-identify, a Slack app stopped for longer than Slack retries), so an adapter
back in service reads the reactions on its recent posts again. Each adapter
only says how to read one message's reactions; which posts, which emoji, and
storing them are the same everywhere. Storing a stored reaction changes
nothing, so this only adds what was missed. A reaction *removed* while away
stays counted: a 👍 missing from a message may have been given with a button.
Nor does it bring back what someone asked to forget: their emoji stay on posts
made before they asked (`bot.privacy`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from bot.domain import ChannelRef
from bot.feedback import READ_BACK_WINDOW, ReactionEvent, is_feedback_emoji
from bot.models import utcnow
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)

MAX_POSTS = 300  # at most this many of the posts within READ_BACK_WINDOW are read again

# (emoji, user id) of every reaction on one message; none when it cannot be read.
ReactionsOf = Callable[[ChannelRef, str], AsyncIterator[tuple[str, str]]]
Store = Callable[[ReactionEvent], Awaitable[object]]


async def read_back(core: PaperBot, platform: str, reactions_of: ReactionsOf, store: Store) -> int:
    """Store the feedback reactions on the platform's recent posts. Returns how many were read."""
    try:
        posts = await asyncio.to_thread(
            core.recent_posts, platform, utcnow() - READ_BACK_WINDOW, MAX_POSTS
        )
    except Exception:
        log.exception("could not list recent posts: reactions made while away are not read back")
        return 0
    seen = 0
    for channel, message_id in posts:
        async for emoji, user in reactions_of(channel, message_id):
            if is_feedback_emoji(emoji):
                await store(
                    ReactionEvent(
                        platform,
                        channel.workspace,
                        channel.channel,
                        message_id,
                        user,
                        emoji,
                        active=True,
                        read_back=True,
                    )
                )
                seen += 1
    log.info("%s: re-read %d reaction(s) on %d recent post(s)", platform, seen, len(posts))
    return seen
