"""Registers every listener on the Bolt app, in one place."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack import actions, commands, events
from adapters.slack.installations import InstallationStore
from bot.paperbot import PaperBot


def register_listeners(
    app: AsyncApp, core: PaperBot, installations: InstallationStore | None
) -> None:
    commands.register(app, core)
    actions.register(app, core)
    events.register(app, core, installations)
