"""Shared fixtures: a real SQLite file, and a real PostgreSQL database when CI provides one.

`database_url` runs each test that uses it on both databases. PostgreSQL comes
from PAPERBOT_TEST_DATABASE_URL (set by .ci/run); each test gets a fresh
database created on that server and dropped afterwards.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot import database
from bot.embedding import HashingEmbedder, SentenceTransformerEmbedder
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.fakes.feed_server import FeedServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PG_ADMIN_URL = os.environ.get("PAPERBOT_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never read the developer's .env or chat credentials."""
    for name in list(os.environ):
        if name.startswith(("PAPERBOT_", "DISCORD_", "SLACK_")) and name not in (
            "PAPERBOT_TEST_DATABASE_URL",
            "PAPERBOT_TEST_CHROMIUM",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _gc_unfrozen() -> Iterator[None]:
    """`runner.serve` freezes every live object out of the garbage collector
    (`prepare_to_serve`); a test that serves in-process must not leave the rest
    of the session's objects, fixtures included, uncollectable."""
    yield
    gc.unfreeze()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'paperbot.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not PG_ADMIN_URL:
        pytest.skip("PAPERBOT_TEST_DATABASE_URL is not set (.ci/run sets it)")
    name = f"paperbot_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def migrated_url(database_url: str) -> str:
    database.upgrade(database_url)
    return database_url


@pytest.fixture
def settings() -> Settings:
    return Settings(lookback_days=3)


@pytest.fixture
def core(migrated_url: str, settings: Settings) -> Iterator[PaperBot]:
    """The core on a fresh database, with a fast lexical embedder."""
    bot = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=settings)
    yield bot
    bot.close()


@pytest.fixture
def sqlite_core(sqlite_url: str, settings: Settings) -> Iterator[PaperBot]:
    database.upgrade(sqlite_url)
    bot = PaperBot.open(sqlite_url, embedder=HashingEmbedder(), settings=settings)
    yield bot
    bot.close()


@pytest.fixture
def sample_core(core: PaperBot) -> PaperBot:
    core.ingest(SampleSource().fetch())
    return core


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    return SentenceTransformerEmbedder("bundled")


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    """The local fake of the Daily Papers and arXiv APIs (tests/fakes/feed_server.py)."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`logs.configure` replaces the root handlers: put them back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
