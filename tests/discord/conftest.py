"""Fixtures: a fake Discord on 127.0.0.1 and the real paperbot client logged in to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
import yarl

from adapters.discord import PaperClient, build_bot
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.fakes.discord_server import GUILD_ID, FakeDiscord


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", server.rest_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url)
    )
    yield server
    await server.close()


@pytest.fixture
def discord_settings() -> Settings:
    return Settings(lookback_days=3, discord_guild_id=GUILD_ID)


@pytest.fixture
async def client(
    fake: FakeDiscord, core: PaperBot, discord_settings: Settings
) -> AsyncIterator[PaperClient]:
    """Logged in over REST (commands synced); not connected to the gateway."""
    bot = build_bot(core, discord_settings)
    await bot.login("fake-token")
    yield bot
    await bot.close()
