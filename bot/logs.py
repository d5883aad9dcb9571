"""Logging set-up, with secrets masked however they reach a log line, and every
message on one line."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from bot.settings import Settings

# Token shapes of Slack (xoxb-, xapp-, ...) and Discord (three base64 parts).
_SECRET_SHAPES = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}"
    r"|[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"
)


class SecretMask(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRET_SHAPES.sub("[secret]", message)
        for secret in self._secrets:
            masked = masked.replace(secret, "[secret]")
        if masked != message:
            record.msg, record.args = masked, None
        return True


# Line breaks and terminal control characters. A log message quotes text from
# outside (a request path, a paper title, a chat command): a newline in it
# would start a forged log line, an escape sequence would drive the terminal.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class OneLine(logging.Filter):
    """Escapes control characters in the message (`\\n`, `\\x1b`); a traceback keeps its lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each record, not as it was at set-up: a live
    progress bar (rich) swaps it for a proxy that prints above the bar, and a handler
    holding the old stream wrote over the bar instead."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(settings: Settings) -> None:
    secrets = [
        s.get_secret_value()
        for s in (
            settings.discord_token,
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.slack_signing_secret,
            settings.slack_client_secret,
        )
        if s is not None
    ]
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets))
    handler.addFilter(OneLine())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Libraries at DEBUG are noisy and some echo request headers; keep them at INFO or above.
    # discord.py and slack-sdk log at DEBUG the URLs of every answer, which carry a
    # per-request credential: an interaction token, a response_url (minutes long each).
    for noisy in (
        "httpx",
        "httpcore",
        "urllib3",
        "asyncio",
        "aiosqlite",
        "websockets",
        "discord",
        "slack_sdk",
    ):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    # Routine chatter at INFO: alembic's plugin set-up (7 lines per migration check)
    # and APScheduler's two lines per job run (every minute). Their warnings stay.
    for chatty in ("alembic.runtime.plugins", "apscheduler.executors.default"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # One "Adding job tentatively" per job at every start: bot.scheduler says it in
    # one line. APScheduler's other lines (started, shut down) stay.
    handler.addFilter(_Drop("Adding job tentatively"))


class _Drop(logging.Filter):
    """Drops the records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefix)
