"""Who and where a Slack request comes from, as core references."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.domain import ChannelRef, UserRef

PLATFORM = "slack"


def team_of(context: AsyncBoltContext, body: dict[str, Any]) -> str | None:
    """The workspace (team id) every core call is scoped to."""
    team = context.team_id or body.get("team_id") or (body.get("team") or {}).get("id")
    return team if isinstance(team, str) and team else None


def user_ref(team: str, user_id: str) -> UserRef:
    return UserRef(PLATFORM, team, user_id)


def channel_ref(team: str, channel_id: str) -> ChannelRef:
    return ChannelRef(PLATFORM, team, channel_id)
