"""Events API: 👍/👎 reactions on posted picks, and the app leaving a workspace.

Reactions are stored before Slack gets its 200 (the app runs with
`process_before_response`): if the write fails, Slack retries the event, and
the core ignores an `event_id` it has already counted. A retry may come after
later events on the same message; it is checked against the message first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.installations import InstallationStore
from adapters.slack.posting import TokenLookup
from adapters.slack.tenant import PLATFORM, id_at, plausible_id, team_of, text_at
from bot import missed_reactions
from bot.domain import ChannelRef
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
        event_id=id_at(body, "event_id"),
    )


def reactions_on(answer: Any) -> Iterator[tuple[str, str]]:
    """(emoji, user id) of every reaction in a `reactions.get` answer."""
    message = answer.get("message")
    reactions = message.get("reactions") if isinstance(message, dict) else None
    for reaction in reactions if isinstance(reactions, list) else []:
        name = text_at(reaction, "name")
        users = reaction.get("users") if isinstance(reaction, dict) else None
        if not name or not isinstance(users, list):
            continue
        for user in users:
            if isinstance(user, str) and plausible_id(user):
                yield name, user


async def outdated(client: AsyncWebClient, event: ReactionEvent) -> bool:
    """Whether the message's reactions now say otherwise than this event.

    Slack retries a delivery that failed minutes later, after the events that
    followed it: a retried "added" can arrive after its "removed", and would
    bring a 👍 the person took back. Slack's own record of the message decides.
    If it cannot be read, the event is applied as it is.
    """
    try:
        answer = await client.reactions_get(
            channel=event.channel, timestamp=event.message_id, full=True
        )
    except SlackApiError as exc:
        log.info("slack: cannot check a retried reaction on %s: %s", event.message_id, exc)
        return False
    present = (event.emoji, event.user) in set(reactions_on(answer))
    return present != event.active


async def recover_missed_reactions(
    client: AsyncWebClient, token_for: TokenLookup, core: PaperBot
) -> int:
    """Read back, with `reactions.get`, the reactions made while paperbot was stopped.

    Slack retries an undelivered event only a few times within minutes; see
    `bot.missed_reactions`.
    """

    async def reactions_of(channel: ChannelRef, ts: str) -> AsyncIterator[tuple[str, str]]:
        token = await token_for(channel.workspace)
        if not token:
            return  # uninstalled from that workspace since
        try:
            answer = await client.reactions_get(
                token=token, channel=channel.channel, timestamp=ts, full=True
            )
        except SlackApiError as exc:
            log.info("slack: no reactions read for %s in %s: %s", ts, channel.channel, exc)
            return
        for name, user in reactions_on(answer):
            yield name, user

    async def store(event: ReactionEvent) -> None:
        try:
            await asyncio.to_thread(core.handle_reaction, event)
        except Exception:
            log.exception("slack: a reaction read back at start was not stored")

    return await missed_reactions.read_back(core, PLATFORM, reactions_of, store)


def register(app: AsyncApp, core: PaperBot, installations: InstallationStore | None) -> None:
    async def reaction(
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        request: AsyncBoltRequest,
        client: AsyncWebClient,
    ) -> None:
        parsed = reaction_event(body, event, team_of(context, body))
        if parsed is None:
            return
        if request.headers.get("x-slack-retry-num") and await outdated(client, parsed):
            log.info("slack: a retried %s is out of date, not applied", event.get("type"))
            return
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
        tokens = event.get("tokens")
        if not isinstance(tokens, dict):
            tokens = {}
        team = team_of(context, body)
        user_ids = tokens.get("oauth")
        if not isinstance(user_ids, list):
            user_ids = []
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
