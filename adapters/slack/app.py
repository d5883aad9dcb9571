"""Assembly: the Bolt app, its Web API client, OAuth when configured, and the runner's Adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import events
from adapters.slack.installations import InstallationStore, StateStore
from adapters.slack.listeners import register_listeners
from adapters.slack.posting import SlackPostingPort, posting_client
from bot.paperbot import PaperBot
from bot.settings import Settings, SettingsError, cannot_listen

log = logging.getLogger(__name__)

# The bot scopes requested by the OAuth install flow; keep in step with manifest.yml.
BOT_SCOPES = [
    "commands",
    "chat:write",
    "reactions:read",
    "users:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
]
EVENTS_PATH = "/slack/events"


class _TokenGivenTwice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, as we also hand
    it a client (with our retries and API URL) that carries that same token, warns on
    every start that "`token` will be unused": true, harmless, and alarming to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


class _RetriesInOneLine(logging.Filter):
    """While Slack is unreachable, the Socket Mode client tries again every 10 s and
    logs each failure with a full traceback: a page a minute for the length of an
    outage. Its own message already names the error, so one warning line it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("Failed to connect"):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# Bolt's own logger; its Socket Mode handler hands it to the client it starts.
_bolt_log = logging.getLogger(f"slack_bolt.{AsyncApp.__name__}")
_bolt_log.addFilter(_TokenGivenTwice())
_bolt_log.addFilter(_RetriesInOneLine())


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def web_client(settings: Settings) -> AsyncWebClient:
    """The client listeners use: retries connection errors and honours 429 Retry-After."""
    return AsyncWebClient(
        token=None if settings.slack_oauth else _secret(settings.slack_bot_token),
        base_url=settings.slack_api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(
    core: PaperBot,
    settings: Settings,
    *,
    installations: InstallationStore | None = None,
) -> AsyncApp:
    """The slack-bolt app with every paperbot listener registered."""
    common: dict[str, Any] = {
        "name": "paperbot",
        "client": web_client(settings),
        "signing_secret": _secret(settings.slack_signing_secret) or "",
        # Events are stored before Slack gets its 200, so a failed write makes Slack
        # retry (deduplicated by event_id); commands and buttons ack first and do
        # their work in lazy listeners.
        "process_before_response": True,
    }
    if settings.slack_oauth:
        installations = installations or InstallationStore(core.db, settings.slack_client_id or "")
        app = AsyncApp(
            **common,
            installation_store=installations,
            oauth_settings=AsyncOAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=_secret(settings.slack_client_secret),
                scopes=BOT_SCOPES,
                installation_store=installations,
                state_store=StateStore(core.db),
                install_path="/slack/install",
                redirect_uri_path="/slack/oauth_redirect",
            ),
        )
    else:
        if settings.slack_bot_token is None:
            raise SettingsError(
                "SLACK_BOT_TOKEN: required, unless SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                "are both set for multi-workspace OAuth"
            )
        app = AsyncApp(**common)  # single workspace: the client carries SLACK_BOT_TOKEN
    register_listeners(app, core, installations)
    return app


def http_app(app: AsyncApp, signing_secret: str) -> web.Application:
    """Bolt's aiohttp app (/slack/events, and the OAuth pages when enabled), authenticated first.

    Bolt parses a request before checking its signature, and some malformed
    bodies make that parsing raise; checking the signature up front answers
    anything not from Slack with 401 before any parsing, and a signed but
    malformed body with 400 instead of a stack trace.
    """
    verifier = SignatureVerifier(signing_secret)

    @web.middleware
    async def slack_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != EVENTS_PATH:
            return await handler(request)  # the OAuth pages are for browsers
        body = await request.text()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        try:
            return await handler(request)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            log.warning("slack: signed but malformed request rejected")
            return web.Response(status=400)

    web_app = app.web_app(path=EVENTS_PATH)
    web_app.middlewares.append(slack_only)
    return web_app


@dataclass
class SlackAdapter:
    """What `paperbot run` starts: Socket Mode by default, or HTTP on /slack/events."""

    app: AsyncApp
    core: PaperBot
    settings: Settings
    port: SlackPostingPort
    name: str = "slack"
    bound_port: int | None = field(default=None, init=False)  # HTTP mode, once listening
    ready: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    recovery: asyncio.Task[int] | None = field(default=None, init=False)

    async def run(self) -> None:
        serve = self._serve_http if self.settings.slack_mode == "http" else self._serve_socket_mode
        if not self.settings.slack_oauth:
            # Bolt checks the bot token only on the first request, and then answers
            # every command with an authorization error in the log and nothing in Slack.
            await _check_token("SLACK_BOT_TOKEN", self.app.client.auth_test())
        try:
            await serve()
        finally:
            if self.recovery is not None:
                self.recovery.cancel()

    def _serving(self) -> None:
        """Events flow: say so, and read back the reactions made while we were stopped."""
        self.ready.set()
        self.recovery = asyncio.create_task(
            events.recover_missed_reactions(self.port.client, self.port.token_for, self.core)
        )

    async def _serve_socket_mode(self) -> None:
        # Not None: create_adapter refuses Socket Mode without an app token.
        token = cast(str, _secret(self.settings.slack_app_token))
        # The Socket Mode client would retry a rejected token every 10 s for ever,
        # logging a traceback each time.
        await _check_token(
            "SLACK_APP_TOKEN", self.app.client.apps_connections_open(app_token=token)
        )
        handler = AsyncSocketModeHandler(self.app, token)
        await handler.connect_async()
        log.info("slack: connected in Socket Mode")
        self._serving()
        try:
            await asyncio.Future()  # until cancelled
        finally:
            await handler.close_async()

    async def _serve_http(self) -> None:
        runner = web.AppRunner(
            http_app(self.app, _secret(self.settings.slack_signing_secret) or "")
        )
        await runner.setup()
        host, port = self.settings.http_host, self.settings.http_port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise cannot_listen("PAPERBOT_HTTP_PORT", host, port, exc) from None
        self.bound_port = runner.addresses[0][1]  # the real port when PAPERBOT_HTTP_PORT=0
        log.info(
            "slack: serving %s on http://%s:%s",
            EVENTS_PATH,
            self.settings.http_host,
            self.bound_port,
        )
        self._serving()
        try:
            await asyncio.Future()
        finally:
            await runner.cleanup()


# What Slack answers a wrong, revoked or wrong-kind token with: no retry can help.
_REJECTED = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "account_inactive",
    "not_allowed_token_type",
}


async def _check_token(variable: str, call: Awaitable[object]) -> None:
    """Stop start-up with one line if Slack rejects the token `call` presents. Any
    other failure (the network, a Slack outage) is left to the clients' own retries."""
    try:
        await call
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in _REJECTED:
            raise SettingsError(f"{variable}: Slack rejected it ({error})") from None
    except (aiohttp.ClientError, TimeoutError):
        pass


def create_adapter(core: PaperBot, settings: Settings) -> SlackAdapter:
    if settings.slack_mode == "http" and not _secret(settings.slack_signing_secret):
        # Without it no request could be verified (or any could be forged).
        raise SettingsError("SLACK_SIGNING_SECRET: required in HTTP mode")
    if settings.slack_mode == "socket" and not _secret(settings.slack_app_token):
        raise SettingsError(
            "SLACK_APP_TOKEN: required in Socket Mode (or set PAPERBOT_SLACK_MODE=http)"
        )
    installations = (
        InstallationStore(core.db, settings.slack_client_id or "") if settings.slack_oauth else None
    )
    app = build_app(core, settings, installations=installations)
    bot_token = _secret(settings.slack_bot_token)

    async def token_for(team_id: str) -> str | None:
        if installations is not None:
            return await installations.bot_token(team_id)
        return bot_token

    port = SlackPostingPort(posting_client(settings.slack_api_url), token_for, core.record_posts)
    return SlackAdapter(app=app, core=core, settings=settings, port=port)
