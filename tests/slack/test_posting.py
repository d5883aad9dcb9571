"""The Slack posting port against the fake Web API: cards, pacing, 429, errors, resume without double posts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from adapters.slack.blocks import ACTION_DOWN, ACTION_SAVE, ACTION_UP
from adapters.slack.posting import METADATA_EVENT, ChannelPacer, SlackPostingPort, posting_client
from bot.domain import ChannelRef, Pick
from bot.posting import ChannelNotFound, MissingPermission, PostingError, RateLimited, message_key
from tests.fakes.slack_server import FakeSlack
from tests.slack.slack_requests import BOT_TOKEN, HERE, TEAM

INTERVAL = 0.2  # shorter than Slack's 1 s so the suite stays fast; the rule is the same


def picks(n: int) -> list[Pick]:
    return [
        Pick(f"2510.{i:05d}", f"Paper {i}", f"https://arxiv.org/abs/2510.{i:05d}", 1.0, "new today")
        for i in range(n)
    ]


# What the port recorded: (channel, [(message id, paper id)], messages in the channel then).
Recorded = list[tuple[ChannelRef, list[tuple[str, str]], int]]


@pytest.fixture
def recorded() -> Recorded:
    return []


@pytest.fixture
async def port(fake_slack: FakeSlack, recorded: Recorded) -> AsyncIterator[SlackPostingPort]:
    async def token_for(team: str) -> str | None:
        return BOT_TOKEN if team == TEAM else None

    def record(channel: ChannelRef, posts: Sequence[tuple[str, str]]) -> None:
        recorded.append((channel, list(posts), len(fake_slack.messages[channel.channel])))

    yield SlackPostingPort(
        posting_client(fake_slack.api_url), token_for, record, pacer=ChannelPacer(INTERVAL)
    )


async def test_one_message_per_pick_with_buttons_and_metadata(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    ids = await port.send_picks(HERE, picks(3), "T1:C1:2025-10-06")
    posts = fake_slack.calls_to("chat.postMessage")
    assert ids == [m["ts"] for m in fake_slack.messages["C1"]]
    assert len(set(ids)) == 3
    for i, post in enumerate(posts):
        assert post.token == BOT_TOKEN
        assert post.params["metadata"] == {
            "event_type": METADATA_EVENT,
            "event_payload": {"key": message_key("T1:C1:2025-10-06", i)},
        }
        actions = next(b for b in post.params["blocks"] if b["type"] == "actions")
        assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
            (ACTION_UP, f"2510.{i:05d}"),
            (ACTION_DOWN, f"2510.{i:05d}"),
            (ACTION_SAVE, f"2510.{i:05d}"),
        ]


async def test_a_thumbnail_slack_cannot_download_does_not_cost_the_pick(
    port: SlackPostingPort, fake_slack: FakeSlack, recorded: Recorded
) -> None:
    dead, alive = "https://cdn.example/gone.png", "https://cdn.example/ok.png"
    fake_slack.broken_images.add(dead)
    sent = [replace(p, thumbnail=dead if i == 1 else alive) for i, p in enumerate(picks(3))]
    ids = await port.send_picks(HERE, sent, "T1:C1:2025-10-06")
    messages = fake_slack.messages["C1"]
    assert ids == [m["ts"] for m in messages] and len(messages) == 3
    images = [(m["blocks"][0].get("accessory") or {}).get("image_url") for m in messages]
    assert images == [alive, None, alive]
    assert [m["metadata"]["event_payload"]["key"] for m in messages] == [
        message_key("T1:C1:2025-10-06", i) for i in range(3)
    ]
    assert [paper for _, posts, _ in recorded for _, paper in posts] == [p.paper_id for p in sent]


async def test_each_message_is_recorded_before_the_next_is_sent(
    port: SlackPostingPort, recorded: Recorded
) -> None:
    # A 👍 on the first pick while the rest are still going out must find its paper.
    ids = await port.send_picks(HERE, picks(3), "k")
    assert recorded == [(HERE, [(ts, f"2510.{i:05d}")], i + 1) for i, ts in enumerate(ids)]


async def test_posts_in_one_channel_are_paced(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    await port.send_picks(HERE, picks(3), "k")
    times = [c.at for c in fake_slack.calls_to("chat.postMessage")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= INTERVAL * 0.95 for gap in gaps), gaps


async def test_a_429_is_retried_after_retry_after(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(
        "chat.postMessage", status=429, error="ratelimited", headers={"Retry-After": "1"}
    )
    ids = await port.send_picks(HERE, picks(1), "k")
    first, second = fake_slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 1.0  # slept Retry-After before trying again
    assert ids == [fake_slack.messages["C1"][0]["ts"]]
    assert len(fake_slack.messages["C1"]) == 1


async def test_persistent_429_becomes_rate_limited(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(
        "chat.postMessage", status=429, error="ratelimited", headers={"Retry-After": "0"}, times=10
    )
    with pytest.raises(RateLimited):
        await port.send_picks(HERE, picks(1), "k")


@pytest.mark.parametrize(
    ("setup", "error"),
    [("missing_channels", ChannelNotFound), ("not_member", MissingPermission)],
)
async def test_channel_errors_are_specific(
    port: SlackPostingPort, fake_slack: FakeSlack, setup: str, error: type[Exception]
) -> None:
    getattr(fake_slack, setup).add("C1")
    with pytest.raises(error):
        await port.send_picks(HERE, picks(2), "k")
    with pytest.raises(error):
        await port.send_notice(HERE, "no new papers today", "k:notice")


async def test_a_workspace_without_a_token_is_missing_permission(port: SlackPostingPort) -> None:
    with pytest.raises(MissingPermission):
        await port.send_picks(ChannelRef("slack", "T9", "C1"), picks(1), "k")


async def test_resume_after_a_partial_send_posts_only_the_rest(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    first = await port.send_picks(HERE, picks(2), "day1")
    # The process died after two of four messages; the scheduler retries with resume=True.
    ids = await port.send_picks(HERE, picks(4), "day1", resume=True)
    assert ids[:2] == first
    assert len(fake_slack.messages["C1"]) == 4
    assert ids == [m["ts"] for m in fake_slack.messages["C1"]]
    # Another day's key is a new post.
    await port.send_picks(HERE, picks(1), "day2", resume=True)
    assert len(fake_slack.messages["C1"]) == 5


async def test_resume_finds_earlier_sends_pages_back_in_a_busy_channel(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    first = await port.send_picks(HERE, picks(2), "day1")
    # 450 messages from people since: the earlier sends are on the third page.
    fake_slack.messages["C1"] += [
        {"type": "message", "ts": f"1800000000.{i:06d}", "user": "U2", "text": "chat"}
        for i in range(450)
    ]
    ids = await port.send_picks(HERE, picks(4), "day1", resume=True)
    assert ids[:2] == first
    assert len(fake_slack.calls_to("chat.postMessage")) == 4
    assert len(fake_slack.calls_to("conversations.history")) == 3


async def test_resume_counts_only_this_bots_metadata_as_an_earlier_send(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    # Another app's message that happens to carry the same key in its own event type.
    fake_slack.messages.setdefault("C1", []).append(
        {
            "type": "message",
            "ts": "1700000000.000001",
            "text": "elsewhere",
            "metadata": {
                "event_type": "another_app_event",
                "event_payload": {"key": message_key("day1", 0)},
            },
        }
    )
    ids = await port.send_picks(HERE, picks(1), "day1", resume=True)
    assert ids != ["1700000000.000001"]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_reset_after_slack_accepted_the_post_then_resume_sends_once(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    fake_slack.reset_after_post = 1
    with pytest.raises(PostingError):
        await port.send_picks(HERE, picks(2), "day1")
    assert len(fake_slack.messages["C1"]) == 1  # Slack has it, we never heard back
    ids = await port.send_picks(HERE, picks(2), "day1", resume=True)
    assert len(fake_slack.messages["C1"]) == 2
    assert ids == [m["ts"] for m in fake_slack.messages["C1"]]


async def test_notice_is_plain_escaped_text(port: SlackPostingPort, fake_slack: FakeSlack) -> None:
    ts = await port.send_notice(HERE, "No new papers today <!channel>", "k:notice")
    assert fake_slack.messages["C1"][0]["ts"] == ts
    assert fake_slack.messages["C1"][0]["text"] == "No new papers today &lt;!channel&gt;"


async def test_a_repeated_notice_is_not_posted_twice(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    first = await port.send_notice(HERE, "No new papers today", "T1:C1:2025-10-06:empty")
    again = await port.send_notice(HERE, "No new papers today", "T1:C1:2025-10-06:empty")
    assert first == again and len(fake_slack.messages["C1"]) == 1


async def test_without_history_scope_resume_still_posts(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("conversations.history", error="missing_scope")
    ids = await port.send_picks(HERE, picks(1), "day1", resume=True)
    assert ids == [fake_slack.messages["C1"][0]["ts"]]


async def test_history_unreachable_is_a_posting_error(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    await fake_slack.stop()
    with pytest.raises(PostingError, match="unreachable"):
        await port.send_picks(HERE, picks(1), "day1", resume=True)


async def test_a_server_error_is_a_posting_error_and_the_retry_posts_once(
    port: SlackPostingPort, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("chat.postMessage", status=500, error="internal_error")
    with pytest.raises(PostingError):
        await port.send_picks(HERE, picks(2), "day1")
    ids = await port.send_picks(HERE, picks(2), "day1", resume=True)
    assert len(fake_slack.messages["C1"]) == 2 and len(set(ids)) == 2
