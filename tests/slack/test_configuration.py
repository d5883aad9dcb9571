"""The adapter refuses to start with credentials that cannot work, with one clear line."""

from __future__ import annotations

import pytest

from adapters.slack import create_adapter
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
