"""A small fake Discord: the REST routes paperbot's Discord adapter uses, and a gateway.

Start it on 127.0.0.1 (a free port), point discord.py at it, and run the real
client against it:

    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.rest_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))

A non-sharded client connects to `DEFAULT_GATEWAY` directly; `/gateway` and
`/gateway/bot` are served for sharded clients. Every JSON answer has exactly the
header `content-type: application/json`: discord.py treats anything else (even
with `; charset=utf-8`) as text.

REST: login (`/users/@me`, `/oauth2/applications/@me`), command sync,
interaction callbacks and webhook follow-ups, channel messages (with
`enforce_nonce` honoured: a repeated nonce returns the first message) and
history, and the bot's own reactions. Every request is kept in `requests`.
Failures are scripted per channel: `missing` channels answer 404,
`forbidden` ones 403; `fail_next(...)` queues a 429, or a 500 or a connection
reset *after* the message was stored (a lost response, which is retried).

Gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, HEARTBEAT -> ACK, RESUME
(replays missed events, then RESUMED) and INVALID_SESSION on a bad resume.
Tests inject events with `dispatch`, and break the connection with `drop()`
(the client resumes) or `invalidate()` (the client identifies again).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

JSON = "application/json"
API = "/api/v10"
APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GUILD_ID = 900000000000000003
CHANNEL_ID = 900000000000000004
OWNER_ID = 900000000000000005
BOT_USER = {
    "id": str(BOT_ID),
    "username": "paperbot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
}
EPHEMERAL = 1 << 6
WAIT_SECONDS = 10.0  # generous: only a broken bot ever waits this long


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Not web.json_response: it appends "; charset=utf-8", which discord.py reads as text.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"content-type": JSON, **(headers or {})},
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status)


def message_payload(message_id: int, channel: int, body: dict[str, Any]) -> dict[str, Any]:
    """A message object as Discord returns it, from the body the bot sent."""
    return {
        "id": str(message_id),
        "channel_id": str(channel),
        "author": BOT_USER,
        "content": body.get("content") or "",
        "embeds": body.get("embeds") or [],
        "components": body.get("components") or [],
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "pinned": False,
        "type": 0,
        "flags": body.get("flags", 0),
        "nonce": body.get("nonce"),
    }


@dataclass
class Recorded:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any


HEARTBEAT_ACK_DELAY = 0.02  # seconds: about a real gateway's round trip
RESET = 0  # Failure status: drop the connection instead of answering


class _ConnectionReset(Exception):
    pass


@dataclass
class Failure:
    """A scripted failure. A 429 comes before the message is stored; any other status,
    or RESET, comes after it was stored - the response is what gets lost."""

    status: int
    retry_after: float = 0.0


@dataclass
class FakeDiscord:
    guild_id: int = GUILD_ID
    channel_ids: tuple[int, ...] = (CHANNEL_ID,)
    token: str = "fake-token"  # the only bot token /users/@me accepts
    heartbeat_interval_ms: int = 41_250
    missing: set[int] = field(default_factory=set)
    forbidden: set[int] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reactions: list[tuple[int, int, str]] = field(default_factory=list)  # (channel, message, emoji)
    # Who reacted with what, as REST reads it back: {(channel, message): {emoji: [user ids]}}.
    reacted: dict[tuple[int, int], dict[str, list[int]]] = field(default_factory=dict)
    identifies: int = 0
    resumes: int = 0
    heartbeats: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(910000000000000000)
        self._failures: dict[tuple[str, str], list[Failure]] = {}
        self._nonces: dict[tuple[int, str], dict[str, Any]] = {}
        self._ws: web.WebSocketResponse | None = None
        self._session: str | None = None
        self._seq = 0
        self._sent: list[dict[str, Any]] = []  # dispatches of this session, for RESUME
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        # No access log: it is Discord's side, and its request lines carry interaction
        # tokens, which a test of what paperbot logs must not find in paperbot's stead.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ test controls
    def fail_next(self, method: str, path: str, failure: Failure) -> None:
        """Answer the next `method path` (e.g. POST /channels/1/messages) with `failure`."""
        self._failures.setdefault((method, path), []).append(failure)

    def forget_nonces(self) -> None:
        """Discord only remembers nonces for a few minutes; simulate that window passing."""
        self._nonces.clear()

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    async def wait_for(self, check: Callable[[], Any]) -> Any:
        """Wait until `check()` is truthy (re-checked after every request or gateway frame)."""

        async def until() -> Any:
            async with self._changed:
                while not (result := check()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(until(), WAIT_SECONDS)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) to the connected client; kept for replay on RESUME."""
        self._seq += 1
        frame = {"op": 0, "t": event, "s": self._seq, "d": data}
        self._sent.append(frame)
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(frame))

    async def drop(self) -> None:
        """Close the socket as a network failure would (code 4000): the client resumes."""
        if self._ws is not None:
            await self._ws.close(code=4000)

    async def invalidate(self) -> None:
        """INVALID_SESSION, not resumable: the client must identify from scratch."""
        self._session = None
        if self._ws is not None:
            await self._ws.send_str(json.dumps({"op": 9, "d": False}))

    def react_unseen(self, channel: int, message_id: int, emoji: str, user_id: int) -> None:
        """A reaction made while the bot is away: stored, but no gateway event is ever sent."""
        users = self.reacted.setdefault((channel, message_id), {}).setdefault(emoji, [])
        if user_id not in users:
            users.append(user_id)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        )
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            op = payload.get("op")
            if op == 1:
                self.heartbeats += 1
                self._background(self._ack_heartbeat(ws))
            elif op == 2:
                await self._identify(ws)
            elif op == 6:
                await self._resume(ws, payload["d"])
            await self._notify()
        await self._notify()
        return ws

    async def _ack_heartbeat(self, ws: web.WebSocketResponse) -> None:
        # A real gateway's ACK is a network round trip away. An instant one on
        # loopback can be handled before discord.py's keep-alive thread records
        # when it sent the heartbeat, and discord.py then measures from the
        # previous beat and logs a bogus "Can't keep up ... 41s behind".
        await asyncio.sleep(HEARTBEAT_ACK_DELAY)
        if not ws.closed:
            await ws.send_str(json.dumps({"op": 11}))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _identify(self, ws: web.WebSocketResponse) -> None:
        self.identifies += 1
        self._session = f"session-{self.identifies}"
        self._seq = 0
        self._sent = []
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": BOT_USER,
                "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                "session_id": self._session,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(APP_ID), "flags": 0},
            },
        )
        await self.dispatch("GUILD_CREATE", self.guild_payload())

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("session_id") != self._session:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        self.resumes += 1
        for frame in self._sent:
            if frame["s"] > int(data.get("seq") or 0):
                await ws.send_str(json.dumps(frame))
        await self.dispatch("RESUMED", {})

    def guild_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.guild_id),
            "name": "Research team",
            "owner_id": str(OWNER_ID),
            "unavailable": False,
            "member_count": 2,
            "roles": [
                {"id": str(self.guild_id), "name": "@everyone", "permissions": "0", "position": 0}
            ],
            "channels": [
                {
                    "id": str(c),
                    "type": 0,
                    "name": f"papers-{i}",
                    "position": i,
                    "guild_id": str(self.guild_id),
                }
                for i, c in enumerate(self.channel_ids)
            ],
            "members": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "voice_states": [],
            "presences": [],
        }

    # ------------------------------------------------------------------ REST
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        self.requests.append(Recorded(request.method, path, dict(request.query), body))
        try:
            if path == "/users/@me" and request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, 0, "401: Unauthorized")
            return await self._route(request.method, path, body)
        except _ConnectionReset:
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection drop
            return web.Response(status=500)  # never delivered
        finally:
            await self._notify()

    async def _route(self, method: str, path: str, body: Any) -> web.Response:
        parts = path.strip("/").split("/")
        match method, parts:
            case "GET", ["users", "@me"]:
                return _json(BOT_USER)
            case "GET", ["oauth2", "applications", "@me"]:
                return _json(self._application())
            case "GET", ["gateway"] | ["gateway", "bot"]:
                return _json({"url": self.gateway_url, "shards": 1})
            case "PUT", ["applications", _, "commands"] | [
                "applications",
                _,
                "guilds",
                _,
                "commands",
            ]:
                return _json([self._registered(c) for c in body])
            case "POST", ["interactions", interaction_id, _, "callback"]:
                return _json(self._callback(interaction_id, body))
            case "POST", ["webhooks", _, _]:
                return _json(self._message(self.channel_ids[0], body))
            case "PATCH", ["webhooks", _, _, "messages", _]:
                return _json(self._message(self.channel_ids[0], body))
            case _, ["channels", channel, *rest]:
                return self._channel(method, int(channel), rest, body, path)
        return _error(404, 0, f"fake Discord has no route {method} {path}")

    def _channel(
        self, method: str, channel: int, rest: list[str], body: Any, path: str
    ) -> web.Response:
        if channel in self.missing:
            return _error(404, 10003, "Unknown Channel")
        if channel in self.forbidden:
            return _error(403, 50013, "Missing Permissions")
        failures = self._failures.get((method, path))
        failure = failures.pop(0) if failures else None
        if failure is not None and failure.status == 429:
            headers = {"Retry-After": str(failure.retry_after), "Via": "1.1 google"}
            return _json(
                {
                    "message": "You are being rate limited.",
                    "retry_after": failure.retry_after,
                    "global": False,
                },
                429,
                headers,
            )
        match method, rest:
            case "POST", ["messages"]:
                message = self._create(channel, body)
                if failure is not None:
                    if failure.status == RESET:
                        raise _ConnectionReset
                    return _error(
                        failure.status, 0, "scripted failure after the message was stored"
                    )
                return _json(message)
            case "GET", ["messages"]:
                # Newest first, at most `limit` (Discord: default 50, at most 100).
                limit = min(int(self.requests[-1].query.get("limit", 50)), 100)
                return _json(list(reversed(self.messages.get(channel, [])))[:limit])
            case "GET", ["messages", message_id]:
                message = self._find(channel, int(message_id))
                if message is None:
                    return _error(404, 10008, "Unknown Message")
                return _json({**message, "reactions": self._reaction_counts(channel, message)})
            case "GET", ["messages", message_id, "reactions", emoji]:
                # One page: fewer than the 100 users discord.py asks for ends its paging.
                users = self.reacted.get((channel, int(message_id)), {}).get(emoji, [])
                return _json([self._user(u) for u in users])
            case "PUT", ["messages", message_id, "reactions", emoji, "@me"]:
                self.reactions.append((channel, int(message_id), emoji))
                self.react_unseen(channel, int(message_id), emoji, BOT_ID)
                return web.Response(status=204)
        return _error(404, 0, "fake Discord has no such channel route")

    def _find(self, channel: int, message_id: int) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if int(m["id"]) == message_id), None)

    def _reaction_counts(self, channel: int, message: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "emoji": {"id": None, "name": emoji},
                "count": len(users),
                "count_details": {"normal": len(users), "burst": 0},
                "me": BOT_ID in users,
                "me_burst": False,
                "burst_colors": [],
            }
            for emoji, users in self.reacted.get((channel, int(message["id"])), {}).items()
            if users
        ]

    @staticmethod
    def _user(user_id: int) -> dict[str, Any]:
        if user_id == BOT_ID:
            return BOT_USER
        return {
            "id": str(user_id),
            "username": f"user{user_id}",
            "discriminator": "0",
            "avatar": None,
        }

    def _create(self, channel: int, body: dict[str, Any]) -> dict[str, Any]:
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            existing = self._nonces.get((channel, nonce))
            if existing is not None:
                return existing
        message = self._message(channel, body)
        self.messages.setdefault(channel, []).append(message)
        if nonce is not None:
            self._nonces[(channel, nonce)] = message
        return message

    def _message(self, channel: int, body: dict[str, Any]) -> dict[str, Any]:
        return message_payload(next(self._ids), channel, body)

    def _callback(self, interaction_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data") or {}
        return {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_loading": body["type"] == 5,
                "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL),
            },
            "resource": {"type": body["type"]},
        }

    def _registered(self, command: dict[str, Any]) -> dict[str, Any]:
        return {
            **command,
            "id": str(next(self._ids)),
            "application_id": str(APP_ID),
            "version": "1",
        }

    @staticmethod
    def _application() -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "paperbot",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": {**BOT_USER, "id": str(OWNER_ID), "username": "owner", "bot": False},
            "verify_key": "0" * 64,
            "flags": 0,
        }
