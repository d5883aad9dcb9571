"""Persistent buttons: 👍 👎 🔖 under each pick, removing a saved paper, and the
confirmation of `/papers forget`.

They are `DynamicItem`s: what a button does is encoded in its `custom_id`
(`paperbot:up:<paper id>`), and the client registers the classes at start-up,
so buttons on messages sent before a restart keep working.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.replies import friendly_errors, invocation, send_reply, send_text, user_ref
from bot.commands import FEEDBACK_KINDS, UNSAVE_LABEL, Forget, execute, feedback_reply
from bot.domain import Pick

if TYPE_CHECKING:
    from adapters.discord.client import PaperClient

# Discord caps a custom_id at 100 characters; paper ids are at most 64 (and may contain ':').
FEEDBACK_ID = re.compile(
    rf"paperbot:(?P<action>{'|'.join(FEEDBACK_KINDS)}):(?P<paper_id>\S{{1,80}})"
)

# (emoji, text, style) of each kind of button; a pick's card has the first three.
FEEDBACK = {
    "up": ("👍", None, discord.ButtonStyle.secondary),
    "down": ("👎", None, discord.ButtonStyle.secondary),
    "save": ("🔖", None, discord.ButtonStyle.secondary),
    "unsave": (None, UNSAVE_LABEL, discord.ButtonStyle.danger),
}
ON_PICKS = ("up", "down", "save")
MAX_ROWS = 5  # Discord allows five rows of components per message


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=FEEDBACK_ID,
):
    def __init__(
        self, action: str, paper_id: str, *, label: str | None = None, row: int | None = None
    ):
        emoji, text, style = FEEDBACK[action]
        super().__init__(
            discord.ui.Button(
                style=style,
                emoji=emoji,
                label=label or text,
                row=row,
                custom_id=f"paperbot:{action}:{paper_id}",
            )
        )
        self.action = action
        self.paper_id = paper_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FeedbackButton:
        return cls(match["action"], match["paper_id"])

    async def callback(self, interaction: discord.Interaction[PaperClient]) -> None:  # type: ignore[override]
        if interaction.guild_id is None:
            await send_text(interaction, "Feedback works in servers only.")
            return
        core = interaction.client.core
        user = user_ref(interaction)
        # The write may wait on a busy database: acknowledge first, within Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with friendly_errors(interaction, "button feedback"):
            if self.action in ("save", "unsave"):
                active = self.action == "save"
                changed = await asyncio.to_thread(core.save, user, self.paper_id, active)
            else:
                signal = 1 if self.action == "up" else -1
                channel = str(interaction.channel_id) if interaction.channel_id else None
                changed = await asyncio.to_thread(
                    core.react, user, self.paper_id, signal, channel=channel, renew=True
                )
            await send_reply(interaction, feedback_reply(self.action, changed, self.paper_id))


class ForgetButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"paperbot:forget:(?P<user_id>[0-9]{1,20})",
):
    """Only the member who asked may confirm: the user id is in the custom_id."""

    def __init__(self, user_id: int):
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.danger,
                label="Yes, forget me",
                custom_id=f"paperbot:forget:{user_id}",
            )
        )
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ForgetButton:
        return cls(int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction[PaperClient]) -> None:  # type: ignore[override]
        if interaction.user.id != self.user_id or interaction.guild_id is None:
            await send_text(interaction, "This button belongs to someone else.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with friendly_errors(interaction, "forget"):
            reply = await asyncio.to_thread(
                execute, interaction.client.core, invocation(interaction), Forget(confirmed=True)
            )
            await send_reply(interaction, reply)


def feedback_view(
    picks: Sequence[Pick], *, numbered: bool = False, first: int = 1
) -> discord.ui.View:
    """One row of 👍 👎 🔖 per pick (at most five picks, Discord's row limit).

    When several picks share a message, each button carries the pick's number.
    """
    view = discord.ui.View(timeout=None)
    for row, pick in enumerate(picks[:MAX_ROWS]):
        label = str(first + row) if numbered else None
        for action in ON_PICKS:
            view.add_item(FeedbackButton(action, pick.paper_id, label=label, row=row))
    return detached(view)


def unsave_view(paper_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton("unsave", paper_id))
    return detached(view)


def forget_view(user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ForgetButton(user_id))
    return detached(view)


def detached(view: discord.ui.View) -> discord.ui.View:
    """Stop the view before sending it.

    The DynamicItem classes registered on the client handle the clicks; a view
    left running would also be stored per message (memory that grows with every
    post) and would answer each click a second time.
    """
    view.stop()
    return view
