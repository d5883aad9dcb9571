"""The adapter refuses to start with credentials that cannot work, with one clear line."""

from __future__ import annotations

import logging

import pytest

from adapters.slack import build_app, create_adapter
from bot.settings import Settings, SettingsError
from tests.slack.slack_requests import RecordingCore


def test_a_client_id_without_its_secret_is_a_clear_settings_error(
    papers_core: RecordingCore,
) -> None:
    settings = Settings(SLACK_CLIENT_ID="111.222", SLACK_SIGNING_SECRET="x", slack_mode="http")
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN"):
        create_adapter(papers_core, settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "missing"), [("http", "SLACK_SIGNING_SECRET"), ("socket", "SLACK_APP_TOKEN")]
)
def test_each_mode_refuses_to_start_without_its_secret(
    papers_core: RecordingCore, mode: str, missing: str
) -> None:
    settings = Settings(SLACK_BOT_TOKEN="xoxb-1", slack_mode=mode)
    with pytest.raises(SettingsError, match=missing):
        create_adapter(papers_core, settings)  # type: ignore[arg-type]


def test_a_bot_token_in_the_environment_draws_no_warning_about_going_unused(
    papers_core: RecordingCore,
    slack_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SLACK_BOT_TOKEN set in the environment, as an operator sets it: the app uses it
    (through its client), and the log says nothing about the token being unused."""
    token = slack_settings.slack_bot_token
    assert token is not None
    monkeypatch.setenv("SLACK_BOT_TOKEN", token.get_secret_value())
    caplog.set_level(logging.WARNING)
    app = build_app(papers_core, slack_settings)  # type: ignore[arg-type]
    assert app.client.token == token.get_secret_value()
    assert not [r for r in caplog.records if "token" in r.getMessage().lower()]
