"""The real discord.py client, started as `paperbot run` starts it, against the fake Discord.

Gateway and REST are both exercised: login and command sync, READY and
GUILD_CREATE, a daily post through the port, `/papers today` and reactions
injected through the gateway, a dropped connection that resumes, an
invalidated session that identifies again, and leaving the guild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from adapters.discord import DiscordAdapter, create_adapter
from bot.domain import ChannelRef, UserRef
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.discord.helpers import (
    OTHER_USER_ID,
    USER_ID,
    answers,
    command,
    option,
    posted_messages,
    reaction,
)
from tests.fakes.discord_server import BOT_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.helpers import eventually, topical_papers

HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
ME = UserRef("discord", str(GUILD_ID), str(USER_ID))
BOT = UserRef("discord", str(GUILD_ID), str(BOT_ID))
OTHER = UserRef("discord", str(GUILD_ID), str(OTHER_USER_ID))


@pytest.fixture
async def adapter(
    fake: FakeDiscord, core: PaperBot, discord_settings: Settings
) -> AsyncIterator[DiscordAdapter]:
    fake.heartbeat_interval_ms = 300  # short, so heartbeats and ACKs happen during the test
    settings = discord_settings.model_copy(update={"discord_token": SecretStr("fake-token")})
    running = create_adapter(core, settings)
    task = asyncio.create_task(running.run())
    await fake.wait_for(lambda: fake.identifies)
    await asyncio.wait_for(running.client.wait_until_ready(), 10)
    yield running
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert running.client.is_closed()


async def test_gateway_commands_reactions_resume_and_restart(
    adapter: DiscordAdapter, fake: FakeDiscord, core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    core.ingest(topical_papers(per_topic=2))
    client = adapter.client
    assert client.get_guild(GUILD_ID) is not None  # GUILD_CREATE arrived
    await fake.wait_for(lambda: fake.heartbeats)

    # The scheduler's daily post, through the adapter's port.
    picks = core.channel_picks(HERE, limit=2)
    ids = await adapter.port.send_picks(HERE, picks, "2025-10-06")
    assert posted_messages(core) == {i: p.paper_id for i, p in zip(ids, picks, strict=True)}
    for post in fake.calls("POST", f"/channels/{CHANNEL_ID}/messages"):
        assert post.body["allowed_mentions"] == {"parse": []}
        assert post.body["enforce_nonce"] is True and len(post.body["nonce"]) <= 25

    # /papers today through the gateway.
    today = command("today", option("count", 2))
    await fake.dispatch("INTERACTION_CREATE", today)
    await fake.wait_for(lambda: len(answers(fake, today)) == 2)
    deferral, followup = answers(fake, today)
    assert deferral.body == {"type": 5, "data": {"flags": 64}}
    assert len(followup.body["embeds"]) == 2
    assert followup.body["allowed_mentions"] == {"parse": []}

    # A 👍 on the first post counts; the bot's own reactions do not.
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction(ids[0], "👍", user_id=BOT_ID))
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction(ids[0], "👍"))
    await eventually(lambda: core.profile(ME).likes == 1, "the like is stored")
    assert core.profile(BOT).likes == 0

    # The connection drops; a removal sent meanwhile is replayed on RESUME.
    await fake.drop()
    await fake.dispatch("MESSAGE_REACTION_REMOVE", reaction(ids[0], "👍"))
    await fake.wait_for(lambda: fake.resumes == 1)
    await eventually(lambda: core.profile(ME).likes == 0, "the removal is stored")

    # A message posted before a restart: in posted_messages, never seen by this client.
    (earlier,) = core.channel_picks(HERE, limit=1)
    core.record_posts(HERE, [("123456789012345678", earlier.paper_id)])
    assert client._connection._get_message(123456789012345678) is None
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction("123456789012345678", "👎"))
    await eventually(lambda: core.profile(ME).dislikes == 1, "the dislike is stored")

    # The session is invalidated: the client identifies again and keeps working.
    await fake.invalidate()
    await fake.wait_for(lambda: fake.identifies == 2)
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction(ids[1], "👍"))
    await eventually(lambda: core.profile(ME).likes == 1, "a like after re-identifying")
    # A reaction on a message that is not one of paperbot's posts changes nothing.
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction("42", "👎"))
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction(ids[0], "🔖"))
    await eventually(lambda: core.profile(ME).saved == 1, "the bookmark is stored")
    assert core.profile(ME).dislikes == 1
    assert fake.token not in caplog.text  # the bot token never reaches the logs, even at DEBUG


async def test_reactions_made_while_away_are_recorded_when_a_new_session_starts(
    adapter: DiscordAdapter, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest(topical_papers(per_topic=2))
    picks = core.channel_picks(HERE, limit=2)
    ids = [int(i) for i in await adapter.port.send_picks(HERE, picks, "2025-10-07")]
    assert {(m, e) for _, m, e in fake.reactions} == {(i, e) for i in ids for e in "👍👎"}

    # While the session is lost, Discord keeps reactions but will never send their events.
    fake.react_unseen(CHANNEL_ID, ids[0], "👍", USER_ID)
    fake.react_unseen(CHANNEL_ID, ids[1], "👎", OTHER_USER_ID)
    fake.react_unseen(CHANNEL_ID, ids[1], "🎉", USER_ID)  # not feedback
    await fake.invalidate()
    await fake.wait_for(lambda: fake.identifies == 2)
    await eventually(
        lambda: core.profile(ME).likes == 1 and core.profile(OTHER).dislikes == 1,
        "the reactions made while away are stored",
    )
    assert core.profile(ME).dislikes == 0 and core.profile(BOT).likes == 0  # no 🎉, not the bot's

    # Taken back while connected, then another new session: read again, nothing comes back.
    fake.reacted[(CHANNEL_ID, ids[0])]["👍"].remove(USER_ID)
    await fake.dispatch("MESSAGE_REACTION_REMOVE", reaction(ids[0], "👍"))
    await eventually(lambda: core.profile(ME).likes == 0, "the removal is stored")
    second = adapter.client._recovery
    await fake.invalidate()
    await fake.wait_for(lambda: fake.identifies == 3)
    await eventually(lambda: adapter.client._recovery is not second, "a third recovery starts")
    assert await asyncio.wait_for(adapter.client._recovery, 10) == 1  # OTHER's 👎, read again
    assert (core.profile(ME).likes, core.profile(OTHER).dislikes) == (0, 1)


async def test_leaving_a_guild_cancels_its_daily_posts(
    adapter: DiscordAdapter, fake: FakeDiscord, core: PaperBot
) -> None:
    core.subscribe(HERE, "09:00", "UTC")
    await fake.dispatch("GUILD_DELETE", {"id": str(GUILD_ID)})
    await eventually(
        lambda: core.subscription(HERE).status == "cancelled",  # type: ignore[union-attr]
        "the subscription is cancelled",
    )
