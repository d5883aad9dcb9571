"""Builders for Discord gateway payloads and a one-call way to run an interaction.

They produce what Discord sends (see the Discord API docs for INTERACTION_CREATE
and MESSAGE_REACTION_ADD), so tests stay short and read as "who did what".
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
import sqlalchemy as sa
import yarl
from discord import app_commands

from adapters.discord import PaperClient, build_bot
from bot.models import PostedMessage
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.fakes.discord_server import (
    APP_ID,
    CHANNEL_ID,
    GUILD_ID,
    FakeDiscord,
    Recorded,
    message_payload,
)

USER_ID = 800000000000000001
OTHER_USER_ID = 800000000000000002
MANAGE_CHANNELS = discord.Permissions(manage_channels=True).value
SEND = discord.Permissions(send_messages=True, read_messages=True).value
_ids = itertools.count(700000000000000001)


def discord_user(user_id: int = USER_ID) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": f"user{user_id % 1000}",
        "discriminator": "0",
        "avatar": None,
    }


def _base(
    kind: int,
    data: dict[str, Any],
    *,
    user_id: int,
    permissions: int,
    channel_id: int,
    guild_id: int | None,
) -> dict[str, Any]:
    interaction_id = next(_ids)
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": kind,
        "token": f"token-{interaction_id}",
        "version": 1,
        "channel_id": str(channel_id),
        "channel": {
            "id": str(channel_id),
            "type": 0,
            "name": "papers",
            "position": 0,
            "guild_id": str(guild_id),
        },
        "app_permissions": str(discord.Permissions.all().value),
        "locale": "en-US",
        "attachment_size_limit": 8 * 1024 * 1024,
        "data": data,
    }
    if guild_id is None:
        payload["user"] = discord_user(user_id)
        payload["channel"] = {
            "id": str(channel_id),
            "type": 1,
            "recipients": [discord_user(user_id)],
        }
    else:
        payload["guild_id"] = str(guild_id)
        payload["member"] = {
            "user": discord_user(user_id),
            "roles": [],
            "joined_at": "2025-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(permissions),
        }
    return payload


def option(name: str, value: int | str) -> dict[str, Any]:
    kind = (
        discord.AppCommandOptionType.integer
        if isinstance(value, int)
        else discord.AppCommandOptionType.string
    )
    return {"type": kind.value, "name": name, "value": value}


def command(
    subcommand: str,
    *options: dict[str, Any],
    user_id: int = USER_ID,
    permissions: int = SEND,
    channel_id: int = CHANNEL_ID,
    guild_id: int | None = GUILD_ID,
    channels: tuple[int, ...] = (),
    channel_permissions: int | None = None,
) -> dict[str, Any]:
    """INTERACTION_CREATE for `/papers <subcommand> …`; `channels` become resolved channel options.

    Discord resolves the member's permissions in each of those channels too:
    `channel_permissions`, by default the same as here (a server-wide role).
    """
    data: dict[str, Any] = {
        "id": "1",
        "name": "papers",
        "type": 1,
        "options": [{"type": 1, "name": subcommand, "options": list(options)}],
    }
    if channels:
        data["resolved"] = {
            "channels": {
                str(c): {
                    "id": str(c),
                    "type": 0,
                    "name": f"channel-{c}",
                    "position": 1,
                    "permissions": str(
                        permissions if channel_permissions is None else channel_permissions
                    ),
                    "guild_id": str(guild_id),
                }
                for c in channels
            }
        }
    return _base(
        2, data, user_id=user_id, permissions=permissions, channel_id=channel_id, guild_id=guild_id
    )


def channel_option(name: str, channel_id: int) -> dict[str, Any]:
    return {
        "type": discord.AppCommandOptionType.channel.value,
        "name": name,
        "value": str(channel_id),
    }


def button_click(
    custom_id: str,
    *,
    user_id: int = USER_ID,
    channel_id: int = CHANNEL_ID,
    guild_id: int | None = GUILD_ID,
) -> dict[str, Any]:
    """INTERACTION_CREATE for a click on a button of an (ephemeral or channel) message."""
    payload = _base(
        3,
        {"custom_id": custom_id, "component_type": 2},
        user_id=user_id,
        permissions=SEND,
        channel_id=channel_id,
        guild_id=guild_id,
    )
    # discord.py rebuilds the clicked button from the message, so it must be there.
    buttons = [{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": custom_id}]}]
    payload["message"] = message_payload(next(_ids), channel_id, {"components": buttons})
    return payload


def reaction(
    message_id: int | str,
    emoji: str = "👍",
    *,
    user_id: int = USER_ID,
    channel_id: int = CHANNEL_ID,
    guild_id: int = GUILD_ID,
) -> dict[str, Any]:
    """MESSAGE_REACTION_ADD / _REMOVE data (the same shape; removals carry no member)."""
    return {
        "user_id": str(user_id),
        "channel_id": str(channel_id),
        "message_id": str(message_id),
        "guild_id": str(guild_id),
        "emoji": {"id": None, "name": emoji},
        "burst": False,
        "type": 0,
    }


async def invoke(client: discord.Client, payload: dict[str, Any]) -> None:
    """Run one interaction to completion, as discord.py does for INTERACTION_CREATE.

    Slash commands go through the real `CommandTree` (errors to its `on_error`,
    like `CommandTree._from_interaction`); component clicks through the
    registered `DynamicItem`s.
    """
    interaction = discord.Interaction(data=payload, state=client._connection)  # type: ignore[arg-type]
    if payload["type"] == 2:
        tree: app_commands.CommandTree[Any] = client.tree  # type: ignore[attr-defined]
        try:
            await tree._call(interaction)
        except app_commands.AppCommandError as error:
            await tree._dispatch_error(interaction, error)
        return
    view_store = client._connection._view_store
    custom_id = payload["data"]["custom_id"]
    for pattern, item_cls in view_store._dynamic_items.items():
        match = pattern.fullmatch(custom_id)
        if match is not None:
            await view_store.schedule_dynamic_item_call(2, item_cls, interaction, custom_id, match)
            return
    raise AssertionError(f"no button handles {custom_id!r}")


def answers(fake: FakeDiscord, payload: dict[str, Any]) -> list[Recorded]:
    """Everything the bot sent for one interaction: its callback, then follow-ups."""
    # The interaction token is a path segment of the callback and of every webhook follow-up.
    return [r for r in fake.requests if payload["token"] in r.path.split("/")]


def answer_texts(fake: FakeDiscord, payload: dict[str, Any]) -> list[str]:
    out = []
    for r in answers(fake, payload):
        body = r.body.get("data", r.body) if r.path.endswith("/callback") else r.body
        if body and body.get("content"):
            out.append(body["content"])
    return out


def answer_embeds(fake: FakeDiscord, payload: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in answers(fake, payload):
        body = r.body.get("data", r.body) if r.path.endswith("/callback") else r.body
        out.extend((body or {}).get("embeds") or [])
    return out


def custom_ids(body: dict[str, Any]) -> list[str]:
    return [
        c["custom_id"] for row in body.get("components") or [] for c in row.get("components", [])
    ]


def posted_messages(core: PaperBot) -> dict[str, str]:
    """message id -> paper id, as the core's posted_messages table has them."""
    with core.db.read() as session:
        return {m.message_id: m.paper_id for m in session.scalars(sa.select(PostedMessage))}


@contextlib.asynccontextmanager
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A fake Discord on a free port, with discord.py pointed at it."""
    server = FakeDiscord()
    await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", server.rest_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url)
    )
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def logged_in(core: PaperBot, settings: Settings) -> AsyncIterator[PaperClient]:
    """paperbot's client logged in over REST (commands synced), not connected to the gateway."""
    bot = build_bot(core, settings)
    await bot.login("fake-token")
    try:
        yield bot
    finally:
        await bot.close()
