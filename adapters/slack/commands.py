"""`/papers <subcommand>`: ack at once, then parse and run it in the core, answer through respond().

The command logic lives in `bot.commands`; this module only builds the
`Invocation` (who, where, may they manage the channel) and renders the `Reply`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.answer import answer
from adapters.slack.blocks import reply_message
from adapters.slack.tenant import channel_ref, id_at, team_of, text_at, user_ref
from bot import commands
from bot.errors import PaperBotError
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)

COMMAND = "/papers"
MISSING_SCOPE = (
    "I can't check who may manage this channel: paperbot's Slack app lacks a permission "
    "(scope) it needs. Ask whoever installed it to reinstall it from its manifest."
)
TRY_AGAIN = (
    "I couldn't check with Slack who may manage this channel just now. "
    "Please try again in a minute."
)
# Slack errors that say nothing about the member: the same lookup can work later.
_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
NOT_INVITED = "I'm not in that channel yet: /invite @paperbot there, or I cannot post the picks."
# With `should_escape: true` Slack sends channel mentions as <#C123|name> (or <#C123>).
_CHANNEL_MENTION = re.compile(r"<#([CGD][A-Z0-9]{1,40})(?:\|([^>]*))?>")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{1,40}")


# Slack escapes these three in the text it sends (and only these); `&amp;` last, so
# a typed "&lt;" (sent as "&amp;lt;") stays "&lt;".
_SLACK_ESCAPES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def typed_text(text: str) -> str:
    """The command text as the person typed it. Mentions and links stay in Slack's
    <…> form: `subscribe` reads channel mentions, and replies escape it all again."""
    for escaped, char in _SLACK_ESCAPES:
        text = text.replace(escaped, char)
    return text


def resolve_channel(raw: str) -> str | None:
    match = _CHANNEL_MENTION.fullmatch(raw.strip())
    if match:
        return match.group(1)
    return raw if _CHANNEL_ID.fullmatch(raw.strip()) else None


def channel_name(raw: str) -> str:
    """How a reply names a mentioned channel, "#papers" for "<#C123|papers>": replies
    are escaped, so the mention itself would show as typed."""
    match = _CHANNEL_MENTION.fullmatch(raw.strip())
    return f"#{match.group(2)}" if match and match.group(2) else raw


class CannotCheck(Exception):
    """The permission lookup failed for a reason the member who asked cannot change (a
    scope the install lacks, Slack busy or unreachable). `str()` says so to them."""


class ChannelInfo:
    """conversations.info for one channel, asked of Slack at most once per command: a
    channel creator's subscribe reads it twice (who created the channel, then whether
    paperbot is in it), and the method is rate-limited per workspace."""

    def __init__(self, client: AsyncWebClient, channel_id: str) -> None:
        self._client = client
        self._channel_id = channel_id
        self._info: dict[str, Any] | None = None

    async def get(self) -> dict[str, Any]:
        # Only an answer is kept: a failed lookup is for each caller to judge.
        if self._info is None:
            response = await self._client.conversations_info(channel=self._channel_id)
            self._info = response.get("channel") or {}
        return self._info


async def can_manage(client: AsyncWebClient, user_id: str, channel: ChannelInfo | None) -> bool:
    """Workspace admins and owners may manage any channel's daily post; others only their own."""
    try:
        info = await client.users_info(user=user_id)
        person = info.get("user") or {}
        if any(person.get(flag) is True for flag in ("is_admin", "is_owner", "is_primary_owner")):
            return True
        if channel is None:
            return False
        return (await channel.get()).get("creator") == user_id
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error == "missing_scope":
            log.warning("slack: the app lacks the %s scope", exc.response.get("needed"))
            raise CannotCheck(MISSING_SCOPE) from None
        if exc.response.status_code == 429 or error in _TRANSIENT:
            log.warning("slack: permission lookup failed (%s)", error)
            raise CannotCheck(TRY_AGAIN) from None
        log.info("slack: permission lookup failed (%s); not allowed", error)
        return False
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack: permission lookup failed (%r)", exc)
        raise CannotCheck(TRY_AGAIN) from None


async def bot_is_absent(channel: ChannelInfo) -> bool:
    """Whether Slack says the bot is not in the channel, where it could never post
    (no chat:write.public). Unknown, say on a failed lookup, counts as present."""
    try:
        conversation = await channel.get()
    except SlackApiError as exc:
        # A private channel the bot is not in does not exist for the bot.
        return exc.response.get("error") == "channel_not_found"
    except (aiohttp.ClientError, TimeoutError):
        return False
    return conversation.get("is_member") is False


async def acknowledge(ack: AsyncAck) -> None:
    """Slack wants an answer within 3 seconds; the work happens after it."""
    await ack()


def register(app: AsyncApp, core: PaperBot) -> None:
    async def run_command(
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        team = team_of(context, body)
        user_id = id_at(body, "user_id")
        if team is None or user_id is None:
            log.warning("slack: /papers without team or user; ignored")
            return
        channel_id = id_at(body, "channel_id")
        text = typed_text(text_at(body, "text") or "")
        try:
            command = commands.parse(text)
        except PaperBotError as exc:
            await answer(respond, **reply_message(commands.Reply(text=str(exc), error=True)))
            return
        allowed = False
        target = None
        if isinstance(command, commands.MANAGER_COMMANDS):
            target_id = resolve_channel(command.channel) if command.channel else channel_id
            target = ChannelInfo(client, target_id) if target_id else None
            try:
                allowed = await can_manage(client, user_id, target)
            except CannotCheck as exc:
                await answer(respond, **reply_message(commands.Reply(text=str(exc), error=True)))
                return
        invocation = commands.Invocation(
            user=user_ref(team, user_id),
            channel=channel_ref(team, channel_id) if channel_id else None,
            can_manage=allowed,
            resolve_channel=resolve_channel,
            show_channel=channel_name,
        )
        reply = await asyncio.to_thread(commands.execute, core, invocation, command)
        if (
            isinstance(command, commands.Subscribe)
            and not reply.error
            and target
            and await bot_is_absent(target)
        ):
            reply = replace(reply, text=f"{reply.text} {NOT_INVITED}")
        await answer(respond, **reply_message(reply))

    app.command(COMMAND)(ack=acknowledge, lazy=[run_command])
