"""Discord adapter: `/papers` slash commands, reaction and button feedback, daily posts.

`build_bot(core, settings)` returns the discord.py client; `create_adapter`
wraps it for `paperbot run` (see `bot.runner`) together with the posting port
the scheduler uses.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.client import PaperClient
from adapters.discord.posting import DiscordPostingPort
from bot.paperbot import PaperBot
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

__all__ = ["DiscordAdapter", "DiscordPostingPort", "PaperClient", "build_bot", "create_adapter"]


def build_bot(core: PaperBot, settings: Settings) -> PaperClient:
    return PaperClient(core, settings)


class DiscordAdapter:
    name = "discord"

    def __init__(self, client: PaperClient, token: str) -> None:
        self.client = client
        self.port = DiscordPostingPort(client)
        self._token = token

    async def run(self) -> None:
        """Log in, connect to the gateway and serve until cancelled; always close cleanly."""
        try:
            await self.client.start(self._token)
        except discord.LoginFailure:
            raise SettingsError("DISCORD_TOKEN: Discord rejected the token") from None
        finally:
            if not self.client.is_closed():
                await self.client.close()


def create_adapter(core: PaperBot, settings: Settings) -> DiscordAdapter:
    if settings.discord_token is None:
        raise SettingsError("DISCORD_TOKEN: required for the Discord adapter")
    return DiscordAdapter(build_bot(core, settings), settings.discord_token.get_secret_value())
