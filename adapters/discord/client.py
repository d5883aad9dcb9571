"""The discord.py client: slash commands, buttons and reaction events wired to the core."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

from adapters.discord import events
from adapters.discord.buttons import FeedbackButton, ForgetButton
from adapters.discord.commands import PapersGroup, PaperTree
from bot.paperbot import PaperBot
from bot.settings import Settings

log = logging.getLogger(__name__)

# discord.py sleeps through shorter 429s itself; longer ones raise so the scheduler can
# retry later. 30 s is the smallest value discord.py accepts.
MAX_RATELIMIT_WAIT = 30.0

# What the bot needs in a channel it posts to: see it, post embeds, add its 👍/👎
# (adding a first reaction also needs Read Message History, which `resume` uses too).
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    add_reactions=True,
    read_message_history=True,
)
SCOPES = ("bot", "applications.commands")


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=BOT_PERMISSIONS, scopes=SCOPES)


class PaperClient(discord.Client):
    def __init__(self, core: PaperBot, settings: Settings, **options: Any) -> None:
        # Default intents: reactions and interactions need no privileged intent,
        # and the bot never reads message content.
        super().__init__(
            intents=discord.Intents.default(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT,
            **options,
        )
        self.core = core
        self.settings = settings
        self.tree = PaperTree(self)
        self.tree.add_command(PapersGroup())
        self.reactions = events.ReactionHandler(core)
        self._logged_in = asyncio.Event()
        self._recovery: asyncio.Task[int] | None = None

    async def setup_hook(self) -> None:
        self.add_dynamic_items(FeedbackButton, ForgetButton)
        if self.application_id is not None:
            log.info("invite paperbot to a server with %s", invite_url(self.application_id))
        await self.sync_commands()
        self._logged_in.set()

    async def wait_logged_in(self) -> None:
        """Until login: the REST client (and so posting) works from then on, before READY."""
        await self._logged_in.wait()

    async def sync_commands(self) -> None:
        """Register `/papers` with Discord, once per start (never in on_ready, which repeats).

        With PAPERBOT_DISCORD_GUILD_ID the commands go to that guild only, which
        Discord applies instantly; global commands may take a while to appear.
        """
        guild_id = self.settings.discord_guild_id
        try:
            if guild_id is not None:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.HTTPException:
            # The commands registered by an earlier start keep working; say so and go on.
            log.exception("could not sync slash commands")
            return
        log.info(
            "synced %d slash command(s) %s",
            len(synced),
            f"to guild {guild_id}" if guild_id else "globally",
        )

    async def on_ready(self) -> None:
        # READY follows every IDENTIFY: the first start, and each new session
        # after an invalidated one; reactions made in between never reach us.
        # (A RESUME replays what it missed, so on_resumed needs nothing.)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(
                events.recover_missed_reactions(self, self.core, self.reactions)
            )

    def _own_id(self) -> int | None:
        return self.user.id if self.user else None

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self.reactions.handle(payload, self._own_id())

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self.reactions.handle(payload, self._own_id())

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await events.on_guild_left(self.core, guild.id)
