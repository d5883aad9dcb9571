"""The adapter as `paperbot run` loads it, and the documented invite permissions."""

from __future__ import annotations

import discord
import pytest
from pydantic import SecretStr

from adapters.discord import DiscordPostingPort, create_adapter
from adapters.discord.client import BOT_PERMISSIONS, invite_url
from bot.errors import PlatformUnreachable
from bot.paperbot import PaperBot
from bot.runner import enabled_adapters, load_adapter
from bot.settings import Settings, SettingsError
from tests.fakes.discord_server import FakeDiscord
from tests.helpers import PROJECT_ROOT


def test_runner_loads_the_discord_adapter_when_the_token_is_set(core: PaperBot) -> None:
    settings = Settings(discord_token=SecretStr("token"))
    assert enabled_adapters(settings)[0] == "discord"
    adapter = load_adapter("discord", core, settings)
    assert adapter.name == "discord"
    assert isinstance(adapter.port, DiscordPostingPort)
    assert adapter.client.intents == adapter.client.intents.default()  # type: ignore[attr-defined]


def test_no_token_is_a_clear_settings_error(core: PaperBot) -> None:
    with pytest.raises(SettingsError, match="DISCORD_TOKEN"):
        load_adapter("discord", core, Settings())


def test_readme_states_the_permissions_and_invite_url_the_code_uses() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f"integer **{BOT_PERMISSIONS.value}**" in readme
    assert (
        invite_url(0).split("?")[1].replace("client_id=0", "client_id=<APPLICATION_ID>") in readme
    )


async def test_a_rejected_token_stops_the_adapter_with_a_clear_error(
    core: PaperBot, fake: FakeDiscord
) -> None:
    adapter = create_adapter(core, Settings(discord_token=SecretStr("not-the-token")))
    with pytest.raises(SettingsError, match="DISCORD_TOKEN: Discord rejected the token"):
        await adapter.run()
    assert adapter.client.is_closed()


async def test_an_unreachable_discord_stops_the_adapter_with_one_line(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9 (discard): logging in fails as it does offline.
    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")
    adapter = create_adapter(core, Settings(discord_token=SecretStr("token")))
    with pytest.raises(PlatformUnreachable, match=r"^cannot reach Discord \(.+\)$") as caught:
        await adapter.run()
    assert "\n" not in str(caught.value)
    assert adapter.client.is_closed()
