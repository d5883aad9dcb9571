"""Signed Slack requests as Slack sends them, and a core that records what it is asked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SlackAdapter
from bot.domain import ChannelRef, UserRef
from bot.paperbot import PaperBot

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
TEAM = "T1"
ME = UserRef("slack", TEAM, "U1")  # the member who sends most requests
HERE = ChannelRef("slack", TEAM, "C1")  # the channel they come from


def signed_headers(
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    json_body: bool = False,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "content-type": "application/json" if json_body else "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }


def slash_body(text: str, response_url: str, *, user: str = "U1", channel: str = "C1") -> str:
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "papers",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/papers",
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def event_body(event: dict[str, Any], *, event_id: str = "Ev1", team: str = TEAM) -> str:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": team, "user_id": "UBOT", "is_bot": True, "enterprise_id": None}
            ],
            "event": event,
        }
    )


def reaction(
    kind: str, emoji: str, ts: str, *, user: str = "U1", channel: str = "C1"
) -> dict[str, Any]:
    return {
        "type": kind,
        "user": user,
        "reaction": emoji,
        "item_user": "UBOT",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def action_payload(
    action_id: str, value: str, response_url: str, *, user: str = "U1", channel: str = "C1"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A1",
        "token": "legacy",
        "channel": {"id": channel, "name": "papers"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": channel},
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "feedback",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def action_body(*args: Any, **kwargs: Any) -> str:
    return urlencode({"payload": json.dumps(action_payload(*args, **kwargs))})


async def dispatch(app: AsyncApp, body: str, headers: dict[str, str] | None = None) -> BoltResponse:
    """Send a request through Bolt the way its HTTP adapters do, signed unless told otherwise."""
    if headers is None:
        headers = signed_headers(body, json_body=body.startswith("{"))
    return await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))


class RecordingCore:
    """The real core, recording each method called; `hold(name)` blocks that method until released."""

    def __init__(self, core: PaperBot) -> None:
        self._core = core
        self.called: list[str] = []
        self.entered = threading.Event()
        self._gates: dict[str, threading.Event] = {}

    def hold(self, name: str) -> threading.Event:
        gate = self._gates[name] = threading.Event()
        return gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._core, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.called.append(name)
            gate = self._gates.get(name)
            if gate is not None:
                self.entered.set()
                gate.wait(30)
            return attr(*args, **kwargs)

        return call


@contextlib.asynccontextmanager
async def running(adapter: SlackAdapter) -> AsyncIterator[SlackAdapter]:
    """Run the adapter as `paperbot run` does, until the block ends (then cancel it)."""
    task = asyncio.create_task(adapter.run())
    try:
        async with asyncio.timeout(10):
            await adapter.ready.wait()
        yield adapter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
