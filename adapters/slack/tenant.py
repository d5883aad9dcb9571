"""Who and where a Slack request comes from, as core references, read defensively."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.domain import ChannelRef, UserRef

PLATFORM = "slack"
ID_LIMIT = 64  # the width of id columns in bot.models


def text_at(payload: object, *path: str) -> str | None:
    """The non-empty string at `path` in a payload, or None: payloads are untrusted JSON."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload if isinstance(payload, str) and payload else None


def id_at(payload: object, *path: str) -> str | None:
    """A Slack id (team, user, channel, ts, event, paper) at `path`, or None when absent or absurd."""
    value = text_at(payload, *path)
    return value if value is not None and plausible_id(value) else None


def plausible_id(value: str) -> bool:
    """Real ids are a dozen printable characters. The database keeps at most ID_LIMIT,
    and PostgreSQL no NUL at all: anything else is hostile input, not something to
    store or look up."""
    return 0 < len(value) <= ID_LIMIT and value.isprintable()


def team_of(context: AsyncBoltContext, body: dict[str, Any]) -> str | None:
    """The workspace (team id) every core call is scoped to."""
    team = id_at({"team": context.team_id}, "team")
    return team or id_at(body, "team_id") or id_at(body, "team", "id")


def user_ref(team: str, user_id: str) -> UserRef:
    return UserRef(PLATFORM, team, user_id)


def channel_ref(team: str, channel_id: str) -> ChannelRef:
    return ChannelRef(PLATFORM, team, channel_id)
