"""The Discord posting port against the fake Discord: idempotent, pings nobody, clear errors."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from adapters.discord import DiscordPostingPort, PaperClient
from adapters.discord.posting import RESUME_HISTORY, nonce
from bot.domain import ChannelRef
from bot.models import PostedMessage
from bot.paperbot import PaperBot
from bot.posting import ChannelNotFound, MissingPermission, PostingError, RateLimited
from tests.discord.helpers import custom_ids, posted_messages
from tests.fakes.discord_server import (
    CHANNEL_ID,
    GUILD_ID,
    RESET,
    Failure,
    FakeDiscord,
    message_payload,
)
from tests.helpers import topical_papers

HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
MESSAGES = f"/channels/{CHANNEL_ID}/messages"


@pytest.fixture
def port(client: PaperClient) -> DiscordPostingPort:
    return DiscordPostingPort(client)


@pytest.fixture
def picks(core: PaperBot) -> list:
    core.ingest(topical_papers(per_topic=1))
    return core.channel_picks(HERE, limit=3)


def test_nonce_is_deterministic_short_and_specific() -> None:
    other_channel = ChannelRef("discord", str(GUILD_ID), "1")
    values = {
        nonce(HERE, "2025-10-06:0"),
        nonce(HERE, "2025-10-06:1"),
        nonce(HERE, "2025-10-07:0"),
        nonce(other_channel, "2025-10-06:0"),
    }
    assert len(values) == 4
    assert nonce(HERE, "2025-10-06:0") == nonce(HERE, "2025-10-06:0")
    assert all(len(v) <= 25 for v in values)
    assert len(nonce(HERE, "k" * 500)) == 25


async def test_one_message_per_pick_with_buttons_reactions_and_no_mentions(
    port: DiscordPostingPort, fake: FakeDiscord, core: PaperBot, picks: list
) -> None:
    ids = await port.send_picks(HERE, picks, "2025-10-06")

    posts = fake.calls("POST", MESSAGES)
    assert [m["id"] for m in fake.messages[CHANNEL_ID]] == ids
    for i, (post, pick) in enumerate(zip(posts, picks, strict=True)):
        assert post.body["allowed_mentions"] == {"parse": []}
        assert post.body["nonce"] == nonce(HERE, f"2025-10-06:{i}")
        assert post.body["enforce_nonce"] is True
        (embed,) = post.body["embeds"]
        assert embed["url"] == pick.url
        assert custom_ids(post.body) == [
            f"paperbot:{action}:{pick.paper_id}" for action in ("up", "down", "save")
        ]
    assert [(m, e) for _, m, e in fake.reactions] == [
        (int(i), e) for i in ids for e in ("👍", "👎")
    ]
    # Each message is mapped to its paper as soon as it is sent.
    assert posted_messages(core) == {i: p.paper_id for i, p in zip(ids, picks, strict=True)}


async def test_a_retried_post_does_not_post_twice(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    first = await port.send_picks(HERE, picks, "2025-10-06")
    again = await port.send_picks(HERE, picks, "2025-10-06")
    assert again == first
    assert len(fake.messages[CHANNEL_ID]) == len(picks)


async def test_a_lost_response_is_retried_with_the_same_nonce(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    # Discord stored the message but the answer was lost: a 500 (discord.py retries it)
    # or a reset connection (the port retries it). The nonce makes the retry harmless.
    fake.fail_next("POST", MESSAGES, Failure(500))
    fake.fail_next("POST", MESSAGES, Failure(RESET))
    ids = await port.send_picks(HERE, picks[:2], "2025-10-06")
    assert len(fake.calls("POST", MESSAGES)) == 4
    assert [m["id"] for m in fake.messages[CHANNEL_ID]] == ids


async def test_resume_after_a_crash_finds_the_messages_already_posted(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    first = await port.send_picks(HERE, picks[:2], "2025-10-06")
    fake.forget_nonces()  # long after the crash: Discord's nonce window has passed
    ids = await port.send_picks(HERE, picks, "2025-10-06", resume=True)
    assert ids[:2] == first
    assert len(fake.messages[CHANNEL_ID]) == 3


async def test_resume_finds_a_message_whose_record_a_crash_cut_off(
    port: DiscordPostingPort, fake: FakeDiscord, core: PaperBot, picks: list
) -> None:
    first = await port.send_picks(HERE, picks[:2], "2025-10-06")
    with core.db.write() as session:  # killed between the send and its record
        session.execute(sa.delete(PostedMessage).where(PostedMessage.message_id == first[1]))
    fake.forget_nonces()
    ids = await port.send_picks(HERE, picks, "2025-10-06", resume=True)
    assert ids[:2] == first
    assert len(fake.messages[CHANNEL_ID]) == 3


async def test_resume_in_a_busy_channel_finds_the_messages_already_posted(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    first = await port.send_picks(HERE, picks[:2], "2025-10-06")
    others = [
        {**message_payload(920_000_000_000_000_000 + i, CHANNEL_ID, {"content": f"chat {i}"}),
         "author": {"id": "800000000000000001", "username": "someone", "discriminator": "0",
                    "avatar": None}}
        for i in range(RESUME_HISTORY + 10)
    ]  # fmt: skip
    fake.messages[CHANNEL_ID].extend(others)  # more than a resume reads of the history
    fake.forget_nonces()
    ids = await port.send_picks(HERE, picks, "2025-10-06", resume=True)
    assert ids[:2] == first
    assert len(fake.messages[CHANNEL_ID]) == 3 + len(others)


async def test_a_connection_that_keeps_failing_is_a_posting_error(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    port.retry_delays = (0.0, 0.0)  # every attempt fails: no point waiting in a test
    for _ in range(len(port.retry_delays) + 1):
        fake.fail_next("POST", MESSAGES, Failure(RESET))
    with pytest.raises(PostingError, match="connection"):
        await port.send_picks(HERE, picks[:1], "k")
    assert len(fake.messages[CHANNEL_ID]) == 1  # stored once, whatever the retries


async def test_missing_channel_and_permission_are_specific_errors(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    fake.missing.add(CHANNEL_ID)
    with pytest.raises(ChannelNotFound):
        await port.send_picks(HERE, picks, "k")
    fake.missing.clear()
    fake.forbidden.add(CHANNEL_ID)
    with pytest.raises(MissingPermission):
        await port.send_picks(HERE, picks, "k")
    with pytest.raises(ChannelNotFound):
        await port.send_picks(ChannelRef("discord", str(GUILD_ID), "general"), picks, "k")


async def test_a_short_rate_limit_is_waited_out(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    fake.fail_next("POST", MESSAGES, Failure(429, retry_after=0.3))
    started = time.monotonic()
    ids = await port.send_picks(HERE, picks[:1], "k")
    # A lower bound, not a speed target: the port may not send again before retry_after.
    assert time.monotonic() - started >= 0.3
    assert len(fake.calls("POST", MESSAGES)) == 2
    assert [m["id"] for m in fake.messages[CHANNEL_ID]] == ids


async def test_a_long_rate_limit_is_reported(
    port: DiscordPostingPort, fake: FakeDiscord, picks: list
) -> None:
    fake.fail_next("POST", MESSAGES, Failure(429, retry_after=120))
    with pytest.raises(RateLimited) as raised:
        await port.send_picks(HERE, picks[:1], "k")
    assert raised.value.retry_after == 120
    assert CHANNEL_ID not in fake.messages


async def test_notice_pings_nobody(port: DiscordPostingPort, fake: FakeDiscord) -> None:
    await port.send_notice(HERE, "No new papers today @everyone", "2025-10-06:notice")
    (post,) = fake.calls("POST", MESSAGES)
    assert post.body["allowed_mentions"] == {"parse": []}
    assert "@everyone" not in post.body["content"]
    assert post.body["nonce"] == nonce(HERE, "2025-10-06:notice")
