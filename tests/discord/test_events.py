"""Reaction events: which ones count, arrival order, and surviving a database outage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import discord
import pytest
from sqlalchemy.exc import OperationalError

from adapters.discord.events import ReactionHandler, reaction_event
from bot import missed_reactions
from bot.domain import ChannelRef, UserRef
from bot.feedback import ReactionEvent
from bot.paperbot import PaperBot
from tests.discord.helpers import USER_ID, reaction
from tests.fakes.discord_server import BOT_ID, CHANNEL_ID, GUILD_ID
from tests.helpers import paper

HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
ME = UserRef("discord", str(GUILD_ID), str(USER_ID))
POST = "5000"


def raw(data: dict, add: bool = True) -> discord.RawReactionActionEvent:
    emoji = discord.PartialEmoji.from_dict(data["emoji"])
    return discord.RawReactionActionEvent(data, emoji, "REACTION_ADD" if add else "REACTION_REMOVE")


@pytest.fixture
def posted(core: PaperBot) -> PaperBot:
    core.ingest([paper("2510.00001")])
    core.record_posts(HERE, [(POST, "2510.00001")])
    return core


def test_only_member_unicode_reactions_in_a_guild_are_feedback() -> None:
    assert reaction_event(raw(reaction(POST, "👍")), BOT_ID) == ReactionEvent(
        "discord", str(GUILD_ID), str(CHANNEL_ID), POST, str(USER_ID), "👍", active=True
    )
    assert reaction_event(raw(reaction(POST, "👍", user_id=BOT_ID)), BOT_ID) is None
    custom = reaction(POST)
    custom["emoji"] = {"id": "123", "name": "thumbsup"}
    assert reaction_event(raw(custom), BOT_ID) is None
    direct = reaction(POST)
    del direct["guild_id"]
    assert reaction_event(raw(direct), BOT_ID) is None


async def test_add_then_remove_is_stored_in_that_order(posted: PaperBot) -> None:
    handler = ReactionHandler(posted)
    for _ in range(5):
        await asyncio.gather(
            handler.handle(raw(reaction(POST)), BOT_ID),
            handler.handle(raw(reaction(POST), add=False), BOT_ID),
        )
        assert posted.profile(ME).likes == 0
    await handler.handle(raw(reaction(POST)), BOT_ID)
    assert posted.profile(ME).likes == 1


async def test_a_reaction_outlasts_a_database_outage_in_order(
    posted: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = ReactionHandler(posted)
    handler.retry_delays = (0.0, 0.0, 0.0)
    real = posted.handle_reaction
    failures = iter([True, True])
    lock = threading.Lock()

    def flaky(event: ReactionEvent) -> str | None:
        with lock:  # the first two calls find the database down (after the core's own retries)
            if next(failures, False):
                raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real(event)

    monkeypatch.setattr(posted, "handle_reaction", flaky)
    added, removed = await asyncio.gather(
        handler.handle(raw(reaction(POST)), BOT_ID),
        handler.handle(raw(reaction(POST), add=False), BOT_ID),
    )
    assert added == removed == "2510.00001"
    assert posted.profile(ME).likes == 0  # the removal came last and still wins


async def test_a_bug_is_logged_not_retried(
    posted: PaperBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(event: ReactionEvent) -> None:
        calls.append(event)
        raise KeyError("bug")

    monkeypatch.setattr(posted, "handle_reaction", broken)
    assert await ReactionHandler(posted).handle(raw(reaction(POST)), BOT_ID) is None
    assert len(calls) == 1
    assert "not stored" in caplog.text


@pytest.mark.parametrize("emoji", ["👍🏽", "👍\ufe0f", "👍🏿"])
async def test_a_thumb_with_a_skin_tone_counts_as_the_thumb(posted: PaperBot, emoji: str) -> None:
    handler = ReactionHandler(posted)
    assert await handler.handle(raw(reaction(POST, emoji)), BOT_ID) == "2510.00001"
    assert posted.profile(ME).likes == 1
    await handler.handle(raw(reaction(POST, emoji), add=False), BOT_ID)
    assert posted.profile(ME).likes == 0


async def test_reading_back_a_post_stores_its_thumbs_and_bookmarks(posted: PaperBot) -> None:
    """After an outage every feedback emoji left on a recent post counts; others do not."""
    other = UserRef("discord", str(GUILD_ID), "77")

    async def reactions_of(channel: ChannelRef, message_id: str) -> AsyncIterator[tuple[str, str]]:
        assert (channel, message_id) == (HERE, POST)
        for emoji, who in (("👍", ME.user), ("🔖", ME.user), ("🎉", ME.user), ("👎", other.user)):
            yield emoji, who

    handler = ReactionHandler(posted)
    assert await missed_reactions.read_back(posted, "discord", reactions_of, handler.store) == 3
    mine, theirs = posted.profile(ME), posted.profile(other)
    assert (mine.likes, mine.dislikes, mine.saved) == (1, 0, 1)
    assert (theirs.likes, theirs.dislikes, theirs.saved) == (0, 1, 0)


async def test_a_read_back_that_cannot_list_the_posts_is_logged_not_raised(
    posted: PaperBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("the database is down"))

    async def reactions_of(channel: ChannelRef, message_id: str) -> AsyncIterator[tuple[str, str]]:
        raise AssertionError("no post to read")
        yield  # pragma: no cover

    monkeypatch.setattr(posted, "recent_posts", down)
    handler = ReactionHandler(posted)
    assert await missed_reactions.read_back(posted, "discord", reactions_of, handler.store) == 0
    assert "could not list recent posts" in caplog.text
