"""Events API: 👍/👎 reactions on posted picks, and the app leaving a workspace.

Reactions are stored before Slack gets its 200 (the app runs with
`process_before_response`): if the write fails, Slack retries the event, and
the core ignores an `event_id` it has already counted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.slack.installations import InstallationStore
from adapters.slack.tenant import PLATFORM, id_at, team_of, text_at
from bot.feedback import ReactionEvent
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)


def reaction_event(
    body: dict[str, Any], event: dict[str, Any], team: str | None
) -> ReactionEvent | None:
    """The core's ReactionEvent, or None when the payload is not a reaction on a message."""
    if text_at(event, "item", "type") != "message":
        return None
    channel, ts = id_at(event, "item", "channel"), id_at(event, "item", "ts")
    user, emoji = id_at(event, "user"), text_at(event, "reaction")
    if not (team and channel and ts and user and emoji):
        log.info("slack: reaction event with missing fields ignored")
        return None
    return ReactionEvent(
        platform=PLATFORM,
        workspace=team,
        channel=channel,
        message_id=ts,
        user=user,
        emoji=emoji,
        active=event.get("type") == "reaction_added",
        event_id=text_at(body, "event_id"),
    )


def register(app: AsyncApp, core: PaperBot, installations: InstallationStore | None) -> None:
    async def reaction(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        parsed = reaction_event(body, event, team_of(context, body))
        if parsed is not None:
            await asyncio.to_thread(core.handle_reaction, parsed)

    async def forget_workspace(team: str | None, enterprise: str | None) -> None:
        if team is None:
            return
        if installations is not None:
            await installations.async_delete_all(enterprise_id=enterprise, team_id=team)
        else:
            log.warning(
                "slack: uninstalled from %s; remove SLACK_BOT_TOKEN if it was the only one", team
            )
        cancelled = await asyncio.to_thread(core.cancel_tenant, PLATFORM, team)
        log.info("slack: left workspace %s, cancelled %d subscriptions", team, cancelled)

    async def uninstalled(body: dict[str, Any], context: AsyncBoltContext) -> None:
        await forget_workspace(team_of(context, body), context.enterprise_id)

    async def tokens_revoked(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
        team = team_of(context, body)
        user_ids = tokens.get("oauth") if isinstance(tokens.get("oauth"), list) else []
        if installations is not None and team is not None:
            for user_id in user_ids:
                if isinstance(user_id, str):
                    await installations.async_delete_installation(
                        enterprise_id=context.enterprise_id, team_id=team, user_id=user_id
                    )
        if tokens.get("bot"):
            # Without its bot token paperbot can no longer post there.
            await forget_workspace(team, context.enterprise_id)

    app.event("reaction_added")(reaction)
    app.event("reaction_removed")(reaction)
    app.event("app_uninstalled")(uninstalled)
    app.event("tokens_revoked")(tokens_revoked)
