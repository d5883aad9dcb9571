"""Fixtures: the fake Slack Web API, settings pointing at it, and the real Bolt app on the core."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_bolt.async_app import AsyncApp

from adapters.slack import build_app
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.fakes.slack_server import FakeSlack
from tests.helpers import topical_papers
from tests.slack.slack_requests import BOT_TOKEN, SIGNING_SECRET, TEAM, RecordingCore


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack(TEAM).start()
    fake.users["U1"] = {"id": "U1", "is_admin": False, "is_owner": False}
    fake.users["UADMIN"] = {"id": "UADMIN", "is_admin": True, "is_owner": False}
    fake.users["UCREATOR"] = {"id": "UCREATOR", "is_admin": False, "is_owner": False}
    fake.channels["C1"] = {"id": "C1", "name": "papers", "creator": "UCREATOR"}
    fake.channels["C2"] = {"id": "C2", "name": "other", "creator": "USOMEONE"}
    yield fake
    await fake.stop()


@pytest.fixture
def slack_settings(fake_slack: FakeSlack) -> Settings:
    return Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        slack_mode="http",
        http_port=0,
        embedding_model="hashing",
    )


@pytest.fixture
def papers_core(core: PaperBot) -> RecordingCore:
    core.ingest(topical_papers())
    return RecordingCore(core)


@pytest.fixture
def app(papers_core: RecordingCore, slack_settings: Settings) -> AsyncApp:
    return build_app(papers_core, slack_settings)  # type: ignore[arg-type]
