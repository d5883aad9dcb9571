"""Request security of the local web app: CSRF protection and browser hardening headers.

The app binds loopback, but any web page the user visits can still send
requests to 127.0.0.1. So every state-changing request must prove it comes
from our own page:

- its `Origin` is this server's own origin (browsers always send it on POST,
  and a page cannot forge it), and
- it carries the per-browser token from the `paperbot_csrf` cookie in the
  `X-CSRF-Token` header (double submit). Another site can make the browser
  send the cookie, but it cannot read it to copy it into a header.

A strict Content-Security-Policy (scripts and styles from our own static files
only) means that even a paper title that slipped through escaping could not
run script.

Before all that, the `Host` header must name this server (`HostCheck`): a
hostile name that resolves to this machine (DNS rebinding) makes the page's
origin the attacker's, which would pass the Origin check and read the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import socket
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CSRF_COOKIE = "paperbot_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_BYTES = 32

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


# Binding these listens on every interface, so the address a visitor uses is unknown.
WILDCARD_BINDS = ("0.0.0.0", "::", "")  # noqa: S104  (comparing, not binding)


class HostCheck:
    """ASGI middleware: answers 400 unless the Host header names this server.

    An IP address always does: rebinding needs a name the attacker's DNS answers
    for. Names: `localhost` and the bound host; bound to every interface, also
    this machine's own names (`mybox`, `mybox.local`), which LAN visitors may use.
    """

    def __init__(self, app: ASGIApp, bind_host: str) -> None:
        self.app = app
        if bind_host in WILDCARD_BINDS:
            machine = socket.gethostname().lower()
            names = {"localhost", machine, f"{machine}.local"}
        else:
            names = {"localhost", bind_host.lower()}
        self.names = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allows(Headers(scope=scope).get("host")):
            response = PlainTextResponse("Invalid host header", status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def allows(self, host_header: str | None) -> bool:
        name = _host_name(host_header or "")
        return bool(name) and (name in self.names or _is_address(name))


def _host_name(host: str) -> str:
    """The host of `name`, `name:port` or `[v6]:port`, lowercased, without brackets or port."""
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:  # a malformed port or bracket
        return ""


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestSecurity:
    """ASGI middleware: issues the CSRF cookie, checks unsafe requests, adds the headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookie = _csrf_cookie(headers)
        if scope["method"] not in SAFE_METHODS:
            problem = _unsafe_request_problem(scope, headers, cookie)
            if problem:
                log.warning("refused %s %s: %s", scope["method"], scope["path"], problem)
                response = PlainTextResponse(f"Forbidden: {problem}", status_code=403)
                await response(scope, receive, _with_headers(send, None))
                return
        token = cookie or secrets.token_urlsafe(_TOKEN_BYTES)
        scope.setdefault("state", {})["csrf_token"] = token
        await self.app(scope, receive, _with_headers(send, None if cookie else token))


def _csrf_cookie(headers: Headers) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header from some other local app: treat as absent
        return None
    morsel = jar.get(CSRF_COOKIE)
    # Only tokens we could have issued; anything else is replaced by a fresh one.
    if morsel is None or not 20 <= len(morsel.value) <= 100:
        return None
    return morsel.value


def _unsafe_request_problem(scope: Scope, headers: Headers, cookie: str | None) -> str | None:
    origin = headers.get("origin")
    own_origin = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
    if origin is None:
        return "missing Origin header"
    if origin != own_origin:
        return "cross-origin request"
    sent = headers.get(CSRF_HEADER)
    if cookie is None or sent is None or not hmac.compare_digest(sent, cookie):
        return "missing or wrong CSRF token"
    return None


def _with_headers(send: Send, new_token: str | None) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers.setdefault(name, value)
            if new_token is not None:
                headers.append(
                    "set-cookie",
                    f"{CSRF_COOKIE}={new_token}; Path=/; HttpOnly; SameSite=Strict",
                )
        await send(message)

    return wrapped
