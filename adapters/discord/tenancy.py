"""How Discord maps onto paperbot's tenants: the platform is "discord", a guild is a workspace."""

from __future__ import annotations

PLATFORM = "discord"


def workspace(guild_id: int) -> str:
    return str(guild_id)
