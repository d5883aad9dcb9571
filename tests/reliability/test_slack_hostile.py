"""Hostile input against the Slack adapter: titles that try to ping or break the layout,
generated event envelopes, and requests that are not from Slack."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from slack_bolt.async_app import AsyncApp

from adapters.slack.app import http_app
from adapters.slack.blocks import reply_message
from adapters.slack.events import reactions_on
from adapters.slack.posting import ChannelPacer, SlackPostingPort, posting_client
from bot.commands import Reply
from bot.domain import Pick, UserRef
from bot.models import ProcessedEvent, Reaction
from tests.fakes.slack_server import FakeSlack
from tests.helpers import paper
from tests.slack.blockkit_checks import assert_safe
from tests.slack.conftest import app, fake_slack, papers_core, slack_settings  # noqa: F401  (fixtures)
from tests.slack.slack_requests import (
    BOT_TOKEN,
    HERE,
    SIGNING_SECRET,
    TEAM,
    RecordingCore,
    dispatch,
    event_body,
    signed_headers,
    slash_body,
)

pytestmark = pytest.mark.reliability

POSTED_TS = "1700000001.000100"
PAPER = "2500.00000"
URL = "https://arxiv.org/abs/2510.66666"

HOSTILE = [
    "<!channel> new results",
    "<!here|here> <!everyone> @everyone @here",
    "<@U123> and <@W456|boss> and <!subteam^S1|team>",
    "<#C999|general>",
    "<https://evil.example|Click here> or <mailto:x@y.z|mail>",
    "*bold* _it_ ~strike~ `code` ```block``` > quote\n>>> more",
    "&lt;!channel&gt; pre-escaped & raw & <",
    "zero\u200bwidth\u200c\u200dand\ufeffBOM \u202eRTL override\u202c \u2067isolate\u2069",
    "lone surrogate \udcff and control \x00\x07\x1b[31m",
    "T" * 10_000,
    "<" * 5_000 + "!channel" + ">" * 5_000,
]


def hostile_pick(title: str) -> Pick:
    return Pick(
        "2510.66666",
        title,
        URL,
        0.5,
        f"because {title}",
        authors=tuple([title] * 50),
        summary=title * 3,
        thumbnail="https://cdn.example/t.png",
    )


@pytest.mark.parametrize("title", HOSTILE)
async def test_hostile_titles_ping_nobody_and_keep_limits(
    fake_slack: FakeSlack,  # noqa: F811
    title: str,
) -> None:
    async def token_for(team: str) -> str | None:
        return BOT_TOKEN

    recorded: list[tuple[str, str]] = []
    port = SlackPostingPort(
        posting_client(fake_slack.api_url),
        token_for,
        lambda _, posts: recorded.extend(posts),
        pacer=ChannelPacer(0),
    )
    await port.send_picks(HERE, [hostile_pick(title)], "k")
    (posted,) = fake_slack.messages["C1"]
    assert [ts for ts, _ in recorded] == [posted["ts"]]
    assert_safe(posted, {URL})
    assert_safe(reply_message(Reply(text=title, picks=[hostile_pick(title)] * 20)), {URL})
    # Whatever was cut, the text still says what it is about (not emptied by the cleaning).
    assert posted["blocks"][0]["text"]["text"].startswith(f"*<{URL}|")


async def test_hostile_papers_through_a_real_command(
    app: AsyncApp,  # noqa: F811
    fake_slack: FakeSlack,  # noqa: F811
    papers_core: RecordingCore,  # noqa: F811
) -> None:
    papers_core.ingest(
        [
            paper(f"2599.{i:05d}", title, title, upvotes=100, url=URL, thumbnail=URL)
            # What a database can store: the sources drop NULs and lone surrogates first.
            for i, title in enumerate(
                t.replace("\x00", "").replace("\udcff", "\ufffd") for t in HOSTILE
            )
        ]
    )
    await dispatch(app, slash_body("search channel here everyone", fake_slack.response_url()))
    await fake_slack.wait_for(lambda: fake_slack.responses)
    assert_safe(fake_slack.responses[0], {URL})


# ---------------------------------------------------------------- generated envelopes
def fuzz(max_examples: int) -> Any:
    """Hypothesis settings for examples that share one app and database (the fixtures)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.text(min_size=5000, max_size=20_000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
emoji = st.sampled_from(
    ["+1", "-1", "thumbsup", "thumbsdown", "+1::skin-tone-6", "bookmark", "tada", ""]
) | st.text(max_size=40)
item = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "file"]) | junk,
        "channel": st.sampled_from(["C1", "C2"]) | junk,
        "ts": st.sampled_from([POSTED_TS, "1.2"]) | junk,
    },
)
event = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["reaction_added", "reaction_removed", "app_uninstalled", "tokens_revoked", "team_join"]
        )
    },
    optional={
        "user": st.sampled_from(["U1", "U2"]) | junk,
        "reaction": emoji | junk,
        "item": item | junk,
        "tokens": st.fixed_dictionaries({}, optional={"bot": junk, "oauth": junk}) | junk,
    },
)
envelope = st.fixed_dictionaries(
    {"type": st.just("event_callback"), "event": event},
    optional={
        "team_id": st.sampled_from([TEAM, "T2"]) | junk,
        "event_id": st.sampled_from(["Ev1", "Ev2", "Ev3"]) | junk,
        "api_app_id": junk,
        "authorizations": junk,
    },
)


@pytest.fixture
def posted(papers_core: RecordingCore) -> RecordingCore:  # noqa: F811
    papers_core.record_posts(HERE, [(POSTED_TS, PAPER)])
    papers_core.subscribe(HERE, "09:00", "UTC")
    return papers_core


@pytest.fixture
async def http(app: AsyncApp) -> AsyncIterator[TestClient]:  # noqa: F811
    """The HTTP entry path `paperbot run` serves in HTTP mode."""
    async with TestClient(TestServer(http_app(app, SIGNING_SECRET))) as client:
        yield client


async def post(http: TestClient, body: str, headers: dict[str, str]) -> int:
    response = await http.post(
        "/slack/events", data=body.encode("utf-8", "surrogatepass"), headers=headers
    )
    return response.status


@fuzz(max_examples=60)
@given(body=envelope)
# Found by this test: PostgreSQL text cannot hold a NUL, so such an id must not reach it.
@example(body={"type": "event_callback", "event": {"type": "app_uninstalled"}, "team_id": "\x00"})
async def test_generated_event_envelopes_never_crash_and_keep_the_db_consistent(
    http: TestClient,
    posted: RecordingCore,
    body: dict[str, Any],
) -> None:
    raw = json.dumps(body)
    status = await post(http, raw, signed_headers(raw, json_body=True))
    # Handled, not for us (404) or malformed (400); never a crash (500).
    assert status in (200, 400, 404)
    with posted.db.read() as session:
        reactions = session.scalars(sa.select(Reaction)).all()
        events = session.scalars(sa.select(ProcessedEvent)).all()
    # Feedback lands only on the one posted paper, in its workspace, from a real user id,
    # and only for events whose id was recorded (so a retry cannot count twice).
    assert all(
        (r.platform, r.workspace, r.paper_id, r.user_id)
        in {("slack", TEAM, PAPER, "U1"), ("slack", TEAM, PAPER, "U2")}
        for r in reactions
    )
    assert {(e.workspace, e.event_id) for e in events} <= {(TEAM, f"Ev{i}") for i in (1, 2, 3)}
    assert len(reactions) <= len(events)


action_ids = st.sampled_from(
    ["paperbot_up", "paperbot_down", "paperbot_save", "paperbot_forget_cancel", "other"]
)
action = st.fixed_dictionaries(
    {"type": st.just("button"), "action_id": action_ids},
    optional={"value": st.sampled_from([PAPER, "nope"]) | junk, "block_id": junk},
)
interactive = st.fixed_dictionaries(
    {"type": st.just("block_actions"), "actions": st.lists(action, min_size=1, max_size=2)},
    optional={
        "team": st.fixed_dictionaries({}, optional={"id": st.just(TEAM) | junk}) | junk,
        "user": st.fixed_dictionaries({}, optional={"id": st.just("U1") | junk}) | junk,
        "channel": st.fixed_dictionaries({}, optional={"id": st.just("C1") | junk}) | junk,
        "api_app_id": junk,
    },
)


@fuzz(max_examples=40)
@given(payload=interactive)
async def test_generated_button_payloads_never_crash(
    app: AsyncApp,  # noqa: F811
    posted: RecordingCore,
    caplog: pytest.LogCaptureFixture,
    payload: dict[str, Any],
) -> None:
    caplog.clear()
    body = urlencode({"payload": json.dumps(payload)})
    before = asyncio.all_tasks()
    try:
        response = await dispatch(app, body)
        status = response.status
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        status = 400  # Bolt could not even parse it; the HTTP entry answers 400 (tested above)
    assert status in (200, 400, 404)
    # Let the work Bolt runs after its ack finish, then look for failures it logged.
    lazy = asyncio.all_tasks() - before - {asyncio.current_task()}
    if lazy:
        await asyncio.wait(lazy, timeout=10)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with posted.db.read() as session:
        reactions = session.scalars(sa.select(Reaction)).all()
    assert all((r.workspace, r.paper_id, r.user_id) == (TEAM, PAPER, "U1") for r in reactions)


# ---------------------------------------------------------------- requests not from Slack
def _replayed(body: str) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) - 3600)


def _future(body: str) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) + 3600)


def _forged(body: str) -> dict[str, str]:
    return signed_headers(body, secret="guessed")


def _signed_other_body(body: str) -> dict[str, str]:
    return signed_headers(body + "&text=forget")


def _missing(header: str) -> Any:
    def headers(body: str) -> dict[str, str]:
        out = signed_headers(body)
        del out[header]
        return out

    return headers


@pytest.mark.parametrize(
    "make_headers",
    [
        _replayed,
        _future,
        _forged,
        _signed_other_body,
        _missing("x-slack-signature"),
        _missing("x-slack-request-timestamp"),
        lambda body: {"content-type": "application/x-www-form-urlencoded"},
    ],
)
async def test_requests_not_signed_by_slack_get_401_and_never_reach_the_core(
    http: TestClient,
    fake_slack: FakeSlack,  # noqa: F811
    papers_core: RecordingCore,  # noqa: F811
    make_headers: Any,
) -> None:
    papers_core.record_posts(HERE, [(POSTED_TS, PAPER)])
    papers_core.called.clear()
    command = slash_body("today", fake_slack.response_url())
    reaction_event = event_body(
        {
            "type": "reaction_added",
            "user": "U1",
            "reaction": "+1",
            "item": {"type": "message", "channel": "C1", "ts": POSTED_TS},
        }
    )
    for body in (command, reaction_event, "{not json", "payload=%7B%22type%22%3A1%7D"):
        assert await post(http, body, make_headers(body)) == 401
    assert papers_core.called == []
    assert fake_slack.calls == [] and fake_slack.responses == []
    assert papers_core.profile(UserRef("slack", TEAM, "U1")).likes == 0


def test_reactions_read_back_keep_only_plausible_users_and_names() -> None:
    answer = {
        "message": {
            "reactions": [
                {"name": "+1", "users": ["U1", "U" * 20_000, "U\x00", 5]},
                {"name": "", "users": ["U2"]},
                {"name": "-1", "users": "U3"},
                "junk",
            ]
        }
    }
    assert list(reactions_on(answer)) == [("+1", "U1")]
    assert list(reactions_on({"message": "junk"})) == []
