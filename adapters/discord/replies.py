"""Answering interactions: who asked, running the core off the loop, and sending replies.

Every answer is ephemeral and sent with `AllowedMentions.none()`. Errors become
a short friendly message for the user and a logged traceback for the operator,
so nobody is left with "The application did not respond".
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import discord
from discord.app_commands import AppCommandChannel

from adapters.discord import embeds
from adapters.discord.tenancy import PLATFORM, workspace
from bot.commands import Invocation, Reply
from bot.domain import ChannelRef, Pick, UserRef
from bot.errors import SORRY, PaperBotError

log = logging.getLogger(__name__)

# Picks per ephemeral message: one row of buttons each, and Discord allows five rows.
PICKS_PER_MESSAGE = 5
_CHANNEL_MENTION = re.compile(r"^<#([0-9]{1,20})>$")

NO_MENTIONS = discord.AllowedMentions.none()


def user_ref(interaction: discord.Interaction[Any]) -> UserRef:
    # Callers have checked that the interaction comes from a guild.
    return UserRef(PLATFORM, workspace(interaction.guild_id), str(interaction.user.id))  # type: ignore[arg-type]


def resolve_channel(raw: str) -> str | None:
    """`<#123>` (how a channel option reaches the core) -> `123`."""
    match = _CHANNEL_MENTION.match(raw.strip())
    return match[1] if match else None


def invocation(
    interaction: discord.Interaction[Any], target: AppCommandChannel | None = None
) -> Invocation:
    """Who asks, where; `target` is the channel a command names, if it names one."""
    user = user_ref(interaction)
    channel_id = interaction.channel_id
    # Resolved permissions, as Discord computed them for the interaction: in the
    # channel the command is about. Manage Channels can be granted in one channel
    # only, and having it here says nothing about the channel named.
    permissions = target.permissions if target is not None else interaction.permissions
    return Invocation(
        user=user,
        channel=ChannelRef(PLATFORM, user.workspace, str(channel_id)) if channel_id else None,
        can_manage=permissions.manage_channels,
        resolve_channel=resolve_channel,
    )


async def send_text(interaction: discord.Interaction[Any], text: str) -> None:
    await send(interaction, content=_content(text))


def _content(text: str) -> str:
    return embeds.clip(embeds.safe_reply(text), embeds.CONTENT_LIMIT)


async def send(
    interaction: discord.Interaction[Any],
    *,
    content: str | None = None,
    embed_list: Sequence[discord.Embed] = (),
    view: discord.ui.View | None = None,
) -> None:
    """Answer or follow up, whichever the interaction still allows; ephemeral, pinging nobody."""
    extra: dict[str, Any] = {"view": view} if view is not None else {}
    try:
        if interaction.response.is_done():
            await interaction.followup.send(
                # discord.py sends None as "no text" here too, but annotates `str` only.
                content=content,  # type: ignore[arg-type]
                embeds=list(embed_list),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
                **extra,
            )
        else:
            await interaction.response.send_message(
                content=content,
                embeds=list(embed_list),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
                **extra,
            )
    except discord.HTTPException:
        # The interaction expired or Discord refused the answer; nothing more to tell the user.
        log.exception("could not answer interaction %s", interaction.id)


async def send_reply(interaction: discord.Interaction[Any], reply: Reply) -> None:
    """Render a core `Reply`: text, then the picks as embeds with feedback buttons."""
    from adapters.discord.buttons import feedback_view, forget_view, unsave_view

    text = _content(reply.text) if reply.text else None
    if reply.confirm_forget:
        await send(interaction, content=text, view=forget_view(interaction.user.id))
        return
    if reply.offer_unsave:
        await send(interaction, content=text, view=unsave_view(reply.offer_unsave))
        return
    if not reply.picks:
        await send(interaction, content=text or "Done.")
        return
    for number, chunk in enumerate(_chunks(reply.picks)):
        numbered = len(reply.picks) > 1
        offset = number * PICKS_PER_MESSAGE
        cards = [
            embeds.pick_embed(pick, position=offset + i + 1 if numbered else None)
            for i, pick in enumerate(chunk)
        ]
        for group in embeds.pack(cards, PICKS_PER_MESSAGE):
            picks = [chunk[i] for i in group]
            await send(
                interaction,
                content=text,
                embed_list=[cards[i] for i in group],
                view=feedback_view(picks, numbered=numbered, first=offset + group[0] + 1),
            )
            text = None  # the text goes with the first message only


def _chunks(picks: Sequence[Pick]) -> list[Sequence[Pick]]:
    return [picks[i : i + PICKS_PER_MESSAGE] for i in range(0, len(picks), PICKS_PER_MESSAGE)]


@asynccontextmanager
async def friendly_errors(interaction: discord.Interaction[Any], what: str) -> AsyncIterator[None]:
    """Core errors become their own (safe) message; anything else a generic apology plus a log."""
    try:
        yield
    except PaperBotError as exc:
        await send_text(interaction, str(exc))
    except Exception:
        log.exception("%s failed for interaction %s", what, interaction.id)
        await send_text(interaction, SORRY)
