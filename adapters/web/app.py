"""The local web app: a chat-like page for the channels of the `local` platform.

`#papers` is the page's home (`/`), where the first start subscribes and posts;
any channel a command subscribes has its own page (`/channels/<name>`), and a
command typed there runs in that channel, as in a chat app.

Every route only translates: HTTP in, a core call or a `/papers` command out,
HTML back. Core calls are synchronous, so they run in a worker thread and the
event loop stays free.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from adapters.web.security import HostCheck, RequestSecurity
from bot.commands import Forget, Invocation, Reply, execute, run_text
from bot.database import is_transient
from bot.domain import GITHUB_HOSTS, ChannelRef, UserRef
from bot.errors import SORRY, PaperBotError
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
WORKSPACE = "demo"
CHANNEL = ChannelRef("local", WORKSPACE, "#papers")
USERS = ("alice", "bob", "carol")
USER_COOKIE = "paperbot_user"
MAX_COMMAND_CHARS = 2000
MAX_BODY_BYTES = 16 * 1024
HISTORY = 100
_USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CHANNEL_NAME = re.compile(r"^<?#([A-Za-z0-9_-]{1,60})>?$")
_PAPERS_COMMAND = re.compile(r"^/papers(?:\s+(.*))?$", re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*([^*\n]+)\*")


@dataclass
class StartupStatus:
    """What the first start is doing, shown on the page until the first post is there."""

    ready: bool = False
    message: str = "Starting…"
    problems: list[str] = field(default_factory=list)


def chat_markup(text: str) -> Markup:
    """Escape, then render the `code` and *bold* that command replies use. Nothing else."""
    escaped = str(escape(text))
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return Markup(_BOLD.sub(r"<strong>\1</strong>", escaped))  # noqa: S704  (input escaped above)


def http_url(url: str | None, hosts: Sequence[str] = ()) -> str | None:
    """The URL if it is an http(s) link (to one of `hosts`, if given), else None: a feed
    must not smuggle in `javascript:`, nor another site under a "GitHub" label."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    # A backslash: Python reads the host of "https://evil.example\\@github.com" as
    # github.com, browsers as evil.example.
    if hosts and ("\\" in url or parts.hostname not in hosts):
        return None
    return url


def _templates() -> Jinja2Templates:
    # autoescape for every template, not only *.html: paper text is hostile until escaped.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["chat"] = chat_markup
    env.filters["http_url"] = http_url
    env.filters["github_url"] = functools.partial(http_url, hosts=GITHUB_HOSTS)
    return Jinja2Templates(env=env)


def compile_templates(templates: Jinja2Templates) -> None:
    """Compile every template now, into the environment's cache.

    Otherwise the first request to render each one compiles it on the event
    loop, which stalled the loop for tens of milliseconds while the other
    adapters were already serving. `WebAdapter` calls this when it is created,
    before anything serves.
    """
    for name in templates.env.list_templates():
        templates.env.get_template(name)


def current_user(request: Request) -> UserRef:
    name = request.cookies.get(USER_COOKIE, "")
    return UserRef("local", WORKSPACE, name if _USER_NAME.match(name) else USERS[0])


def resolve_channel(raw: str) -> str | None:
    """`#name` or `<#name>` -> the local channel id `#name`."""
    match = _CHANNEL_NAME.match(raw.strip())
    return f"#{match.group(1).lower()}" if match else None


def channel_ref(raw: object) -> ChannelRef:
    """The local channel a page or a request names (`#name`); #papers when it names none."""
    if raw is None:
        return CHANNEL
    channel = resolve_channel(raw) if isinstance(raw, str) else None
    if channel is None:
        raise _BadRequest("a channel is # and then letters, digits, _ or -")
    return ChannelRef(CHANNEL.platform, WORKSPACE, channel)


def channel_path(channel: str) -> str:
    return "/" if channel == CHANNEL.channel else f"/channels/{channel.removeprefix('#')}"


def invocation(
    user: UserRef, channel: ChannelRef = CHANNEL, setting_up: str | None = None
) -> Invocation:
    # On the local demo everyone may manage channels: it is one person's machine.
    return Invocation(
        user=user,
        channel=channel,
        can_manage=True,
        resolve_channel=resolve_channel,
        setting_up=setting_up,
    )


async def _json_object(request: Request) -> dict[str, Any]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        # Read no further than any command could need, so a huge body costs nothing.
        if len(raw) > MAX_BODY_BYTES:
            raise _BadRequest("request too large", status=413)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _BadRequest("expected a JSON object")
    return body


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    core: PaperBot,
    port: LocalPostingPort,
    *,
    bind_host: str = "127.0.0.1",
    status: StartupStatus | None = None,
) -> Starlette:
    templates = _templates()
    startup = status or StartupStatus(ready=True, message="")

    async def page_context(
        request: Request, user: UserRef, channel: ChannelRef | None
    ) -> dict[str, Any]:
        users = list(USERS) if user.user in USERS else [*USERS, user.user]
        others = await asyncio.to_thread(port.channels, WORKSPACE)
        channels = [CHANNEL.channel, *(c for c in others if c != CHANNEL.channel)]
        if channel is not None and channel.channel not in channels:
            channels.append(channel.channel)  # visited before anything made it exist
        return {
            "user": user.user,
            "users": users,
            "csrf_token": request.state.csrf_token,
            "channel": channel.channel if channel else None,
            "channels": [(c, channel_path(c)) for c in channels],
            "status": startup,
        }

    async def channel_page(request: Request) -> Response:
        user = current_user(request)
        name = request.path_params.get("name")
        found = CHANNEL.channel if name is None else resolve_channel(f"#{name}")
        if found is None:
            raise HTTPException(404)
        if name is not None and (found == CHANNEL.channel or found != f"#{name}"):
            return RedirectResponse(channel_path(found))  # one address per channel
        channel = ChannelRef(CHANNEL.platform, WORKSPACE, found)
        posts = await asyncio.to_thread(port.history, channel, HISTORY)
        paper_ids = [p.pick.paper_id for p in posts if p.pick]
        states = await asyncio.to_thread(core.feedback_states, user, paper_ids)
        context = await page_context(request, user, channel)
        return templates.TemplateResponse(
            request, "channel.html", {**context, "posts": posts, "states": states}
        )

    async def profile_page(request: Request) -> Response:
        user = current_user(request)
        profile = await asyncio.to_thread(core.profile, user)
        saved = await asyncio.to_thread(core.saved, user)
        paper_map = await asyncio.to_thread(core.paper_map, user)
        context = await page_context(request, user, None)
        return templates.TemplateResponse(
            request,
            "profile.html",
            {**context, "profile": profile, "saved": saved, "map": paper_map},
        )

    async def reply_fragment(request: Request, user: UserRef, said: str, reply: Reply) -> Response:
        # Search results may include papers the user already rated: show those as set.
        states = await asyncio.to_thread(
            core.feedback_states, user, [p.paper_id for p in reply.picks]
        )
        return templates.TemplateResponse(
            request,
            "_reply.html",
            {"user": user.user, "said": said, "reply": reply, "states": states},
        )

    async def command(request: Request) -> Response:
        user = current_user(request)
        body = await _json_object(request)
        text = str(body.get("text", ""))[:MAX_COMMAND_CHARS].strip()
        channel = channel_ref(body.get("channel"))
        match = _PAPERS_COMMAND.match(text)
        if match:
            setting_up = None if startup.ready else startup.message
            inv = invocation(user, channel, setting_up)
            reply = await asyncio.to_thread(run_text, core, inv, match.group(1) or "")
        else:
            reply = Reply(text="I answer `/papers` commands here. Try `/papers help`.")
        return await reply_fragment(request, user, text, reply)

    async def forget(request: Request) -> Response:
        user = current_user(request)
        reply = await asyncio.to_thread(execute, core, invocation(user), Forget(confirmed=True))
        return await reply_fragment(request, user, "", reply)

    async def feedback(request: Request) -> Response:
        user = current_user(request)
        body = await _json_object(request)
        paper_id, kind, active = body.get("paper_id"), body.get("kind"), body.get("active")
        if not isinstance(paper_id, str) or kind not in ("up", "down", "save"):
            raise _BadRequest("expected paper_id and kind (up, down or save)")
        if not isinstance(active, bool):
            raise _BadRequest("expected active: true or false")
        channel = channel_ref(body.get("channel"))
        try:
            if kind == "save":
                await asyncio.to_thread(core.save, user, paper_id, active)
            else:
                signal = 1 if kind == "up" else -1
                # The page shows one thumb at a time, so choosing one replaces the other.
                await asyncio.to_thread(
                    core.react,
                    user,
                    paper_id,
                    signal,
                    active,
                    channel=channel.channel,
                    exclusive=True,
                )
        except PaperBotError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:
            if is_transient(exc):
                # The database stayed locked or down past the core's retry deadline. The
                # write was rolled back whole, so the user can simply click again.
                log.warning("feedback on %r not stored: the database stayed busy", paper_id[:80])
                return JSONResponse({"error": SORRY}, status_code=503)
            # As a failed command does: the person is told, the log gets the traceback
            # (a read-only database file, say, which waiting does not fix).
            log.exception("feedback on %r failed", paper_id[:80])
            return JSONResponse({"error": SORRY}, status_code=503)
        state = (await asyncio.to_thread(core.feedback_states, user, [paper_id])).get(paper_id)
        return JSONResponse(
            {
                "up": bool(state and state.up),
                "down": bool(state and state.down),
                "save": bool(state and state.saved),
            }
        )

    async def startup_status(request: Request) -> Response:
        # Polled by the page while the banner shows, instead of reloading it (app.js).
        return JSONResponse(
            {"ready": startup.ready, "message": startup.message, "problems": startup.problems}
        )

    async def switch_user(request: Request) -> Response:
        name = str((await _json_object(request)).get("user", "")).strip().lower()
        if not _USER_NAME.match(name):
            raise _BadRequest("a user name is a lowercase letter, then letters, digits, _ or -")
        response = JSONResponse({"user": name})
        response.set_cookie(USER_COOKIE, name, httponly=True, samesite="strict")
        return response

    async def bad_request(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, _BadRequest) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse("Not found", status_code=404)

    app = Starlette(
        routes=[
            Route("/", channel_page),
            Route("/channels/{name}", channel_page),
            Route("/profile", profile_page),
            Route("/api/command", command, methods=["POST"]),
            Route("/api/forget", forget, methods=["POST"]),
            Route("/api/feedback", feedback, methods=["POST"]),
            Route("/api/user", switch_user, methods=["POST"]),
            Route("/api/status", startup_status),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(HostCheck, bind_host=bind_host),
            Middleware(RequestSecurity),
        ],
        exception_handlers={_BadRequest: bad_request, 404: not_found},
    )
    app.state.templates = templates  # for compile_templates before serving
    return app
