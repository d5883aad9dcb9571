"""Slash command option types that check what actually arrived.

discord.py's `Range` tells Discord the bounds but passes a value of the wrong
type straight through; these transformers reject it with a `TransformerError`,
which the tree answers with "I couldn't read those options".
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands


class Bounded(app_commands.Transformer):
    """An integer in [low, high], or a string whose length is in [low, high]."""

    def __init__(self, kind: type[int] | type[str], low: int, high: int) -> None:
        self._kind = kind
        self._low = low
        self._high = high

    @property
    def type(self) -> discord.AppCommandOptionType:
        if self._kind is int:
            return discord.AppCommandOptionType.integer
        return discord.AppCommandOptionType.string

    @property
    def min_value(self) -> int:
        return self._low

    @property
    def max_value(self) -> int:
        return self._high

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        # bool is an int subclass; Discord never sends one for these options.
        if not isinstance(value, self._kind) or isinstance(value, bool):
            raise app_commands.TransformerError(value, self.type, self)
        size = value if isinstance(value, int) else len(value)
        if not self._low <= size <= self._high:
            raise app_commands.TransformerError(value, self.type, self)
        return value


class PostableChannel(app_commands.Transformer):
    """A text or announcement channel option, taken as Discord resolved it.

    Unlike a `discord.TextChannel` annotation this needs no guild cache, so it
    also works while the guild is unavailable or the channel is brand new.
    """

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [discord.ChannelType.text, discord.ChannelType.news]

    async def transform(
        self, interaction: discord.Interaction[Any], value: Any, /
    ) -> app_commands.AppCommandChannel:
        if not isinstance(value, app_commands.AppCommandChannel):
            raise app_commands.TransformerError(value, self.type, self)
        return value


Channel = app_commands.Transform[app_commands.AppCommandChannel, PostableChannel]
