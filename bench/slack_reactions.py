"""How much the Slack adapter adds to storing a reaction.

Sends N signed `reaction_added` events through the real Bolt app
(`async_dispatch`: signature check, parsing, authorization, listener,
`core.handle_reaction` in a thread) and compares with calling
`core.handle_reaction` directly for the same events, measured in the same
run on a fresh SQLite file. Prints events per second, latency percentiles
and the ratio adapter / baseline.

    python bench/slack_reactions.py [N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.slack import build_app
from adapters.slack.events import reaction_event
from bench.latency import percentile_ms
from bot import database
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.models import ProcessedEvent, Reaction
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.fakes.slack_server import FakeSlack
from tests.helpers import topical_papers
from tests.slack.slack_requests import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    dispatch,
    event_body,
    reaction,
)


def open_core(directory: Path, name: str, posts: int) -> tuple[PaperBot, list[tuple[str, str]]]:
    url = f"sqlite:///{directory / name}"
    database.upgrade(url)
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
    papers = topical_papers()
    core.ingest(papers)
    messages = [(f"1700000000.{i:06d}", papers[i % len(papers)].id) for i in range(posts)]
    core.record_posts(ChannelRef("slack", TEAM, "C1"), messages)
    return core, messages


def events(n: int, messages: list[tuple[str, str]]) -> list[str]:
    # Distinct users and messages, alternating add/remove: every event is real work.
    return [
        event_body(
            reaction(
                "reaction_added" if (i // len(messages)) % 2 == 0 else "reaction_removed",
                "+1",
                messages[i % len(messages)][0],
                user=f"U{i % 50}",
            ),
            event_id=f"Ev{i}",
        )
        for i in range(n)
    ]


def outcome(core: PaperBot) -> tuple[int, int]:
    """(events counted, likes standing) in this core's database."""
    with core.db.read() as session:
        counted = session.scalar(sa.select(sa.func.count()).select_from(ProcessedEvent))
        likes = session.scalar(
            sa.select(sa.func.count()).select_from(Reaction).where(Reaction.up_at.is_not(None))
        )
        return counted or 0, likes or 0


async def main(n: int) -> None:
    fake = await FakeSlack(TEAM).start()
    with tempfile.TemporaryDirectory() as tmp:
        baseline_core, messages = open_core(Path(tmp), "baseline.db", 200)
        adapter_core, _ = open_core(Path(tmp), "adapter.db", 200)
        bodies = events(n, messages)

        latencies: list[float] = []
        start = time.perf_counter()
        for body in bodies:
            payload = json.loads(body)
            event = reaction_event(payload, payload["event"], TEAM)
            if event is None:
                raise SystemExit("bench bug: not a reaction event")
            t0 = time.perf_counter()
            await asyncio.to_thread(baseline_core.handle_reaction, event)
            latencies.append(time.perf_counter() - t0)
        baseline = time.perf_counter() - start
        baseline_latencies = latencies

        settings = Settings(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            slack_api_url=fake.api_url,
        )
        app = build_app(adapter_core, settings)
        await dispatch(app, bodies[0])  # warm-up: auth.test, then cached
        latencies = []
        start = time.perf_counter()
        for body in bodies[1:]:
            t0 = time.perf_counter()
            response = await dispatch(app, body)
            if response.status != 200:
                raise SystemExit(f"adapter refused an event: {response.status} {response.body}")
            latencies.append(time.perf_counter() - t0)
        adapter = time.perf_counter() - start
        # Same events, same outcome: the adapter lost nothing on the way.
        results = [outcome(core) for core in (baseline_core, adapter_core)]
        baseline_core.close()
        adapter_core.close()
    await fake.stop()

    rate_base, rate_adapter = n / baseline, (n - 1) / adapter
    print(f"{'path':<34}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    print(
        f"{'core.handle_reaction (baseline)':<34}{rate_base:>10.0f}"
        f"{percentile_ms(baseline_latencies, 50):>9.2f}{percentile_ms(baseline_latencies, 99):>9.2f}"
    )
    print(
        f"{'signed event via Bolt (adapter)':<34}{rate_adapter:>10.0f}"
        f"{percentile_ms(latencies, 50):>9.2f}{percentile_ms(latencies, 99):>9.2f}"
    )
    print(f"adapter / baseline time per event: {rate_base / rate_adapter:.2f}x")
    print(f"(events counted, likes standing): baseline {results[0]}, adapter {results[1]}")
    if results[0] != results[1] or results[0][0] != n:
        raise SystemExit("the adapter path stored a different result")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", nargs="?", type=int, default=2000, help="events to send")
    asyncio.run(main(parser.parse_args().count))
