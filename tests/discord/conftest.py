"""Fixtures: a fake Discord on 127.0.0.1 and the real paperbot client logged in to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.discord import PaperClient
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.discord.helpers import fake_discord, logged_in
from tests.fakes.discord_server import GUILD_ID, FakeDiscord


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with fake_discord(monkeypatch) as server:
        yield server


@pytest.fixture
def discord_settings() -> Settings:
    return Settings(lookback_days=3, discord_guild_id=GUILD_ID)


@pytest.fixture
async def client(
    fake: FakeDiscord, core: PaperBot, discord_settings: Settings
) -> AsyncIterator[PaperClient]:
    async with logged_in(core, discord_settings) as bot:
        yield bot
