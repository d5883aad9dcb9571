"""What the Discord path costs per reaction, against calling the core directly.

    python -m bench.discord_reactions [count] [postgres_admin_url]    # from the project root

Without a URL it uses a fresh SQLite file; with a PostgreSQL URL it creates a
throwaway database on that server and drops it afterwards.

Runs the real discord.py client (through `adapters.discord.create_adapter`)
against the fake Discord in tests/fakes, sends `count` MESSAGE_REACTION_ADD
frames through its gateway, and waits until every one is stored. The baseline,
measured in the same run on the same database, is `count` direct
`core.handle_reaction` calls. Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import discord
import sqlalchemy as sa
import yarl
from pydantic import SecretStr

from adapters.discord import create_adapter
from bench.throwaway_database import fresh_database
from bot import database
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.feedback import ReactionEvent
from bot.models import Reaction
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.discord.helpers import reaction
from tests.fakes.discord_server import CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.helpers import paper

HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
PAPERS = 50


def stored(core: PaperBot) -> int:
    with core.db.read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Reaction)) or 0


async def run(count: int, url: str) -> None:
    database.upgrade(url)
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
    core.ingest([paper(f"2510.{i:05d}") for i in range(PAPERS)])
    core.record_posts(HERE, [(str(1000 + i), f"2510.{i:05d}") for i in range(PAPERS)])

    # Baseline: the core alone, users 1..count.
    started = time.perf_counter()
    for i in range(count):
        core.handle_reaction(
            ReactionEvent(
                "discord",
                str(GUILD_ID),
                str(CHANNEL_ID),
                str(1000 + i % PAPERS),
                str(i),
                "👍",
                True,
            )
        )
    baseline = time.perf_counter() - started

    fake = FakeDiscord()
    await fake.start()
    discord.http.Route.BASE = fake.rest_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    adapter = create_adapter(core, Settings(discord_token=SecretStr(fake.token)))
    task = asyncio.create_task(adapter.run())
    await fake.wait_for(lambda: fake.identifies)
    await adapter.client.wait_until_ready()

    # Through Discord: other users, the same messages.
    started = time.perf_counter()
    for i in range(count):
        await fake.dispatch("MESSAGE_REACTION_ADD", reaction(1000 + i % PAPERS, user_id=10**6 + i))
    while True:  # polling the table: storage has no event to await
        if stored(core) >= 2 * count:
            break
        await asyncio.sleep(0.01)
    through_discord = time.perf_counter() - started

    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await fake.close()
    core.close()
    print(f"{'path':<24}{'reactions':>10}{'seconds':>10}{'ms each':>10}")
    print(
        f"{'core.handle_reaction':<24}{count:>10}{baseline:>10.2f}{1000 * baseline / count:>10.2f}"
    )
    print(
        f"{'Discord gateway':<24}{count:>10}{through_discord:>10.2f}"
        f"{1000 * through_discord / count:>10.2f}"
    )
    print(f"ratio Discord / core: {through_discord / baseline:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", nargs="?", type=int, default=1000, help="reactions to send")
    parser.add_argument(
        "postgres_admin_url", nargs="?", help="PostgreSQL server for a throwaway database"
    )
    args = parser.parse_args()
    with fresh_database(args.postgres_admin_url) as url:
        asyncio.run(run(args.count, url))


if __name__ == "__main__":
    main()
