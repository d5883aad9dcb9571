"""The `/papers` slash command group. Each subcommand only builds a `bot.commands` value.

Typed Discord options become a `Command`; `bot.commands.execute` does the work
(including the Manage Channels check for daily-post commands, from
`Invocation.can_manage`); `replies.send_reply` renders the `Reply`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

import discord
from discord import app_commands

from adapters.discord.options import Bounded, Channel
from adapters.discord.posting import POST_PERMISSIONS
from adapters.discord.replies import SORRY, friendly_errors, invocation, send_reply, send_text
from bot import commands as core_commands
from bot.commands import (
    DEFAULT_POST_TIME,
    DEFAULT_TIMEZONE,
    Command,
    Follow,
    Forget,
    Help,
    Saved,
    Search,
    ShowProfile,
    ShowSettings,
    Subscribe,
    Today,
    Unfollow,
    Unsubscribe,
)

if TYPE_CHECKING:
    from adapters.discord.client import PaperClient

log = logging.getLogger(__name__)

Count = app_commands.Transform[int, Bounded(int, 1, 10)]
Text = app_commands.Transform[str, Bounded(str, 1, 500)]
Time = app_commands.Transform[str, Bounded(str, 1, 20)]
Timezone = app_commands.Transform[str, Bounded(str, 1, 64)]
_TIMEZONES = sorted(available_timezones())
# Answers that need no core call go out at once; everything else is deferred first.
_INSTANT = (Help, Forget)


async def run(
    interaction: discord.Interaction[PaperClient],
    command: Command,
    *,
    caveat: str = "",
    target: app_commands.AppCommandChannel | None = None,
) -> None:
    """Defer (the core may take longer than Discord's 3 s), execute off the loop, reply.

    `caveat` is added to a successful reply; `target` is the channel option, if given.
    """
    if not isinstance(command, _INSTANT):
        await interaction.response.defer(ephemeral=True, thinking=True)
    async with friendly_errors(interaction, f"/papers {type(command).__name__}"):
        reply = await asyncio.to_thread(
            core_commands.execute,
            interaction.client.core,
            invocation(interaction, target),
            command,
        )
        if reply.error:
            log.info("/papers %s refused: %s", type(command).__name__, reply.text)
        elif caveat:
            reply = replace(reply, text=f"{reply.text} {caveat}")
        await send_reply(interaction, reply)


def _cannot_post(interaction: discord.Interaction[PaperClient], channel_id: int | None) -> str:
    """What stops the bot posting in the channel, as a sentence, or "" if nothing (or unknown)."""
    if channel_id is None or channel_id == interaction.channel_id:
        # Discord computed the bot's permissions in this channel for the interaction.
        permissions = interaction.app_permissions
    else:
        guild = interaction.guild
        channel = guild.get_channel(channel_id) if guild is not None else None
        if channel is None or guild is None or guild.me is None:
            return ""  # not cached: the first daily post will tell
        permissions = channel.permissions_for(guild.me)
    missing = [name for flag, name in POST_PERMISSIONS.items() if not getattr(permissions, flag)]
    if not missing:
        return ""
    needed = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
    return f"I can't post there yet: give me {needed} in that channel."


def _channel(channel: app_commands.AppCommandChannel | None) -> str | None:
    # The core resolves channel mentions; `<#id>` also renders as a link in its replies.
    return f"<#{channel.id}>" if channel is not None else None


@app_commands.guild_only()
class PapersGroup(app_commands.Group):
    """`/papers …`: research paper recommendations."""

    def __init__(self) -> None:
        super().__init__(name="papers", description="Research paper recommendations")

    @app_commands.command(description="Your personal picks for today")
    @app_commands.describe(count="How many papers (1-10)")
    async def today(self, interaction: discord.Interaction[PaperClient], count: Count = 5) -> None:
        await run(interaction, Today(count=count))

    @app_commands.command(description="Tell me what you work on, e.g. diffusion models, RLHF")
    @app_commands.describe(topics="Topics, separated by commas")
    async def follow(self, interaction: discord.Interaction[PaperClient], topics: Text) -> None:
        await run(interaction, Follow(topics=topics))

    @app_commands.command(description="Stop following some topics")
    @app_commands.describe(topics="Topics, separated by commas")
    async def unfollow(self, interaction: discord.Interaction[PaperClient], topics: Text) -> None:
        await run(interaction, Unfollow(topics=topics))

    @app_commands.command(description="Find stored papers by meaning")
    @app_commands.describe(query="What to look for")
    async def search(self, interaction: discord.Interaction[PaperClient], query: Text) -> None:
        await run(interaction, Search(query=query))

    @app_commands.command(description="The papers you saved 🔖, newest first")
    @app_commands.describe(count="How many papers (1-10)")
    async def saved(
        self, interaction: discord.Interaction[PaperClient], count: Count = Saved.count
    ) -> None:
        await run(interaction, Saved(count=count))

    @app_commands.command(description="What I think you like, and what you follow")
    async def profile(self, interaction: discord.Interaction[PaperClient]) -> None:
        await run(interaction, ShowProfile())

    @app_commands.command(description="Delete everything I know about you in this server")
    async def forget(self, interaction: discord.Interaction[PaperClient]) -> None:
        await run(interaction, Forget())

    @app_commands.command(description="Daily picks in a channel (Manage Channels only)")
    @app_commands.describe(
        channel="Where to post (default: here)",
        time="Time of day, HH:MM (default 09:00)",
        timezone="IANA time zone, e.g. Europe/Berlin (default UTC)",
        # Not "the server's setting": on Discord a server is the guild, which has none.
        count="Papers per post (1-10; default: set by whoever runs paperbot, usually 5)",
    )
    async def subscribe(
        self,
        interaction: discord.Interaction[PaperClient],
        channel: Channel | None = None,
        time: Time = DEFAULT_POST_TIME,
        timezone: Timezone = DEFAULT_TIMEZONE,
        count: Count | None = None,
    ) -> None:
        await run(
            interaction,
            Subscribe(channel=_channel(channel), at=time, tz=timezone, count=count),
            caveat=_cannot_post(interaction, channel.id if channel is not None else None),
            target=channel,
        )

    @subscribe.autocomplete("timezone")
    async def _timezones(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        # Discord shows at most 25 choices.
        return [
            app_commands.Choice(name=zone, value=zone)
            for zone in _TIMEZONES
            if needle in zone.lower()
        ][:25]

    @app_commands.command(description="Stop a channel's daily picks (Manage Channels only)")
    @app_commands.describe(channel="Which channel (default: here)")
    async def unsubscribe(
        self,
        interaction: discord.Interaction[PaperClient],
        channel: Channel | None = None,
    ) -> None:
        await run(interaction, Unsubscribe(channel=_channel(channel)), target=channel)

    @app_commands.command(description="A channel's daily post and its state (Manage Channels only)")
    @app_commands.describe(channel="Which channel (default: here)")
    async def settings(
        self,
        interaction: discord.Interaction[PaperClient],
        channel: Channel | None = None,
    ) -> None:
        await run(interaction, ShowSettings(channel=_channel(channel)), target=channel)

    @app_commands.command(description="What paperbot can do")
    async def help(self, interaction: discord.Interaction[PaperClient]) -> None:
        await run(interaction, Help())


class MalformedInteraction(app_commands.AppCommandError):
    """Discord sent option data that discord.py could not even parse."""


class PaperTree(app_commands.CommandTree["PaperClient"]):
    """Command tree whose errors always reach the user as a short ephemeral message."""

    async def _call(self, interaction: discord.Interaction[PaperClient]) -> None:
        # discord.py parses options with int()/float()/dict lookups and lets a
        # TypeError or ValueError escape on a malformed payload, past on_error;
        # the user would see "The application did not respond". Route it to on_error.
        try:
            await super()._call(interaction)
        except app_commands.AppCommandError:
            raise
        except Exception as exc:
            raise MalformedInteraction(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def interaction_check(self, interaction: discord.Interaction[PaperClient], /) -> bool:
        # Discord hides /papers outside servers (contexts=[guild]); this guards stale clients.
        if interaction.guild_id is None:
            await send_text(interaction, "Use /papers in a server channel.")
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction[PaperClient], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.NoPrivateMessage):
            text = "Use /papers in a server channel."
        elif isinstance(
            error,
            app_commands.TransformerError
            | app_commands.CommandSignatureMismatch
            | app_commands.CommandNotFound
            | MalformedInteraction,
        ):
            log.warning("bad options for %s: %s", interaction.command, error)
            text = "I couldn't read those options. Try /papers help."
        else:
            log.error("command %s failed", interaction.command, exc_info=error)
            text = SORRY
        await send_text(interaction, text)
