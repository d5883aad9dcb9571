"""The local web adapter: paperbot as a chat-like page, with no chat account needed.

`paperbot run` loads it by name (`adapters.web`) when no Discord or Slack
credentials are set, or when PAPERBOT_WEB=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket

import uvicorn

from adapters.web.app import StartupStatus, compile_templates, create_app
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot
from bot.scheduler import DailyScheduler
from bot.settings import Settings, SettingsError, cannot_listen

log = logging.getLogger(__name__)


class WebAdapter:
    name = "web"

    def __init__(self, core: PaperBot, settings: Settings) -> None:
        self.core = core
        self.settings = settings
        self.port = LocalPostingPort(core.db)
        self._scheduler: DailyScheduler | None = None
        self.status = StartupStatus(message="Starting…")
        self.app = create_app(core, self.port, bind_host=settings.http_host, status=self.status)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=settings.http_host,
                port=web_port(settings),
                log_config=None,  # keep paperbot's logging set-up (and its secret mask)
                access_log=False,
                lifespan="off",
                server_header=False,
                # Longer than clients keep idle connections (aiohttp 15 s, browsers
                # longer), so a client never reuses a socket the server is just
                # closing: that race lost 3-4 of 25,000 clicks in bench/load.py.
                timeout_keep_alive=75,
            )
        )
        # Now, at start-up, rather than on the event loop while the other adapters
        # already serve: the first render of each template compiles it, and
        # uvicorn's serve() loads its config, importing its HTTP protocol (h11).
        # bench/load.py's loop watchdog caught these stalling the loop 40 and 94 ms.
        compile_templates(self.app.state.templates)
        self._server.config.load()
        if not is_loopback(settings.http_host):
            # The page has no login: it is one person's demo on their own machine.
            log.warning(
                "PAPERBOT_HTTP_HOST=%s: anyone who can reach this address can use the page "
                "as any local user (read, react, follow, forget, change #papers); "
                "there is no login",
                settings.http_host,
            )

    def use_scheduler(self, scheduler: DailyScheduler) -> None:
        """The process's scheduler, which makes the first start's post (`paperbot run`)."""
        self._scheduler = scheduler

    async def run(self) -> None:
        """Serve until cancelled; the first-start set-up runs alongside."""
        from adapters.web.first_start import first_start

        serving = asyncio.create_task(self._server.serve([self._listen()]), name="web-uvicorn")
        scheduler = self._scheduler
        local_tick = (lambda: scheduler.tick([self.port.platform])) if scheduler else None
        setup = asyncio.create_task(
            first_start(self.core, self.port, self.status, self.settings, local_tick),
            name="web-first-start",
        )
        try:
            while not self._server.started:
                if serving.done():
                    await serving  # raises if binding failed, for instance the port is in use
                    return
                await asyncio.sleep(0.05)
            url = self.url()
            log.info("local web adapter: open %s", url)
            print(f"paperbot is running: open {url}", flush=True)
            await asyncio.shield(serving)
        finally:
            setup.cancel()
            if not serving.done():
                self._server.should_exit = True
                await serving
            with contextlib.suppress(asyncio.CancelledError):
                await setup

    def _listen(self) -> socket.socket:
        """The listening socket, bound here rather than by uvicorn: uvicorn answers a
        taken port with sys.exit(1), which ends the process with a page of tracebacks."""
        host, port = self.settings.http_host, web_port(self.settings)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            setting = (
                "PAPERBOT_WEB_PORT" if self.settings.web_port is not None else "PAPERBOT_HTTP_PORT"
            )
            raise cannot_listen(setting, host, port, exc) from None
        return sock

    def url(self) -> str:
        """The address actually bound (PAPERBOT_HTTP_PORT=0 picks a free port)."""
        host, port = self.settings.http_host, web_port(self.settings)
        for server in self._server.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104  (display only)
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def web_port(settings: Settings) -> int:
    """PAPERBOT_WEB_PORT, else PAPERBOT_HTTP_PORT; never the port Slack's HTTP mode serves."""
    port = settings.web_port if settings.web_port is not None else settings.http_port
    if settings.slack_enabled and settings.slack_mode == "http" and port == settings.http_port:
        raise SettingsError(
            "PAPERBOT_WEB_PORT: Slack in HTTP mode serves PAPERBOT_HTTP_PORT "
            f"({settings.http_port}); give the web adapter another port"
        )
    return port


def create_adapter(core: PaperBot, settings: Settings) -> WebAdapter:
    return WebAdapter(core, settings)
