"""`/papers` through the real Bolt app: signed requests in, respond() answers out to the fake Slack."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp

from adapters.slack.blocks import ACTION_FORGET_CANCEL, ACTION_FORGET_CONFIRM, ACTION_UP
from bot import commands, logs
from bot.commands import HELP, NEW_HERE
from bot.domain import ChannelRef
from bot.models import Subscription
from bot.settings import Settings
from tests.fakes.slack_server import FakeSlack
from tests.helpers import topical_papers
from tests.slack.slack_requests import (
    HERE,
    ME,
    TEAM,
    RecordingCore,
    action_body,
    dispatch,
    slash_body,
)


async def command(
    app: AsyncApp, fake: FakeSlack, text: str, *, user: str = "U1", channel: str = "C1"
) -> dict[str, Any]:
    """Run `/papers text`; return what the bot answered through the response_url."""
    answered = len(fake.responses)
    response = await dispatch(
        app, slash_body(text, fake.response_url(), user=user, channel=channel)
    )
    assert response.status == 200
    await fake.wait_for(lambda: len(fake.responses) > answered)
    return fake.responses[-1]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


async def test_today_answers_ephemerally_with_pick_cards(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "today 3")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == f"Your picks for today:\n{NEW_HERE}"
    ups = [b for b in buttons(answer) if b["action_id"] == ACTION_UP]
    assert len(ups) == 3
    # The button values are the papers the core picked, and it remembers showing them.
    assert papers_core.profile(ME).shown == 3
    assert "today" in papers_core.called


async def test_an_answer_whose_thumbnail_slack_cannot_download_comes_without_it(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    dead = "https://cdn.example/gone.png"
    fake_slack.broken_images.add(dead)
    papers_core.ingest([replace(p, thumbnail=dead) for p in topical_papers()])
    answer = await command(app, fake_slack, "today 3")
    refused, accepted = fake_slack.respond_attempts
    shown = [b["accessory"]["image_url"] for b in refused["blocks"] if "accessory" in b]
    assert shown == [dead] * 3
    # The same picks and words, only without the images.
    bare = [{k: v for k, v in b.items() if k != "accessory"} for b in refused["blocks"]]
    assert accepted == answer == {**refused, "blocks": bare}
    assert len([b for b in buttons(answer) if b["action_id"] == ACTION_UP]) == 3


async def test_follow_then_profile_shows_the_topics(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "follow diffusion models, speech synthesis")
    assert answer["text"].startswith("Following: diffusion models, speech synthesis")
    assert papers_core.profile(ME).follows == ("diffusion models", "speech synthesis")
    profile = await command(app, fake_slack, "profile")
    assert "Following: diffusion models, speech synthesis" in profile["text"]


async def test_unfollow_stops_some_follows_and_says_which(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    await command(app, fake_slack, "follow diffusion models, speech synthesis, RLHF")
    answer = await command(app, fake_slack, "unfollow Speech Synthesis, rlhf, graphs")
    assert answer["text"] == (
        "No longer following: Speech Synthesis, rlhf. You were not following: graphs."
    )
    assert papers_core.profile(ME).follows == ("diffusion models",)
    empty = await command(app, fake_slack, "unfollow ,")
    assert empty["text"].startswith("Tell me what to unfollow")


async def test_follow_and_search_keep_apostrophes_as_typed(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # Free text is not shell syntax: two apostrophes are not a quoted string.
    answer = await command(app, fake_slack, "follow children's speech, LLMs' reasoning")
    assert answer["text"].startswith("Following: children's speech, LLMs' reasoning.")
    assert papers_core.profile(ME).follows == ("children's speech", "LLMs' reasoning")
    found = await command(app, fake_slack, "search what's new in children's speech")
    assert found["text"] == "Papers matching “what's new in children's speech”:"
    gone = await command(app, fake_slack, "unfollow LLMs' reasoning")
    assert gone["text"] == "No longer following: LLMs' reasoning."


async def test_a_topic_in_quotes_is_followed_without_them(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    await command(app, fake_slack, 'follow "diffusion models", “speech synthesis”, LLMs\' RL')
    assert papers_core.profile(ME).follows == ("diffusion models", "speech synthesis", "LLMs' RL")


async def test_what_slack_escapes_in_a_command_is_read_back_as_typed(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # Slack sends &, < and > in the command text as &amp;, &lt; and &gt;.
    answer = await command(app, fake_slack, "follow R&amp;D agents, &lt;speech&gt; models")
    assert papers_core.profile(ME).follows == ("R&D agents", "<speech> models")
    # The answer escapes them once, for Slack to show them as typed.
    assert answer["text"].startswith("Following: R&amp;D agents, &lt;speech&gt; models.")
    found = await command(app, fake_slack, "search Q&amp;A speech")
    assert found["text"] == "Papers matching “Q&amp;A speech”:"


async def test_saved_lists_what_the_member_saved_with_buttons(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    empty = await command(app, fake_slack, "saved")
    assert empty["text"] == "Nothing saved yet. Press 🔖 on a pick to keep it here."
    papers_core.save(ME, "2503.00002")
    papers_core.save(ME, "2501.00004")
    answer = await command(app, fake_slack, "saved 5")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "Your saved papers, newest first:"
    ups = [b["value"] for b in buttons(answer) if b["action_id"] == ACTION_UP]
    assert ups == ["2501.00004", "2503.00002"]
    assert "you saved it on" in json.dumps(answer["blocks"])


async def test_search_finds_papers_by_meaning(app: AsyncApp, fake_slack: FakeSlack) -> None:
    answer = await command(app, fake_slack, "search graph neural networks")
    assert answer["text"].startswith("Papers matching")
    titles = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"][1:]
    assert titles and "graphs study" in titles[0]


@pytest.mark.parametrize(
    ("text", "first_line"),
    [("help", None), ("", None), ("frobnicate now", "I don't know “/papers frobnicate”.")],
)
async def test_help_and_unknown_subcommands_get_the_help_text(
    app: AsyncApp, fake_slack: FakeSlack, text: str, first_line: str | None
) -> None:
    answer = await command(app, fake_slack, text)
    help_text = HELP.replace("<", "&lt;").replace(">", "&gt;")
    if first_line is None:
        assert answer["text"] == help_text
    else:
        assert answer["text"] == f"{first_line} These I do:\n{help_text}"


async def test_help_says_how_feedback_is_taken_back_as_it_happens(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "help")
    assert "removing a reaction takes it back" in answer["text"]
    # A chat button pressed again keeps its 👍 (and says so): help must not promise otherwise.
    assert "clicking again" not in answer["text"]
    for n in (1, 2):
        await dispatch(app, action_body(ACTION_UP, "2500.00000", fake_slack.response_url()))
        await fake_slack.wait_for(lambda n=n: len(fake_slack.responses) == 1 + n)
    assert fake_slack.responses[-1]["text"] == "You already liked this one."
    assert papers_core.profile(ME).likes == 1


async def test_forget_asks_first_and_the_button_deletes(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    await command(app, fake_slack, "follow diffusion")
    question = await command(app, fake_slack, "forget")
    assert "Sure?" in question["text"]
    assert "forget" not in papers_core.called  # asking deletes nothing
    confirm = next(b for b in buttons(question) if b["action_id"] == ACTION_FORGET_CONFIRM)
    cancel = next(b for b in buttons(question) if b["action_id"] == ACTION_FORGET_CANCEL)

    response = await dispatch(
        app, action_body(ACTION_FORGET_CANCEL, cancel["value"], fake_slack.response_url())
    )
    assert response.status == 200
    await fake_slack.wait_for(lambda: fake_slack.responses[-1].get("delete_original"))
    assert papers_core.profile(ME).follows == ("diffusion",)

    await dispatch(
        app, action_body(ACTION_FORGET_CONFIRM, confirm["value"], fake_slack.response_url())
    )
    await fake_slack.wait_for(lambda: fake_slack.responses[-1]["text"].startswith("Done"))
    assert papers_core.profile(ME).follows == ()


async def test_subscribe_is_refused_to_members_who_cannot_manage(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "subscribe 09:30 Europe/Berlin 3", user="U1")
    assert "Only members who can manage channels" in answer["text"]
    assert papers_core.subscription(HERE) is None
    assert "subscribe" not in papers_core.called


async def test_workspace_admin_subscribes_any_channel(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(
        app, fake_slack, "subscribe <#C2|other> 09:30 Europe/Berlin 3", user="UADMIN"
    )
    # The channel by its name: Slack's mention syntax would show as typed, the reply
    # being escaped (a command argument is untrusted text too).
    assert answer["text"] == "Daily picks: 3 papers at 09:30 Europe/Berlin in #other."
    info = papers_core.subscription(ChannelRef("slack", TEAM, "C2"))
    assert info is not None and info.status == "active" and info.tz == "Europe/Berlin"


async def test_one_paper_a_day_is_said_in_the_singular(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "subscribe 09:30 UTC 1", user="UADMIN")
    assert answer["text"] == "Daily picks: 1 paper at 09:30 UTC in this channel."
    settings = await command(app, fake_slack, "settings", user="UADMIN")
    assert settings["text"] == "Daily picks: 1 paper at 09:30 UTC. State: active."


async def test_subscribing_a_channel_paperbot_is_not_in_says_to_invite_it(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # Posting there would fail with not_in_channel, day after day, unseen.
    fake_slack.not_member.add("C2")
    answer = await command(app, fake_slack, "subscribe <#C2|other> 09:30", user="UADMIN")
    assert answer["text"].startswith("Daily picks: 5 papers at 09:30 UTC in ")
    assert answer["text"].endswith(
        "I'm not in that channel yet: /invite @paperbot there, or I cannot post the picks."
    )
    assert papers_core.subscription(ChannelRef("slack", TEAM, "C2")) is not None
    here = await command(app, fake_slack, "subscribe 09:30", user="UADMIN")
    assert here["text"] == "Daily picks: 5 papers at 09:30 UTC in this channel."


async def test_channel_creator_manages_their_own_channel_only(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    ok = await command(app, fake_slack, "subscribe 08:00", user="UCREATOR", channel="C1")
    assert ok["text"].startswith("Daily picks: 5 papers at 08:00 UTC in this channel")
    settings = await command(app, fake_slack, "settings", user="UCREATOR")
    assert settings["text"].startswith("Daily picks: 5 papers at 08:00 UTC. State: active")
    elsewhere = await command(app, fake_slack, "subscribe <#C2>", user="UCREATOR", channel="C1")
    assert "Only members who can manage channels" in elsewhere["text"]
    stopped = await command(app, fake_slack, "unsubscribe", user="UCREATOR")
    assert stopped["text"] == "Daily picks stopped."
    info = papers_core.subscription(HERE)
    assert info is not None and info.status == "cancelled"
    after = await command(app, fake_slack, "settings", user="UCREATOR")
    assert after["text"] == "This channel has no daily picks. Start them with /papers subscribe."


async def test_a_creators_subscribe_asks_slack_about_the_channel_once(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # Who created it and whether paperbot is in it are one answer; conversations.info
    # is rate-limited per workspace.
    fake_slack.not_member.add("C1")
    answer = await command(app, fake_slack, "subscribe 08:00", user="UCREATOR", channel="C1")
    assert answer["text"].endswith("or I cannot post the picks.")
    assert [c.method for c in fake_slack.calls].count("conversations.info") == 1


@pytest.mark.parametrize(
    ("status", "error", "times"),
    [(200, "ratelimited", 1), (500, "internal_error", 1), (429, "ratelimited", 3)],
    ids=["ratelimited", "server-error", "429-after-retries"],
)
async def test_permission_lookup_failure_means_not_allowed(
    app: AsyncApp,
    fake_slack: FakeSlack,
    papers_core: RecordingCore,
    status: int,
    error: str,
    times: int,
) -> None:
    papers_core.subscribe(HERE, "09:00", "UTC")
    fake_slack.fail_next(
        "users.info", status=status, error=error, headers={"Retry-After": "0"}, times=times
    )
    answer = await command(app, fake_slack, "unsubscribe", user="UADMIN")
    # Not allowed, but not blamed on the admin either: trying again can work.
    assert answer["text"] == (
        "I couldn't check with Slack who may manage this channel just now. "
        "Please try again in a minute."
    )
    assert papers_core.subscription(HERE).status == "active"  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["users.info", "conversations.info"])
async def test_a_missing_scope_is_not_blamed_on_the_member(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore, method: str
) -> None:
    # An install from before the manifest asked for users:read or channels:read.
    fake_slack.fail_next(method, error="missing_scope")
    answer = await command(app, fake_slack, "subscribe 09:00", user="UCREATOR")
    assert answer["text"] == (
        "I can't check who may manage this channel: paperbot's Slack app lacks a permission "
        "(scope) it needs. Ask whoever installed it to reinstall it from its manifest."
    )
    assert papers_core.subscription(HERE) is None


async def test_bad_arguments_get_a_clear_error(app: AsyncApp, fake_slack: FakeSlack) -> None:
    answer = await command(app, fake_slack, "today 99")
    assert answer["text"] == "The count is a number from 1 to 10."


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("today ²", "The count is a number from 1 to 10."),
        (
            "subscribe ⑤",
            "I don't understand '⑤'. Try: /papers subscribe #papers 09:00 Europe/Berlin 5",
        ),
    ],
)
async def test_a_digit_that_is_no_number_is_a_clear_error_not_silence(
    app: AsyncApp, fake_slack: FakeSlack, text: str, error: str
) -> None:
    # "²" and "⑤" are digits to str.isdigit() but not to int().
    answer = await command(app, fake_slack, text, user="UADMIN")
    assert answer["text"] == error


async def test_counts_from_one_to_ten_and_only_channels_that_exist(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    for text in ("today 0", "subscribe 0", "subscribe 11"):
        answer = await command(app, fake_slack, text, user="UADMIN")
        assert answer["text"] == "The count is a number from 1 to 10.", text
    answer = await command(app, fake_slack, "subscribe #general", user="UADMIN")
    assert answer["text"] == "I can't find the channel #general."
    assert "subscribe" not in papers_core.called


async def test_subscribe_takes_utc_by_name_and_keeps_who_subscribed(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    answer = await command(app, fake_slack, "subscribe 3 UTC 07:15", user="UADMIN")
    assert answer["text"] == "Daily picks: 3 papers at 07:15 UTC in this channel."
    with papers_core.db.read() as session:
        assert session.scalar(sa.select(Subscription.created_by)) == "UADMIN"


@pytest.mark.parametrize(
    ("typed", "zone"), [("utc", "UTC"), ("europe/berlin", "Europe/Berlin")], ids=["utc", "berlin"]
)
async def test_subscribe_reads_a_time_zone_whatever_its_case(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore, typed: str, zone: str
) -> None:
    answer = await command(app, fake_slack, f"subscribe 07:15 {typed}", user="UADMIN")
    assert answer["text"] == f"Daily picks: 5 papers at 07:15 {zone} in this channel."
    info = papers_core.subscription(HERE)
    assert info is not None and info.tz == zone


def test_a_channel_command_without_a_channel_asks_for_one(papers_core: RecordingCore) -> None:
    # As the web page and a forget button invoke commands: no channel to default to.
    inv = commands.Invocation(user=ME, channel=None, can_manage=True)
    for text in ("subscribe 09:00", "unsubscribe", "settings"):
        reply = commands.run_text(papers_core, inv, text)  # type: ignore[arg-type]
        assert (reply.text, reply.error) == ("Run this in a channel, or name one.", True), text


def test_today_shows_the_picks_it_has_while_still_setting_up(papers_core: RecordingCore) -> None:
    inv = commands.Invocation(user=ME, channel=None, setting_up="embedding the samples")
    reply = commands.run_text(papers_core, inv, "today 2")  # type: ignore[arg-type]
    assert (reply.text, len(reply.picks)) == (f"Your picks for today:\n{NEW_HERE}", 2)


async def test_ack_comes_at_once_while_a_slow_core_works(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    gate = papers_core.hold("today")
    try:
        # Slack gives up after 3 s; the ack must not wait for the core.
        response = await asyncio.wait_for(
            dispatch(app, slash_body("today", fake_slack.response_url())), timeout=3
        )
        assert response.status == 200
        assert await asyncio.to_thread(papers_core.entered.wait, 10)
        assert fake_slack.responses == []  # the core is still busy
    finally:
        gate.set()
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 1)
    assert fake_slack.responses[0]["text"] == f"Your picks for today:\n{NEW_HERE}"


async def test_debug_logs_never_show_the_response_url(
    app: AsyncApp,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    # A response_url lets whoever holds it post to the channel for 30 minutes;
    # slack-sdk's webhook client logs it with every answer at DEBUG.
    logs.configure(Settings(log_level="DEBUG"))
    await command(app, fake_slack, "help")
    printed = capsys.readouterr().err.splitlines()
    assert [line for line in printed if "/respond/" in line] == []
