"""The shipped manifest matches what the code registers and requests."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack.app import BOT_SCOPES
from adapters.slack.commands import COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "adapters" / "slack" / "manifest.yml"


def test_manifest_declares_the_command_scopes_events_and_interactivity() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND and command["should_escape"] is True
    assert manifest["oauth_config"]["scopes"]["bot"] == BOT_SCOPES
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "reaction_added",
        "reaction_removed",
        "app_uninstalled",
        "tokens_revoked",
    }
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
