"""HTTP mode over real HTTP: `create_adapter(...).run()` serves /slack/events; signatures are enforced."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp

from adapters.slack import SlackAdapter, create_adapter
from bot.domain import UserRef
from bot.models import Reaction
from bot.settings import Settings, SettingsError
from tests.fakes.slack_server import FakeSlack
from tests.slack.slack_requests import (
    HERE,
    TEAM,
    RecordingCore,
    dispatch,
    event_body,
    reaction,
    running,
    signed_headers,
    slash_body,
)


@pytest.fixture
async def served(
    papers_core: RecordingCore, slack_settings: Settings, fake_slack: FakeSlack
) -> AsyncIterator[tuple[SlackAdapter, str]]:
    adapter = create_adapter(papers_core, slack_settings)  # type: ignore[arg-type]
    assert adapter.name == "slack" and adapter.port is not None
    async with running(adapter):
        # Start-up's read-back of missed reactions is done: later calls come from requests.
        assert adapter.recovery is not None and await adapter.recovery == 0
        assert [c.method for c in fake_slack.calls] == ["auth.test"]  # start-up's token check
        papers_core.called.clear()
        fake_slack.calls.clear()
        yield adapter, f"http://127.0.0.1:{adapter.bound_port}/slack/events"


async def post(url: str, body: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status


async def test_signed_command_and_reaction_over_http(
    served: tuple[SlackAdapter, str], fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    _, url = served
    body = slash_body("follow retrieval", fake_slack.response_url())
    assert await post(url, body, signed_headers(body)) == 200
    await fake_slack.wait_for(lambda: fake_slack.responses)
    assert fake_slack.responses[0]["text"].startswith("Following: retrieval")

    papers_core.record_posts(HERE, [("1700000001.000100", "2500.00000")])
    event = event_body(reaction("reaction_added", "+1", "1700000001.000100"))
    assert await post(url, event, signed_headers(event, json_body=True)) == 200
    assert papers_core.profile(UserRef("slack", TEAM, "U1")).likes == 1


async def test_reactions_made_while_stopped_are_read_back_at_start(
    papers_core: RecordingCore, slack_settings: Settings, fake_slack: FakeSlack
) -> None:
    adapter = create_adapter(papers_core, slack_settings)  # type: ignore[arg-type]
    picks = papers_core.channel_picks(HERE, limit=2)
    ts = await adapter.port.send_picks(HERE, picks, "pb-1")
    papers_core.record_posts(HERE, list(zip(ts, [p.paper_id for p in picks], strict=True)))
    # Made while paperbot was stopped: Slack gave up delivering these events long ago.
    fake_slack.react_unseen(HERE.channel, ts[0], "+1::skin-tone-2", "U1")
    fake_slack.react_unseen(HERE.channel, ts[1], "-1", "U2")
    fake_slack.react_unseen(HERE.channel, ts[1], "tada", "U1")  # not feedback
    fake_slack.react_unseen(HERE.channel, "1600000000.000001", "+1", "U3")  # not our post

    async with running(adapter):
        assert adapter.recovery is not None
        assert await asyncio.wait_for(adapter.recovery, 10) == 2

    assert papers_core.profile(UserRef("slack", TEAM, "U1")).likes == 1
    assert papers_core.profile(UserRef("slack", TEAM, "U1")).dislikes == 0
    assert papers_core.profile(UserRef("slack", TEAM, "U2")).dislikes == 1
    assert papers_core.profile(UserRef("slack", TEAM, "U3")).likes == 0
    reads = fake_slack.calls_to("reactions.get")
    assert {c.params["timestamp"] for c in reads} == set(ts)
    assert all(c.token == slack_settings.slack_bot_token.get_secret_value() for c in reads)  # type: ignore[union-attr]


async def test_reading_back_does_not_undo_a_forget(
    papers_core: RecordingCore, slack_settings: Settings, fake_slack: FakeSlack
) -> None:
    adapter = create_adapter(papers_core, slack_settings)  # type: ignore[arg-type]
    u1, u2 = UserRef("slack", TEAM, "U1"), UserRef("slack", TEAM, "U2")
    picks = papers_core.channel_picks(HERE, limit=3)
    before = await adapter.port.send_picks(HERE, picks[:2], "pb-1")
    for user, emoji in ((u1, "+1"), (u2, "-1")):
        fake_slack.react_unseen(HERE.channel, before[0], emoji, user.user)
        papers_core.react(user, picks[0].paper_id, 1 if emoji == "+1" else -1)
    assert papers_core.forget(u1) > 0  # U1's 👍 stays on the message in Slack
    # A post after the forget, reacted to while paperbot was stopped: a new wish.
    (after,) = await adapter.port.send_picks(HERE, picks[2:], "pb-2")
    fake_slack.react_unseen(HERE.channel, after, "+1", "U1")

    async with running(adapter):
        assert adapter.recovery is not None
        assert await asyncio.wait_for(adapter.recovery, 10) == 3

    assert papers_core.profile(u1).likes == 1
    with papers_core.db.read() as session:
        kept = session.scalars(sa.select(Reaction.paper_id).where(Reaction.user_id == "U1"))
        assert list(kept) == [picks[2].paper_id]
    assert papers_core.profile(u2).dislikes == 1


def _bad_signature(body: str) -> dict[str, str]:
    return signed_headers(body, secret="not-the-secret")


def _stale(body: str) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) - 6 * 60)  # Bolt allows 5 minutes


def _no_signature(body: str) -> dict[str, str]:
    headers = signed_headers(body)
    del headers["x-slack-signature"]
    return headers


def _no_timestamp(body: str) -> dict[str, str]:
    headers = signed_headers(body)
    del headers["x-slack-request-timestamp"]
    return headers


@pytest.mark.parametrize("headers", [_bad_signature, _stale, _no_signature, _no_timestamp])
async def test_unverified_requests_get_401_and_never_reach_the_core(
    served: tuple[SlackAdapter, str],
    fake_slack: FakeSlack,
    papers_core: RecordingCore,
    headers: Callable[[str], dict[str, str]],
) -> None:
    _, url = served
    body = slash_body("today", fake_slack.response_url())
    assert await post(url, body, headers(body)) == 401
    event = event_body(reaction("reaction_added", "+1", "1700000001.000100"))
    assert await post(url, event, headers(event)) == 401
    await asyncio.sleep(0.2)  # give a wrongly accepted request's lazy work a chance to show
    assert papers_core.called == []
    assert fake_slack.calls == [] and fake_slack.responses == []


@pytest.mark.parametrize("headers", [_bad_signature, _stale, _no_signature])
async def test_bolt_itself_refuses_unverified_requests_too(
    app: AsyncApp,
    fake_slack: FakeSlack,
    papers_core: RecordingCore,
    headers: Callable[[str], dict[str, str]],
) -> None:
    # The same check inside Bolt, for any entry path that skips the HTTP middleware.
    body = slash_body("today", fake_slack.response_url())
    assert (await dispatch(app, body, headers(body))).status == 401
    assert papers_core.called == [] and fake_slack.calls == []


async def test_a_taken_port_is_one_clear_settings_error(
    papers_core: RecordingCore, slack_settings: Settings
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = slack_settings.model_copy(update={"http_port": taken.getsockname()[1]})
        adapter = create_adapter(papers_core, settings)  # type: ignore[arg-type]
        with pytest.raises(
            SettingsError, match=r"^PAPERBOT_HTTP_PORT: cannot listen on 127\.0\.0\.1:"
        ):
            await adapter.run()


async def test_an_address_that_is_not_this_machines_blames_the_host_not_the_port(
    papers_core: RecordingCore, slack_settings: Settings
) -> None:
    settings = slack_settings.model_copy(update={"http_host": "192.0.2.1"})  # TEST-NET-1
    adapter = create_adapter(papers_core, settings)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"^PAPERBOT_HTTP_HOST: cannot listen on 192\.0\.2\.1 "):
        await adapter.run()


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked"])
async def test_a_rejected_bot_token_stops_start_up_with_one_clear_error(
    papers_core: RecordingCore, slack_settings: Settings, fake_slack: FakeSlack, error: str
) -> None:
    fake_slack.fail_next("auth.test", error=error)
    adapter = create_adapter(papers_core, slack_settings)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=rf"^SLACK_BOT_TOKEN: Slack rejected it \({error}\)$"):
        await asyncio.wait_for(adapter.run(), 10)
    assert adapter.bound_port is None and not adapter.ready.is_set()  # never served


async def test_a_slack_outage_at_start_up_does_not_stop_the_bot(
    papers_core: RecordingCore, slack_settings: Settings, fake_slack: FakeSlack
) -> None:
    # Only a rejected token is the operator's to fix; anything else may pass.
    fake_slack.fail_next("auth.test", error="fatal_error", status=500)
    async with running(create_adapter(papers_core, slack_settings)) as adapter:  # type: ignore[arg-type]
        assert adapter.bound_port is not None
