"""Daily fan-out: compute and post picks for many local subscriptions in one tick.

    python bench/fanout.py [--subscriptions 10000] [--picks 5] [--ledger-days 0]
                           [--database-url URL]

Uses the hashing embedder over the bundled sample feed and the `local`
platform, so it measures the core, the ledger and the database, not a chat
API. The baseline, measured in the same run on the same database, is computing
`channel_picks` for every channel without posting: the ratio is what the
exactly-once ledger and the posting add on top of ranking. Target: the tick
takes at most 30 s for 10,000 subscriptions on 2 cores.

`--ledger-days N` first fills the ledger with N days of confirmed posts for
every subscription (each from its own day's feed, so today's papers are still
new), as a bot that has run for N days has: the tick must not slow down as
that history grows.

After the fan-out it times the next minute's tick, when nothing is due, twice:
as `paperbot run` ticks every minute (it knows when its last tick finished, so
it reads the active subscriptions and the ledger rows of the last hours), and
as a process's first tick or a cron `paperbot tick` (which looks a week back
for days lost to downtime). Their baseline, in the same run, is reading the
active subscriptions alone. The subscriptions stand since the first day of the
ledger history, so no day is missing and every tick finds nothing to record.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

# Run this checkout's code, not an installed paperbot.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import database, scheduler
from bot.domain import ChannelRef, Pick
from bot.embedding import HashingEmbedder
from bot.local_platform import LocalPostingPort
from bot.models import Channel, Delivery, LocalMessage, Subscription
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource

NOW = datetime(2025, 11, 24, 12, 30, tzinfo=UTC)  # the sample feed's newest day, all posts due
ZONES = ("UTC", "Europe/Berlin", "America/Sao_Paulo", "Europe/London")


def subscribe_many(core: PaperBot, count: int, picks: int, now: datetime) -> list[ChannelRef]:
    channels = [ChannelRef("local", f"w{i % 50}", f"#c{i}") for i in range(count)]
    with core.db.write() as session:
        session.execute(
            sa.insert(Channel),
            [
                {
                    "platform": c.platform,
                    "workspace": c.workspace,
                    "channel_id": c.channel,
                    "created_at": now,
                }
                for c in channels
            ],
        )
        session.execute(
            sa.insert(Subscription),
            [
                {
                    "platform": c.platform, "workspace": c.workspace, "channel_id": c.channel,
                    "post_at": datetime.strptime("09:00", "%H:%M").time(),
                    "timezone": ZONES[i % len(ZONES)], "picks": picks, "status": "active",
                    "failures": 0, "created_at": now, "updated_at": now,
                }
                for i, c in enumerate(channels)
            ],
        )  # fmt: skip
    return channels


def fill_ledger(core: PaperBot, days: int, template: list[Pick]) -> int:
    """`days` days of confirmed posts before NOW's day for every subscription; returns the rows.

    One INSERT ... SELECT per day, in the database: Python would take longer
    to build a year's rows than the tick takes to read them. Every row holds
    the same picks (`template`), so its size is a real post's.
    """
    table = Delivery.__table__
    values = {
        "status": "confirmed",
        "paper_ids": [pick.paper_id for pick in template],
        "pick_notes": [{"score": pick.score, "reason": pick.reason} for pick in template],
        "message_ids": [str(10_000_000 + i) for i in range(len(template))],
        "claim_token": "0" * 32,
        "attempts": 1,
    }
    with core.db.write() as session:
        for back in range(1, days + 1):
            day = NOW.date() - timedelta(days=back)
            at = NOW - timedelta(days=back)
            row = {**values, "day": day, "feed_day": day, "created_at": at, "updated_at": at}
            session.execute(
                sa.insert(Delivery).from_select(
                    ["platform", "workspace", "channel_id", *row],
                    sa.select(
                        Subscription.platform,
                        Subscription.workspace,
                        Subscription.channel_id,
                        *(sa.literal(v, table.c[k].type) for k, v in row.items()),
                    ),
                )
            )
    with core.db.read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Delivery)) or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--picks", type=int, default=5)
    parser.add_argument(
        "--ledger-days", type=int, default=0, help="days of delivered history to start from"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/fanout.db"
        database.upgrade(url)
        core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
        core.ingest(SampleSource().fetch())
        # Subscribed just before the first day of history: no day is missing from it.
        since = datetime.combine(NOW.date(), datetime.min.time(), UTC)
        channels = subscribe_many(
            core, args.subscriptions, args.picks, since - timedelta(days=args.ledger_days)
        )
        day = NOW.date()
        history, filled = 0, 0.0
        if args.ledger_days:
            start = time.perf_counter()
            template = core.channel_picks(channels[0], args.picks, day)
            history = fill_ledger(core, args.ledger_days, template)
            filled = time.perf_counter() - start

        start = time.perf_counter()
        for channel in channels:
            core.channel_picks(channel, args.picks, day)
        baseline = time.perf_counter() - start

        start = time.perf_counter()
        report = asyncio.run(scheduler.tick(core, {"local": LocalPostingPort(core.db)}, NOW))
        fanout = time.perf_counter() - start

        start = time.perf_counter()
        with core.db.read() as session:
            session.scalars(
                sa.select(Subscription).where(Subscription.status.in_(scheduler.ACTIVE))
            ).all()
        read_subscriptions = time.perf_counter() - start
        port = {"local": LocalPostingPort(core.db)}
        later = NOW + timedelta(minutes=1)
        start = time.perf_counter()
        idle = asyncio.run(scheduler.tick(core, port, later, decided={"local": NOW}))
        idle_tick = time.perf_counter() - start
        start = time.perf_counter()
        first = asyncio.run(scheduler.tick(core, port, later + timedelta(minutes=1)))
        first_tick = time.perf_counter() - start

        with core.db.read() as session:
            statuses = Counter(
                session.scalars(sa.select(Delivery.status).where(Delivery.day == day))
            )
            messages = session.scalar(sa.select(sa.func.count()).select_from(LocalMessage))
        core.close()

    n = args.subscriptions
    print(f"database        {url.split(':', 1)[0]}")
    print(f"subscriptions   {n}  (picks {args.picks})")
    if args.ledger_days:
        print(f"ledger history  {history} rows ({args.ledger_days} days), filled in {filled:.1f} s")
    print(f"deliveries      {dict(statuses)}  messages {messages}  posted {report.posted}")
    print(f"baseline        {baseline:7.2f} s  channel_picks for every channel, no posting")
    print(f"tick (fan-out)  {fanout:7.2f} s  picks + claim + post + record + confirm")
    print(f"ratio           {fanout / baseline:7.2f} x baseline")
    print(f"per delivery    {1000 * fanout / n:7.2f} ms   target: {n} in <= 30 s")
    print(f"baseline        {read_subscriptions:7.3f} s  reading the active subscriptions")
    print(f"tick (idle)     {idle_tick:7.3f} s  the next minute: nothing due")
    print(f"ratio           {idle_tick / read_subscriptions:7.2f} x baseline")
    print(f"tick (first)    {first_tick:7.3f} s  idle, a week looked back (start-up, cron)")
    print(f"ratio           {first_tick / read_subscriptions:7.2f} x baseline")
    if statuses.get("confirmed") != n or messages != n * args.picks:
        sys.exit("fan-out did not post every subscription exactly once")
    if idle.due or first.due or idle.skipped or first.skipped:
        sys.exit("an idle tick found posts due or days missed")


if __name__ == "__main__":
    main()
