"""Secrets never reach logs, user-facing errors, or git."""

from __future__ import annotations

import logging
import subprocess

import pytest

from bot import commands, logs
from bot.settings import Settings, load_settings
from tests.helpers import PROJECT_ROOT, user

pytestmark = pytest.mark.reliability

DISCORD = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB"
SLACK_BOT = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_APP = "xapp-1-A111-2222-abcdef0123456789"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
CLIENT_SECRET = "client-secret-3c9d1f0e"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DISCORD_TOKEN", DISCORD)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_BOT)
    monkeypatch.setenv("SLACK_APP_TOKEN", SLACK_APP)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("PAPERBOT_LOG_LEVEL", "DEBUG")
    return load_settings()


def _assert_clean(text: str) -> None:
    for secret in (DISCORD, SLACK_BOT, SLACK_APP, SIGNING, CLIENT_SECRET):
        assert secret not in text


def test_settings_never_show_secrets(secret_env: Settings) -> None:
    _assert_clean(repr(secret_env))
    _assert_clean(str(secret_env.model_dump()))


def test_debug_logs_mask_secrets_wherever_they_appear(
    secret_env: Settings, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    logs.configure(secret_env)
    log = logging.getLogger(__name__)
    log.debug("connecting with token %s", DISCORD)
    log.info("headers: {'Authorization': 'Bearer %s'}", SLACK_BOT)
    log.warning("socket url wss://x?token=%s secret=%s", SLACK_APP, SIGNING)
    log.error(f"oauth failed for {CLIENT_SECRET}")
    # Token-shaped strings are masked even when they are not the configured ones.
    log.info("someone pasted xoxb-9999999999-8888888888-ZzZzZzZzZzZzZzZzZzZzZzZz")
    err = capsys.readouterr().err
    assert err.count("[secret]") >= 6
    _assert_clean(err)
    assert "xoxb-9999999999" not in err


def test_user_facing_errors_have_no_traceback_or_internals(sqlite_core) -> None:  # type: ignore[no-untyped-def]
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"psycopg: password authentication failed, token={SLACK_BOT}")

    sqlite_core.today = explode
    reply = commands.execute(
        sqlite_core, commands.Invocation(user=user(), channel=None), commands.Today()
    )
    assert reply.error and "try again" in reply.text.lower()
    _assert_clean(reply.text)
    assert "Traceback" not in reply.text and "psycopg" not in reply.text


def test_dotenv_is_ignored_by_git() -> None:
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=PROJECT_ROOT)
    assert result.returncode == 0, ".env must be listed in .gitignore"
