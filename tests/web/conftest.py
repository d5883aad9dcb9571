"""Fixtures for the web adapter: the app on a real database with the sample papers posted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from adapters.web.app import CHANNEL, create_app
from bot.domain import Pick
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot
from tests.web.browser import browser  # noqa: F401  (a fixture: pytest finds it by name)

ORIGIN = "http://127.0.0.1:8080"


class WebClient(TestClient):
    """A TestClient that behaves like our page served at its `base_url`: that Origin,
    and the CSRF token from the page."""

    def csrf(self) -> str:
        if "paperbot_csrf" not in self.cookies:
            self.get("/")
        return self.cookies["paperbot_csrf"]

    def api(self, path: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
        origin = str(self.base_url).rstrip("/")
        return self.post(path, json=body, headers={"Origin": origin, "X-CSRF-Token": self.csrf()})

    def as_user(self, name: str) -> None:
        assert self.api("/api/user", {"user": name}).status_code == 200


@pytest.fixture
def port(sample_core: PaperBot) -> LocalPostingPort:
    return LocalPostingPort(sample_core.db)


@pytest.fixture
def posted(sample_core: PaperBot, port: LocalPostingPort) -> list[Pick]:
    """Today's channel picks, posted to #papers the way a daily post stores them."""
    picks = sample_core.channel_picks(CHANNEL, limit=5)
    ids = asyncio.run(port.send_picks(CHANNEL, picks, "test-post"))
    sample_core.record_posts(CHANNEL, list(zip(ids, [p.paper_id for p in picks], strict=True)))
    return picks


@pytest.fixture
def client(sample_core: PaperBot, port: LocalPostingPort) -> Iterator[WebClient]:
    with WebClient(create_app(sample_core, port), base_url=ORIGIN) as c:
        yield c
