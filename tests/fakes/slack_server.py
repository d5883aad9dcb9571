"""A small mock of the Slack Web API (and a Socket Mode WebSocket) on 127.0.0.1.

It serves what paperbot's Slack adapter calls, keeps just enough state to
answer like Slack, and records every call so tests can assert on them:

- `POST|GET /api/<method>`: `auth.test`, `users.info`, `conversations.info`,
  `chat.postMessage` (stores the message with its metadata, returns a fresh
  ts), `conversations.history` (newest first, in pages of `limit` with a
  `cursor`, metadata only with `include_all_metadata`), `apps.connections.open` (returns `ws_url`),
  `oauth.v2.access` (a fixed installation); any other method answers `ok`.
- `missing_channels` / `not_member` make posting and history there fail
  with `channel_not_found` / `not_in_channel` (and `conversations.info`
  answer `is_member: false` for the latter).
- `broken_images`: image URLs Slack cannot download; a post showing one fails
  with `invalid_blocks`, "downloading image failed", as Slack answers.
- `fail_next(method, ...)` makes the next call(s) of a method fail, for
  example with HTTP 429 and `Retry-After`, or with `channel_not_found`.
  `post_then_reset` stores a post and then drops the connection.
- `POST /respond/<n>`: a `response_url`; the JSON bodies it accepts land in
  `responses`, every body in `respond_attempts`. One showing a broken image is
  refused with HTTP 400 `invalid_blocks`.
- `GET /socket`: the Socket Mode WebSocket. It says hello, `push()` sends an
  envelope and `acks` collects what the client sends back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_USER = "UBOT"
WAIT_SECONDS = 10.0
BOT_ID = "BBOT"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float  # time.monotonic() when it arrived


@dataclass
class Failure:
    status: int = 200
    error: str = "internal_error"
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlack:
    def __init__(self, team_id: str = "T1") -> None:
        self.team_id = team_id
        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.missing_channels: set[str] = set()
        self.not_member: set[str] = set()
        self.broken_images: set[str] = set()
        self.respond_attempts: list[dict[str, Any]] = []  # accepted or not
        self.messages: dict[str, list[dict[str, Any]]] = {}
        # Reactions as `reactions.get` reads them back: {(channel, ts): {name: [user ids]}}.
        self.reactions: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.responses: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.reset_after_post = 0
        self._failures: dict[str, list[Failure]] = {}
        self._ts = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._socket: web.WebSocketResponse | None = None
        self._socket_open = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{n}", self._respond)
        app.router.add_get("/socket", self._websocket)
        # No access log: it is Slack's side, and its request lines carry response_urls,
        # which a test of what paperbot logs must not find in paperbot's stead.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/socket"

    def response_url(self) -> str:
        return f"{self.url}/respond/{next(self._response_ids)}"

    # ------------------------------------------------------------ test controls
    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str = "internal_error",
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        failures = self._failures.setdefault(method, [])
        failures.extend(Failure(status, error, headers or {}) for _ in range(times))

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        """Wait (at most WAIT_SECONDS) until `predicate()` holds, for work Bolt does after its ack."""
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(predicate)

    async def push(self, envelope: dict[str, Any]) -> None:
        """Send a Socket Mode envelope to the connected client."""
        async with asyncio.timeout(WAIT_SECONDS):
            await self._socket_open.wait()
        assert self._socket is not None
        await self._socket.send_str(json.dumps(envelope))

    # ------------------------------------------------------------ handlers
    def react_unseen(self, channel: str, ts: str, name: str, user: str) -> None:
        """A reaction made while paperbot is stopped: stored, but its event is never delivered."""
        users = self.reactions.setdefault((channel, ts), {}).setdefault(name, [])
        if user not in users:
            users.append(user)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            raw = await request.text()
            if request.content_type == "application/json":
                params.update(json.loads(raw or "{}"))
            else:
                params.update(parse_qsl(raw))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.get("token")
        self.calls.append(Call(method, params, token, time.monotonic()))
        try:
            failures = self._failures.get(method)
            if failures:
                failure = failures.pop(0)
                return web.json_response(
                    {"ok": False, "error": failure.error},
                    status=failure.status,
                    headers=failure.headers,
                )
            if method == "chat.postMessage" and self.reset_after_post:
                self.reset_after_post -= 1
                self._post(params)
                assert request.transport is not None
                request.transport.close()  # the post is stored, the answer never arrives
                return web.Response()
            return web.json_response(self._answer(method, params))
        finally:
            await self._notify()

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "team_id": self.team_id,
                "team": "Test team",
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "url": "https://test.slack.com/",
            }
        if method == "users.info":
            user = self.users.get(str(params.get("user")))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "conversations.info":
            channel = self.channels.get(str(params.get("channel")))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            # As Slack answers a bot token: whether the bot is in the channel.
            member = channel["id"] not in self.not_member
            return {"ok": True, "channel": {**channel, "is_member": member}}
        if method in ("chat.postMessage", "conversations.history"):
            channel = str(params.get("channel"))
            if channel in self.missing_channels:
                return {"ok": False, "error": "channel_not_found"}
            if channel in self.not_member:
                return {"ok": False, "error": "not_in_channel"}
        if method == "chat.postMessage":
            pointer = self._broken_image(params.get("blocks") or [])
            if pointer:
                return {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": [f"downloading image failed [json-pointer:{pointer}]"],
                }
            message = self._post(params)
            return {
                "ok": True,
                "channel": params["channel"],
                "ts": message["ts"],
                "message": message,
            }
        if method == "conversations.history":
            history = list(reversed(self.messages.get(str(params.get("channel")), [])))
            if str(params.get("include_all_metadata")).lower() not in ("1", "true"):
                history = [{k: v for k, v in m.items() if k != "metadata"} for m in history]
            # Pages as Slack does: `limit` messages (default 100), and an opaque
            # `next_cursor` (an offset here) while more are left.
            start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 100)
            more = start + limit < len(history)
            return {
                "ok": True,
                "messages": history[start : start + limit],
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        if method == "reactions.get":
            channel, ts = str(params.get("channel")), str(params.get("timestamp"))
            message = next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            reactions = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in self.reactions.get((channel, ts), {}).items()
                if users
            ]
            return {
                "ok": True,
                "type": "message",
                "channel": channel,
                "message": {**message, "reactions": reactions},
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": self.ws_url}
        if method == "oauth.v2.access":
            return {
                "ok": True,
                "app_id": "A1",
                "authed_user": {"id": "UINSTALLER"},
                "scope": "commands,chat:write",
                "token_type": "bot",
                "access_token": f"xoxb-{self.team_id}-installed",
                "bot_user_id": BOT_USER,
                "team": {"id": self.team_id, "name": "Test team"},
                "enterprise": None,
                "is_enterprise_install": False,
            }
        return {"ok": True}

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        message = {
            "type": "message",
            "ts": f"{1_700_000_000 + next(self._ts)}.000100",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": params.get("text", ""),
            "blocks": params.get("blocks") or [],
            "metadata": metadata,
        }
        self.messages.setdefault(str(params.get("channel")), []).append(message)
        return message

    def _broken_image(self, blocks: list[dict[str, Any]] | str) -> str | None:
        """The JSON pointer of the first image in `broken_images`, if any."""
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        for i, block in enumerate(blocks):
            if (block.get("accessory") or {}).get("image_url") in self.broken_images:
                return f"/blocks/{i}/accessory/image_url"
        return None

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.respond_attempts.append(body)
        if self._broken_image(body.get("blocks") or []):
            # As an incoming webhook refuses a payload: an HTTP error, the code as text.
            return web.Response(status=400, text="invalid_blocks")
        self.responses.append(body)
        await self._notify()
        return web.json_response({"ok": True})

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        self._socket_open.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
                await self._notify()
        return socket
