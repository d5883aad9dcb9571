"""Block Kit buttons: 👍 👎 🔖 on picks, removing a saved paper, and the confirmation
of `/papers forget`."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from adapters.slack.answer import answer
from adapters.slack.blocks import (
    ACTION_DOWN,
    ACTION_FORGET_CANCEL,
    ACTION_FORGET_CONFIRM,
    ACTION_SAVE,
    ACTION_UNSAVE,
    ACTION_UP,
    reply_message,
)
from adapters.slack.commands import acknowledge
from adapters.slack.tenant import id_at, team_of, user_ref
from bot import commands
from bot.errors import PaperBotError
from bot.paperbot import PaperBot

log = logging.getLogger(__name__)

_KINDS = {ACTION_UP: "up", ACTION_DOWN: "down", ACTION_SAVE: "save", ACTION_UNSAVE: "unsave"}
FEEDBACK_ACTIONS = re.compile(f"^({'|'.join(_KINDS)})$")
SORRY = "Sorry, I couldn't store that. Please try again in a minute."


def _clicker(body: dict[str, Any], context: AsyncBoltContext) -> tuple[str, str] | None:
    team = team_of(context, body)
    user_id = id_at(body, "user", "id")
    return (team, user_id) if team and user_id else None


def register(app: AsyncApp, core: PaperBot) -> None:
    async def feedback(
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        who = _clicker(body, context)
        paper_id = id_at(action, "value")
        if who is None or paper_id is None:
            return
        user = user_ref(*who)
        kind = action["action_id"]
        channel_id = id_at(body, "channel", "id")
        try:
            if kind in (ACTION_SAVE, ACTION_UNSAVE):
                active = kind == ACTION_SAVE
                changed = await asyncio.to_thread(core.save, user, paper_id, active)
            else:
                signal = 1 if kind == ACTION_UP else -1
                changed = await asyncio.to_thread(
                    core.react, user, paper_id, signal, channel=channel_id, renew=True
                )
            reply = commands.feedback_reply(_KINDS[kind], changed, paper_id)
        except PaperBotError as exc:
            reply = commands.Reply(text=str(exc), error=True)
        except Exception:
            log.exception("slack: storing button feedback failed")
            reply = commands.Reply(text=SORRY, error=True)
        # reply_message escapes: an error can quote the paper id, which came in the payload.
        await answer(respond, **reply_message(reply))

    async def forget(
        body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        who = _clicker(body, context)
        if who is None:
            return
        invocation = commands.Invocation(user=user_ref(*who), channel=None)
        reply = await asyncio.to_thread(
            commands.execute, core, invocation, commands.Forget(confirmed=True)
        )
        await answer(respond, **{**reply_message(reply), "replace_original": True})

    async def cancel(respond: AsyncRespond) -> None:
        await answer(respond, delete_original=True)

    app.action(FEEDBACK_ACTIONS)(ack=acknowledge, lazy=[feedback])
    app.action(ACTION_FORGET_CONFIRM)(ack=acknowledge, lazy=[forget])
    app.action(ACTION_FORGET_CANCEL)(ack=acknowledge, lazy=[cancel])
