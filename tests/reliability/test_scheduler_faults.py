"""Issue 9 faults owned by the scheduler: a feed down for a whole day, gateway reconnects."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot import deliveries, runner, scheduler
from bot.domain import ChannelRef, PaperIn
from bot.local_platform import LocalPostingPort
from bot.models import Delivery, LocalMessage
from bot.paperbot import PaperBot
from bot.posting import PostingPort
from tests.fakes.flaky_platform import FlakyPlatformPort, VirtualClock
from tests.helpers import paper, topical_papers

pytestmark = pytest.mark.reliability

DAY = date(2025, 10, 6)
CHANNEL = ChannelRef("local", "team", "#papers")


def at(day: date, hhmm: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=UTC)


def texts(core: PaperBot) -> list[str]:
    with core.db.read() as session:
        rows = session.scalars(sa.select(LocalMessage).order_by(LocalMessage.id))
        return [r.body.get("text") or r.body["title"] for r in rows]


def statuses(core: PaperBot) -> list[tuple[date, str]]:
    with core.db.read() as session:
        rows = session.scalars(sa.select(Delivery).order_by(Delivery.day))
        return [(r.day, r.status) for r in rows]


@pytest.mark.parametrize("empty_day_message", [True, False])
async def test_feed_down_for_a_whole_day_then_the_next_day_works(
    core: PaperBot, empty_day_message: bool
) -> None:
    core.settings.empty_day_message = empty_day_message
    ports = {"local": LocalPostingPort(core.db)}
    core.ingest(topical_papers(per_topic=2, day=DAY))
    core.subscribe(CHANNEL, "09:00", "UTC", limit=3)
    assert (await scheduler.tick(core, ports, at(DAY))).posted == 1

    # The feed is down on the next day: nothing new was ingested.
    down = DAY + timedelta(days=1)
    first = await scheduler.tick(core, ports, at(down))
    again = await scheduler.tick(core, ports, at(down, "15:00"))
    assert again.due == 0
    if empty_day_message:
        assert first.notices == 1
        assert texts(core)[3:] == [deliveries.EMPTY_DAY_TEXT]
    else:
        assert first.skipped == 1 and len(texts(core)) == 3

    # The feed is back: fresh papers, posted as usual.
    back = DAY + timedelta(days=2)
    core.ingest(fresh_papers(back))
    assert (await scheduler.tick(core, ports, at(back))).posted == 1
    assert len(texts(core)) == 3 + (1 if empty_day_message else 0) + 3
    expected = "confirmed" if empty_day_message else "skipped"
    assert statuses(core) == [(DAY, "confirmed"), (down, expected), (back, "confirmed")]


def fresh_papers(day: date) -> list[PaperIn]:
    return [paper(f"2999.{day:%d}{i:03d}", f"Fresh paper {i} of {day}", day=day) for i in range(6)]


class ReconnectingAdapter:
    """An adapter whose gateway drops and resumes several times while it serves."""

    name = "flaky"

    def __init__(self, port: PostingPort, core: PaperBot, reconnects: int) -> None:
        self.port = port
        self.core = core
        self.reconnects = reconnects

    async def run(self) -> None:
        for _ in range(self.reconnects):
            # What a real adapter does on reconnect: nothing about scheduling.
            await asyncio.sleep(0.05)
        for _ in range(600):
            if len(statuses(self.core)) == 2:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the scheduler never posted")


async def test_paperbot_run_starts_one_scheduler_across_reconnects_and_posts_once(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.ingest(topical_papers(per_topic=2, day=DAY))
    # Post time 00:00 UTC has always passed today; a day of grace keeps it due.
    core.settings.post_grace = timedelta(days=1)
    core.subscribe(CHANNEL, "00:00", "UTC", limit=2)
    flaky = ChannelRef("flaky", "guild", "42")
    core.subscribe(flaky, "00:00", "UTC", limit=2)
    port = FlakyPlatformPort("flaky", VirtualClock(), rate_limited_share=0.0)
    started: list[scheduler.DailyScheduler] = []
    original_start = scheduler.DailyScheduler.start

    def start(self: scheduler.DailyScheduler) -> bool:
        started.append(self)
        return original_start(self)

    monkeypatch.setattr(scheduler.DailyScheduler, "start", start)
    monkeypatch.setattr(
        runner, "load_adapter", lambda name, core, settings: ReconnectingAdapter(port, core, 3)
    )
    await runner.serve(core, core.settings, ["flaky"])

    assert len(started) == 1 and not started[0].running  # shut down when serve returned
    assert [s for _, s in statuses(core)] == ["confirmed", "confirmed"]
    assert len(texts(core)) == 2 and len(port.messages[flaky]) == 2


async def test_starting_the_scheduler_again_adds_no_jobs_and_posts_nothing_twice(
    core: PaperBot,
) -> None:
    core.ingest(topical_papers(per_topic=2, day=DAY))
    core.settings.post_grace = timedelta(days=1)
    core.subscribe(CHANNEL, "00:00", "UTC", limit=2)
    daily = scheduler.DailyScheduler(core, {"local": LocalPostingPort(core.db)})
    try:
        assert daily.start() is True
        for _ in range(3):  # on_ready after each reconnect, if an adapter called it
            assert daily.start() is False
        assert daily.jobs() == ["ingest", "reconcile", "tick"]
        for _ in range(600):
            if statuses(core):
                break
            await asyncio.sleep(0.05)
        await daily.tick()
        await daily.tick()
    finally:
        await daily.stop()
    assert [s for _, s in statuses(core)] == ["confirmed"]
    assert len(texts(core)) == 2
