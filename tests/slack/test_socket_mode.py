"""Socket Mode end to end: apps.connections.open hands out the fake's ws:// URL; envelopes are acked."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import pytest

from adapters.slack import SlackAdapter, create_adapter
from adapters.slack.blocks import ACTION_SAVE
from bot.commands import NEW_HERE
from bot.settings import Settings, SettingsError
from tests.fakes.slack_server import FakeSlack
from tests.helpers import unused_port
from tests.slack.slack_requests import (
    BOT_TOKEN,
    HERE,
    ME,
    RecordingCore,
    action_payload,
    event_body,
    reaction,
    running,
    slash_body,
)

APP_TOKEN = "xapp-test-token"


@pytest.fixture
async def connected(
    papers_core: RecordingCore, fake_slack: FakeSlack
) -> AsyncIterator[SlackAdapter]:
    settings = Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        slack_api_url=fake_slack.api_url,
        embedding_model="hashing",
    )
    assert settings.slack_mode == "socket" and settings.slack_enabled
    async with running(create_adapter(papers_core, settings)) as adapter:  # type: ignore[arg-type]
        yield adapter


async def acked(fake: FakeSlack, envelope_id: str) -> dict:
    await fake.wait_for(lambda: any(a.get("envelope_id") == envelope_id for a in fake.acks))
    return next(a for a in fake.acks if a.get("envelope_id") == envelope_id)


async def test_slash_command_event_and_button_over_socket_mode(
    connected: SlackAdapter, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    opened = fake_slack.calls_to(
        "apps.connections.open"
    )  # start-up's token check, then the client's
    assert len(opened) == 2 and {c.token for c in opened} == {APP_TOKEN}

    command = dict(parse_qsl(slash_body("today 2", fake_slack.response_url())))
    await fake_slack.push(
        {
            "envelope_id": "env-cmd",
            "type": "slash_commands",
            "payload": command,
            "accepts_response_payload": True,
        }
    )
    assert (await acked(fake_slack, "env-cmd")) == {"envelope_id": "env-cmd"}
    await fake_slack.wait_for(lambda: fake_slack.responses)
    assert fake_slack.responses[0]["text"] == f"Your picks for today:\n{NEW_HERE}"

    papers_core.record_posts(HERE, [("1700000001.000100", "2500.00001")])
    event = json.loads(
        event_body(reaction("reaction_added", "thumbsup", "1700000001.000100"), event_id="EvS1")
    )
    await fake_slack.push(
        {
            "envelope_id": "env-ev",
            "type": "events_api",
            "payload": event,
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
    )
    await acked(fake_slack, "env-ev")
    assert papers_core.profile(ME).likes == 1  # stored before the ack went out

    click = action_payload(ACTION_SAVE, "2500.00001", fake_slack.response_url())
    await fake_slack.push(
        {
            "envelope_id": "env-act",
            "type": "interactive",
            "payload": click,
            "accepts_response_payload": False,
        }
    )
    await acked(fake_slack, "env-act")
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 2)
    assert fake_slack.responses[1]["text"].startswith("Saved 🔖")
    assert papers_core.profile(ME).saved == 1
    # Web API calls went to the fake with the bot token.
    assert {c.token for c in fake_slack.calls if c.method == "auth.test"} == {BOT_TOKEN}


async def test_a_rejected_app_token_stops_start_up_with_one_clear_error(
    papers_core: RecordingCore, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("apps.connections.open", error="invalid_auth")
    settings = Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN="xapp-wrong",
        slack_api_url=fake_slack.api_url,
        embedding_model="hashing",
    )
    adapter = create_adapter(papers_core, settings)  # type: ignore[arg-type]
    with pytest.raises(
        SettingsError, match=r"^SLACK_APP_TOKEN: Slack rejected it \(invalid_auth\)$"
    ):
        await asyncio.wait_for(adapter.run(), 10)


async def test_while_slack_is_unreachable_each_retry_is_one_warning_line(
    papers_core: RecordingCore,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Web API answers but the WebSocket endpoint does not (a network outage seen
    from the Socket Mode client): each attempt to connect logs one line, no traceback."""
    monkeypatch.setattr(
        FakeSlack, "ws_url", property(lambda _: f"ws://127.0.0.1:{unused_port()}/socket")
    )
    settings = Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        slack_api_url=fake_slack.api_url,
        embedding_model="hashing",
    )
    adapter = create_adapter(papers_core, settings)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(adapter.run())
    try:
        async with asyncio.timeout(30):
            while not (failed := [r for r in caplog.records if "Failed to connect" in r.message]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not adapter.ready.is_set()
    assert [(r.levelname, r.exc_info) for r in failed] == [("WARNING", None)] * len(failed)
    assert "Connect call failed" in failed[0].message or "Cannot connect" in failed[0].message
