"""Discord adapter: `/papers` slash commands, reaction and button feedback, daily posts.

`build_bot(core, settings)` returns the discord.py client; `create_adapter`
wraps it for `paperbot run` (see `bot.runner`) together with the posting port
the scheduler uses.
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from adapters.discord.client import PaperClient
from adapters.discord.posting import DiscordPostingPort
from bot.errors import PlatformUnreachable
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
        except (aiohttp.ClientError, OSError) as exc:
            # Only logging in (and the command sync) can end up here: once logged in,
            # discord.py reconnects to the gateway by itself. Without this an offline
            # host, or one behind a proxy, ended `paperbot run` in a long traceback.
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PlatformUnreachable(f"cannot reach Discord ({reason[:200]})") from None
        finally:
            if not self.client.is_closed():
                await self.client.close()


def create_adapter(core: PaperBot, settings: Settings) -> DiscordAdapter:
    if settings.discord_token is None:
        raise SettingsError("DISCORD_TOKEN: required for the Discord adapter")
    return DiscordAdapter(build_bot(core, settings), settings.discord_token.get_secret_value())
