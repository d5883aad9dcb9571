"""The due-post tick: local time across DST, the grace window, failures, cancel, 429 storms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot import commands, deliveries, scheduler
from bot.domain import ChannelRef, Pick
from bot.local_platform import LocalPostingPort
from bot.models import Delivery, LocalMessage, PostedMessage, Subscription
from bot.paperbot import PaperBot
from tests.fakes.flaky_platform import FlakyPlatformPort, VirtualClock
from tests.helpers import topical_papers

NOV24 = date(2025, 11, 24)  # the newest day of the bundled sample feed


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local_port(core: PaperBot) -> dict[str, LocalPostingPort]:
    return {"local": LocalPostingPort(core.db)}


def ledger(core: PaperBot) -> list[Delivery]:
    with core.db.read() as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


def stood_since(core: PaperBot, when: datetime) -> None:
    """Every subscription has stood as it is since `when` (subscribe() stamps the real now)."""
    with core.db.write() as session:
        session.execute(sa.update(Subscription).values(updated_at=when))


def local_messages(core: PaperBot, channel: str | None = None) -> list[LocalMessage]:
    with core.db.read() as session:
        query = sa.select(LocalMessage).order_by(LocalMessage.id)
        if channel:
            query = query.where(LocalMessage.channel_id == channel)
        return list(session.scalars(query))


# ---------------------------------------------------------------- local time and DST
@pytest.mark.parametrize(
    ("tz", "day", "at", "expected_utc"),
    [
        # an ordinary winter day: 09:00 CET is 08:00 UTC
        ("Europe/Berlin", date(2025, 11, 24), time(9, 0), "2025-11-24T08:00"),
        # spring-forward: 02:30 does not exist; post when clocks jump, 03:00 CEST
        ("Europe/Berlin", date(2025, 3, 30), time(2, 30), "2025-03-30T01:00"),
        # fall-back: 02:30 happens twice; post at the first, 02:30 CEST
        ("Europe/Berlin", date(2025, 10, 26), time(2, 30), "2025-10-26T00:30"),
        ("America/New_York", date(2025, 3, 9), time(2, 30), "2025-03-09T07:00"),
        ("America/New_York", date(2025, 11, 2), time(1, 30), "2025-11-02T05:30"),
        # a time just after the gap is unaffected
        ("America/New_York", date(2025, 3, 9), time(3, 0), "2025-03-09T07:00"),
    ],
)
def test_post_instant_is_defined_on_dst_days(
    tz: str, day: date, at: time, expected_utc: str
) -> None:
    assert scheduler.post_instant(day, at, ZoneInfo(tz)) == utc(expected_utc)


@pytest.mark.parametrize(
    ("tz", "day", "at", "ticks", "posts_at"),
    [
        # Berlin spring-forward: 02:30 local does not exist; 01:00 UTC is 03:00 CEST.
        (
            "Europe/Berlin",
            date(2025, 3, 30),
            "02:30",
            ["00:59", "01:00", "01:30", "02:30", "21:00"],
            "01:00",
        ),
        # Berlin fall-back: 00:30 UTC is the first 02:30, 01:30 UTC the second.
        (
            "Europe/Berlin",
            date(2025, 10, 26),
            "02:30",
            ["00:29", "00:30", "01:30", "01:31", "12:00"],
            "00:30",
        ),
        (
            "America/New_York",
            date(2025, 3, 9),
            "02:30",
            ["06:59", "07:00", "07:30", "08:00"],
            "07:00",
        ),
        (
            "America/New_York",
            date(2025, 11, 2),
            "01:30",
            ["05:29", "05:30", "06:30", "06:31"],
            "05:30",
        ),
    ],
)
async def test_dst_days_post_exactly_once_at_the_defined_instant(
    core: PaperBot, tz: str, day: date, at: str, ticks: list[str], posts_at: str
) -> None:
    core.ingest(topical_papers(per_topic=2, day=day))
    channel = ChannelRef("local", "dst", "#papers")
    core.subscribe(channel, at, tz, limit=3)
    posted_at = []
    for hhmm in ticks:
        report = await scheduler.tick(core, local_port(core), utc(f"{day}T{hhmm}"))
        if report.posted:
            posted_at.append(hhmm)
    assert posted_at == [posts_at]
    assert len(local_messages(core, "#papers")) == 3
    assert [(d.day, d.status) for d in ledger(core)] == [(day, "confirmed")]


# ---------------------------------------------------------------- the daily post
async def test_due_post_goes_out_once_with_channel_picks_and_recorded_messages(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    channel = ChannelRef("local", "demo", "#general")
    core.subscribe(channel, "09:00", "Europe/Berlin", limit=4)
    early = await scheduler.tick(core, local_port(core), utc("2025-11-24T07:59"))
    assert early.due == 0 and local_messages(core) == []

    first = await scheduler.tick(core, local_port(core), utc("2025-11-24T08:00"))
    again = await scheduler.tick(core, local_port(core), utc("2025-11-24T08:01"))
    assert (first.posted, again.due, again.posted) == (1, 0, 0)
    messages = local_messages(core)
    assert len(messages) == 4
    (row,) = ledger(core)
    assert (row.status, row.day, row.feed_day) == ("confirmed", NOV24, NOV24)
    assert row.message_ids == [str(m.id) for m in messages]
    assert [m.paper_id for m in messages] == row.paper_ids
    with core.db.read() as session:
        posted = {
            (p.message_id, p.paper_id, p.delivery_id)
            for p in session.scalars(sa.select(PostedMessage))
        }
    assert posted == {(str(m.id), m.paper_id, row.id) for m in messages}
    assert core.subscription(channel).last_posted_on == NOV24  # type: ignore[union-attr]


async def test_each_local_day_is_its_own_delivery(sample_core: PaperBot) -> None:
    core = sample_core
    # 23:30 in Tokyo is already the next local day there.
    tokyo = ChannelRef("local", "demo", "#tokyo")
    core.subscribe(tokyo, "08:00", "Asia/Tokyo", limit=2)
    await scheduler.tick(core, local_port(core), utc("2025-11-23T23:30"))
    await scheduler.tick(core, local_port(core), utc("2025-11-24T10:00"))
    await scheduler.tick(core, local_port(core), utc("2025-11-24T23:30"))
    assert [d.day for d in ledger(core)] == [date(2025, 11, 24), date(2025, 11, 25)]


async def test_restart_inside_the_grace_window_posts_the_missed_post_once(
    sample_core: PaperBot,
) -> None:
    core = sample_core  # default grace: 6 h
    core.subscribe(ChannelRef("local", "demo", "#late"), "09:00", "Europe/Berlin", limit=2)
    # The process was down from before 08:00 UTC until 13:59 UTC.
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T13:59"))
    await scheduler.tick(core, local_port(core), utc("2025-11-24T14:30"))
    assert report.posted == 1
    assert len(local_messages(core, "#late")) == 2


async def test_restart_outside_the_grace_window_skips_with_one_warning_then_next_day_posts(
    sample_core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core
    channel = ChannelRef("local", "demo", "#missed")
    core.subscribe(channel, "09:00", "Europe/Berlin", limit=2)
    stood_since(core, utc("2025-11-24T06:00"))  # subscribed before the downtime
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        first = await scheduler.tick(core, local_port(core), utc("2025-11-24T14:01"))
        second = await scheduler.tick(core, local_port(core), utc("2025-11-24T18:00"))
    assert (first.skipped, second.skipped) == (1, 0)
    warnings = [r for r in caplog.records if "PAPERBOT_POST_GRACE" in r.getMessage()]
    assert len(warnings) == 1
    assert local_messages(core) == []
    assert [(d.status, d.day) for d in ledger(core)] == [("skipped", NOV24)]

    nxt = await scheduler.tick(core, local_port(core), utc("2025-11-25T08:05"))
    assert nxt.posted == 1
    assert len(local_messages(core, "#missed")) == 2


async def test_a_post_missed_across_local_midnight_is_recorded_as_skipped_with_a_warning(
    sample_core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core  # default grace: 6 h
    channel = ChannelRef("local", "demo", "#late-evening")
    core.subscribe(channel, "23:30", "UTC", limit=2)
    stood_since(core, utc("2025-11-24T12:00"))  # subscribed before the 24th's post
    # Down from 23:00 on the 24th until 00:15 on the 25th: the 24th's post was due
    # 45 minutes ago, within the grace, but the 24th is over.
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        first = await scheduler.tick(core, local_port(core), utc("2025-11-25T00:15"))
        second = await scheduler.tick(core, local_port(core), utc("2025-11-25T00:16"))
    assert (first.skipped, first.posted, second.skipped) == (1, 0, 0)
    warnings = [r.getMessage() for r in caplog.records if "local day is over" in r.getMessage()]
    assert len(warnings) == 1 and "#late-evening" in warnings[0]
    assert local_messages(core) == []
    assert [(d.status, d.day) for d in ledger(core)] == [("skipped", NOV24)]

    evening = await scheduler.tick(core, local_port(core), utc("2025-11-25T23:31"))
    assert evening.posted == 1
    assert [(d.status, d.day) for d in ledger(core)] == [
        ("skipped", NOV24),
        ("confirmed", date(2025, 11, 25)),
    ]


async def test_the_day_before_a_subscription_changed_is_not_counted_as_missed(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#new"), "23:30", "UTC", limit=2)
    with core.db.write() as session:
        session.execute(sa.update(Subscription).values(updated_at=utc("2025-11-24T23:50")))
    report = await scheduler.tick(core, local_port(core), utc("2025-11-25T00:15"))
    assert (report.skipped, report.due) == (0, 0)
    assert ledger(core) == []


async def test_days_lost_to_a_downtime_past_the_grace_are_each_recorded_with_one_warning(
    sample_core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core
    evening = ChannelRef("local", "demo", "#evening")
    morning = ChannelRef("local", "demo", "#morning")
    core.subscribe(evening, "23:30", "UTC", limit=2)
    core.subscribe(morning, "09:00", "Europe/Berlin", limit=2)
    stood_since(core, utc("2025-11-19T12:00"))
    assert (await scheduler.tick(core, local_port(core), utc("2025-11-19T23:30"))).posted == 1
    assert (await scheduler.tick(core, local_port(core), utc("2025-11-20T08:00"))).posted == 1
    # Down from 20:00 on the 20th until the afternoon of the 24th: the evening
    # post's 20th was 15 h ago (past the grace, its day over) and the morning's
    # 24th 6.5 h ago; three whole days between.
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        first = await scheduler.tick(core, local_port(core), utc("2025-11-24T14:30"))
        second = await scheduler.tick(core, local_port(core), utc("2025-11-24T14:31"))
    assert (first.skipped, first.due, second.skipped, second.due) == (8, 0, 0, 0)
    skipped = {(d.channel_id, d.day) for d in ledger(core) if d.status == "skipped"}
    assert skipped == {("#evening", date(2025, 11, d)) for d in (20, 21, 22, 23)} | {
        ("#morning", date(2025, 11, d)) for d in (21, 22, 23, 24)
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    for name, days in (("#evening", (20, 21, 22, 23)), ("#morning", (21, 22, 23, 24))):
        (line,) = [w for w in warnings if name in w]
        assert "for 4 days" in line
        assert all(f"2025-11-{d}" in line for d in days)
    assert len(local_messages(core, "#morning")) == 2  # the 20th's, nothing since

    # And the next evening posts as usual.
    assert (await scheduler.tick(core, local_port(core), utc("2025-11-24T23:30"))).posted == 1


async def test_a_downtime_of_weeks_is_recorded_for_the_last_week_only(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#idle"), "09:00", "UTC", limit=2)
    stood_since(core, utc("2025-10-01T00:00"))
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T08:00"))
    # Back before the 24th's post: the 17th to the 23rd, within MISSED_LOOKBACK.
    assert (report.skipped, report.due) == (7, 0)
    assert [d.day for d in ledger(core)] == [date(2025, 11, d) for d in range(17, 24)]


async def test_days_before_a_subscription_or_a_new_post_time_are_not_recorded_as_missed(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    late = ChannelRef("local", "demo", "#late")
    core.subscribe(ChannelRef("local", "demo", "#new"), "09:00", "UTC", limit=2)
    core.subscribe(late, "16:00", "UTC", limit=2)
    # #new was subscribed on the 22nd at 10:00, after that day's post time;
    # #late moved from 09:00 to 16:00 on the 23rd at 12:00, after the 09:00.
    stood_since(core, utc("2025-11-22T10:00"))
    with core.db.write() as session:
        session.execute(
            sa.update(Subscription)
            .where(Subscription.channel_id == "#late")
            .values(updated_at=utc("2025-11-23T12:00"))
        )
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T08:00"))
    # #new: the 23rd (its first day); #late: the 23rd at 16:00, after the change.
    assert report.skipped == 2
    assert {(d.channel_id, d.day) for d in ledger(core)} == {
        ("#new", date(2025, 11, 23)),
        ("#late", date(2025, 11, 23)),
    }


async def test_a_subscription_made_past_todays_post_time_and_grace_starts_tomorrow_silently(
    sample_core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#fresh"), "09:00", "UTC", limit=2)
    stood_since(core, utc("2025-11-24T16:00"))
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        report = await scheduler.tick(core, local_port(core), utc("2025-11-24T16:00"))
    assert (report.skipped, report.due) == (0, 0)
    assert ledger(core) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_scheduler_looks_back_from_its_last_finished_tick_not_a_failed_one(
    sample_core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#daily"), "09:00", "UTC", limit=2)
    stood_since(core, utc("2025-11-01T00:00"))
    daily = scheduler.DailyScheduler(core, local_port(core))
    clock = utc("2025-11-23T08:00")
    monkeypatch.setattr(scheduler, "utcnow", lambda: clock)
    days_read: list[list[date]] = []
    existing = deliveries.existing

    def reading(db: object, days: object) -> set[tuple[str, str, str, date]]:
        wanted = sorted(set(days))  # type: ignore[call-overload]
        days_read.append(wanted)
        return existing(db, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(deliveries, "existing", reading)
    try:
        first = await daily.tick()  # the first tick of the process looks back a week
        assert first.skipped == 7
        clock = utc("2025-11-23T09:00")
        assert (await daily.tick()).posted == 1
        # Every minute after that, only the days near the last tick are read.
        clock = utc("2025-11-23T09:01")
        await daily.tick()
        assert days_read[-1] == [date(2025, 11, 23)]

        # The database goes away for two days: those ticks finish nothing...
        def away(*_: object) -> set[tuple[str, str, str, date]]:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

        monkeypatch.setattr(deliveries, "existing", away)
        clock = utc("2025-11-24T10:00")
        with pytest.raises(sa.exc.OperationalError):
            await daily.tick()
        # ...so when it is back, the missed days since the last finished tick are recorded.
        monkeypatch.setattr(deliveries, "existing", reading)
        clock = utc("2025-11-25T15:30")
        back = await daily.tick()
    finally:
        await daily.stop()
    assert back.skipped == 2
    assert [(d.day, d.status) for d in ledger(core)][-3:] == [
        (date(2025, 11, 23), "confirmed"),
        (date(2025, 11, 24), "skipped"),
        (date(2025, 11, 25), "skipped"),
    ]


async def test_a_database_lost_during_the_fan_out_is_one_line_per_batch_and_a_later_tick_posts(
    sample_core: PaperBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#c"), "09:00", "UTC", limit=2)
    claim = deliveries.claim

    def away(*_: object) -> list[deliveries.Claim | None]:
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(deliveries, "claim", away)
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        down = await scheduler.tick(core, local_port(core), utc("2025-11-24T09:00"))
    assert (down.due, down.posted, down.retry_later) == (1, 0, 1)
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.getMessage() == (
        "daily posts crashed for local:demo:#c: the database is unavailable "
        "((builtins.Exception) server closed the connection); a later tick retries"
    )
    assert line.exc_info is None
    monkeypatch.setattr(deliveries, "claim", claim)
    assert (await scheduler.tick(core, local_port(core), utc("2025-11-24T09:01"))).posted == 1


async def test_a_subscription_in_a_zone_this_host_does_not_know_stops_no_other_post(
    sample_core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("local", "demo", "#known"), "09:00", "UTC", limit=2)
    core.subscribe(ChannelRef("local", "demo", "#gone"), "09:00", "UTC", limit=2)
    # Checked when subscribed; this tzdata lacks it. (Named per database: the
    # process says it once, and both databases' tests run in one process.)
    gone = f"Europe/Atlantis_{core.db.engine.dialect.name}"
    with core.db.write() as session:
        session.execute(
            sa.update(Subscription).where(Subscription.channel_id == "#gone").values(timezone=gone)
        )
    with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
        first = await scheduler.tick(core, local_port(core), utc("2025-11-24T09:00"))
        await scheduler.tick(core, local_port(core), utc("2025-11-24T09:01"))
    assert (first.due, first.posted) == (1, 1)
    assert len(local_messages(core, "#known")) == 2
    assert [r.getMessage() for r in caplog.records if "Atlantis" in r.getMessage()] == [
        f"the time zone {gone!r} of a subscription is not known here (tzdata): its "
        "channels are not posted until they subscribe with a known zone"
    ]


async def test_a_channel_that_cannot_be_posted_to_pauses_after_three_failing_days(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    clock = VirtualClock()
    port = FlakyPlatformPort("flaky", clock, rate_limited_share=0.0)
    gone = ChannelRef("flaky", "W1", "deleted")
    fine = ChannelRef("flaky", "W1", "fine")
    port.missing.add(gone)
    core.subscribe(gone, "09:00", "UTC", limit=2)
    core.subscribe(fine, "09:00", "UTC", limit=2)
    states = []
    for day in (24, 25, 26, 27):
        report = await scheduler.tick(core, {"flaky": port}, utc(f"2025-11-{day}T09:00"))
        assert report.channels == [fine]  # the healthy channel is not held up
        info = core.subscription(gone)
        assert info is not None
        states.append((info.status, info.failures, report.failed))
    assert states == [("failing", 1, 1), ("failing", 2, 1), ("paused", 3, 1), ("paused", 3, 0)]
    text = commands.describe_subscription(core, gone)
    assert "State: paused" in text and "ChannelNotFound" in text
    assert port.messages[gone] == []
    # The sample feed ends on the 24th: picks once, then "no new papers today".
    assert [text for _, text in port.messages[fine]][2:] == [deliveries.EMPTY_DAY_TEXT] * 3


async def test_a_post_after_failures_resets_the_count(sample_core: PaperBot) -> None:
    core = sample_core
    port = FlakyPlatformPort("flaky", VirtualClock(), rate_limited_share=0.0)
    channel = ChannelRef("flaky", "W1", "C1")
    port.forbidden.add(channel)
    core.subscribe(channel, "09:00", "UTC", limit=1)
    await scheduler.tick(core, {"flaky": port}, utc("2025-11-24T09:00"))
    assert core.subscription(channel).status == "failing"  # type: ignore[union-attr]
    assert "State: failing" in commands.describe_subscription(core, channel)
    port.forbidden.clear()  # someone fixed the permissions
    await scheduler.tick(core, {"flaky": port}, utc("2025-11-25T09:00"))
    info = core.subscription(channel)
    assert info is not None and (info.status, info.failures, info.last_error) == ("active", 0, None)


async def test_cancelled_tenant_and_unsubscribed_channel_get_no_posts(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    for name in ("a", "b"):
        core.subscribe(ChannelRef("local", "gone-guild", name), "09:00", "UTC", limit=1)
    core.subscribe(ChannelRef("local", "stays", "x"), "09:00", "UTC", limit=1)
    core.subscribe(ChannelRef("local", "stays", "y"), "09:00", "UTC", limit=1)
    assert core.cancel_tenant("local", "gone-guild") == 2
    core.unsubscribe(ChannelRef("local", "stays", "y"))
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T09:30"))
    assert report.channels == [ChannelRef("local", "stays", "x")]
    assert {m.channel_id for m in local_messages(core)} == {"x"}


async def test_platforms_without_a_port_here_are_left_to_their_process(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    core.subscribe(ChannelRef("discord", "G1", "123"), "09:00", "UTC")
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T09:30"))
    assert report.due == 0 and ledger(core) == []


async def test_a_429_storm_posts_every_channel_exactly_once_never_retrying_early(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    clock = VirtualClock()
    port = FlakyPlatformPort("flaky", clock, rate_limited_share=0.3, retry_after=2.5)
    channels = [ChannelRef("flaky", f"W{i % 3}", f"C{i}") for i in range(40)]
    for channel in channels:
        core.subscribe(channel, "09:00", "UTC", limit=3)
    report = await scheduler.tick(
        core, {"flaky": port}, utc("2025-11-24T09:00"), sleep=clock.sleep, concurrency={"flaky": 4}
    )
    assert port.rate_limited > 10  # it really was a storm
    assert (report.posted, report.notices, report.retry_later, report.failed) == (40, 0, 0, 0)
    for channel in channels:
        keys = [key for key, _ in port.messages[channel]]
        assert len(keys) == 3 and len(set(keys)) == 3
    assert port.early_retries == []
    assert clock.sleeps and set(clock.sleeps) == {2.5}
    assert {d.status for d in ledger(core)} == {"confirmed"}


async def test_a_chat_platform_claims_each_post_just_before_sending_it(
    sample_core: PaperBot,
) -> None:
    # Batching the ledger is for the local platform; a chat platform's sends are
    # slow, and a claim made long before its send could outlive its lease.
    core = sample_core
    port = FlakyPlatformPort("flaky", VirtualClock(), rate_limited_share=0.0)
    claimed_when_sending: list[int] = []
    send = port.send_picks

    async def watched(
        channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        claimed_when_sending.append(sum(d.status == "claimed" for d in ledger(core)))
        return await send(channel, picks, key, resume=resume)

    port.send_picks = watched  # type: ignore[method-assign]
    for i in range(6):
        core.subscribe(ChannelRef("flaky", "W", f"C{i}"), "09:00", "UTC", limit=2)
    report = await scheduler.tick(
        core, {"flaky": port}, utc("2025-11-24T09:00"), concurrency={"flaky": 1}
    )
    assert report.posted == 6
    assert claimed_when_sending == [1] * 6  # only the post being sent


async def test_a_post_claimed_late_in_a_long_tick_is_not_resumed_while_it_is_sent(
    sample_core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reconcile job runs beside the tick. A claim's lease must run from when
    # it was made: counted from the tick's start, the posts claimed after one
    # lease were stale while still being sent, and were resumed: posted twice.
    monkeypatch.setattr(deliveries, "LEASE", timedelta(seconds=2))
    # In proportion: a send starts with at least this much of its lease left.
    monkeypatch.setattr(deliveries, "SEND_TIME", timedelta(seconds=1))
    core = sample_core
    port = FlakyPlatformPort("flaky", VirtualClock(), rate_limited_share=0.0)
    send = port.send_picks

    async def slow(
        channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        await asyncio.sleep(0.5)  # real time: a platform that takes a while per post
        return await send(channel, picks, key, resume=resume)

    port.send_picks = slow  # type: ignore[method-assign]
    for i in range(5):
        core.subscribe(ChannelRef("flaky", "W", f"C{i}"), "09:00", "UTC", limit=2)
    began, start = monotonic(), utc("2025-11-24T09:00")
    running = asyncio.create_task(
        scheduler.tick(core, {"flaky": port}, start, concurrency={"flaky": 1})
    )
    await asyncio.sleep(2.2)  # the fifth post is being sent, claimed after one lease
    assert not running.done()
    during = await scheduler.reconcile(
        core, {"flaky": port}, start + timedelta(seconds=monotonic() - began)
    )
    report = await running
    assert (during.resumed, during.taken, during.skipped) == (0, 0, 0)
    assert (report.posted, report.retry_later) == (5, 0)
    assert {d.status for d in ledger(core)} == {"confirmed"}
    assert port.attempts == 10  # two picks each, every one sent once


async def test_a_long_retry_after_is_left_for_a_later_tick_not_waited_in_line(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    clock = VirtualClock()
    port = FlakyPlatformPort("flaky", clock, rate_limited_share=1.0, retry_after=3600)
    channel = ChannelRef("flaky", "W", "C")
    core.subscribe(channel, "09:00", "UTC", limit=2)
    report = await scheduler.tick(core, {"flaky": port}, utc("2025-11-24T09:00"), sleep=clock.sleep)
    assert report.retry_later == 1 and clock.sleeps == []
    (row,) = ledger(core)
    assert row.status == "claimed" and "retry after 3600s" in (row.error or "")
    port.rate_limited_share = 0.0
    # Not before retry_after, even though the platform would accept it now...
    sooner = await scheduler.tick(core, {"flaky": port}, utc("2025-11-24T09:59"), sleep=clock.sleep)
    assert sooner.resumed == 0 and port.attempts == 1
    # ...then the next tick resumes the same claim with the same picks.
    later = await scheduler.tick(
        core, {"flaky": port}, utc("2025-11-24T10:00:01"), sleep=clock.sleep
    )
    assert later.resumed == 1
    (after,) = ledger(core)
    assert (after.id, after.status, after.paper_ids) == (row.id, "confirmed", row.paper_ids)
    assert [key for key, _ in port.messages[channel]] == [f"pb-{row.id}:0", f"pb-{row.id}:1"]


def test_a_second_claim_of_the_same_channel_day_gets_nothing(sample_core: PaperBot) -> None:
    core = sample_core
    channel = ChannelRef("local", "demo", "#x")
    now = utc("2025-11-24T09:00")
    other = ChannelRef("local", "demo", "#y")
    (first,) = deliveries.claim(core.db, [deliveries.Post(channel, NOV24)], now)
    assert first is not None
    # In a batch, only the free (channel, day) is claimed; the taken one gets None.
    again, fresh = deliveries.claim(
        core.db, [deliveries.Post(channel, NOV24), deliveries.Post(other, NOV24)], now
    )
    assert again is None and fresh is not None and fresh.channel == other
    assert deliveries.skip(core.db, channel, NOV24, now, "test") is False
    # A live lease cannot be taken over; an expired one can, by exactly one taker.
    row = next(r for r in ledger(core) if r.channel_id == "#x")
    assert deliveries.take_over(core.db, row, now) is None
    expired = now + deliveries.LEASE + timedelta(seconds=1)
    taker = deliveries.take_over(core.db, row, expired)
    assert taker is not None and taker.resumed
    assert deliveries.take_over(core.db, row, expired) is None
    # The old owner lost it: its records and confirmation change nothing.
    assert deliveries.mark_sent(core.db, [(first, ["1"])], expired) == set()
    assert deliveries.confirm(core.db, [first], expired) == set()
    (taken,) = (r for r in ledger(core) if r.channel_id == "#x")
    assert (taken.status, taken.message_ids, taken.claim_token) == ("claimed", [], taker.token)


def test_a_take_over_from_an_outdated_read_of_the_row_gets_nothing(sample_core: PaperBot) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    deliveries.claim(core.db, [deliveries.Post(ChannelRef("local", "demo", "#x"), NOV24)], now)
    (read_early,) = ledger(core)
    expired = now + deliveries.LEASE + timedelta(seconds=1)
    # Another process takes the row over, fails to send and gives it back for a retry.
    taker = deliveries.take_over(core.db, read_early, expired)
    assert taker is not None
    assert deliveries.release(core.db, taker, "PostingError: 502", expired)
    later = expired + timedelta(seconds=1)
    assert deliveries.take_over(core.db, read_early, later) is None
    (current,) = ledger(core)
    resumed = deliveries.take_over(core.db, current, later)
    assert resumed is not None and resumed.attempts == 3


def test_a_slow_owners_sent_post_is_not_abandoned_under_it_and_is_confirmed_once(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    channel = ChannelRef("local", "demo", "#slow")
    (claim,) = deliveries.claim(core.db, [deliveries.Post(channel, NOV24)], now)
    assert claim is not None
    (read_while_claimed,) = ledger(core)  # what reconciliation saw once the lease ran out
    later = now + deliveries.LEASE + timedelta(seconds=1)
    # Meanwhile the owner's send went through after all.
    assert deliveries.mark_sent(core.db, [(claim, ["n1"])], later) == {claim.id}
    assert deliveries.abandon(core.db, read_while_claimed, later, "past grace") is False
    assert deliveries.confirm(core.db, [claim], later) == {claim.id}
    assert deliveries.confirm(core.db, [claim], later) == set()
    (row,) = ledger(core)
    assert (row.status, row.message_ids, row.error) == ("confirmed", ["n1"], None)


def test_an_unsubscribed_channels_post_in_flight_does_not_bring_it_back(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    failing, posted = ChannelRef("local", "demo", "#fails"), ChannelRef("local", "demo", "#posts")
    for channel in (failing, posted):
        core.subscribe(channel, "09:00", "UTC")
        (earlier,) = deliveries.claim(core.db, [deliveries.Post(channel, date(2025, 11, 23))], now)
        assert earlier is not None
        assert deliveries.mark_failed(core.db, earlier, "MissingPermission", now) == "failing"
    claims = deliveries.claim(core.db, [deliveries.Post(c, NOV24) for c in (failing, posted)], now)
    assert None not in claims
    fails, posts = claims
    for channel in (failing, posted):
        core.unsubscribe(channel)  # while its post is being sent
    assert deliveries.mark_failed(core.db, fails, "ChannelNotFound", now) == "cancelled"  # type: ignore[arg-type]
    assert deliveries.mark_sent(core.db, [(posts, ["n1"])], now) == {posts.id}  # type: ignore[union-attr]
    assert deliveries.confirm(core.db, [posts], now) == {posts.id}  # type: ignore[list-item, union-attr]
    for channel in (failing, posted):
        info = core.subscription(channel)
        assert info is not None and (info.status, info.failures) == ("cancelled", 1)


def test_a_lost_claims_failure_does_not_count_against_the_channel(sample_core: PaperBot) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    channel = ChannelRef("local", "demo", "#x")
    core.subscribe(channel, "09:00", "UTC")
    (first,) = deliveries.claim(core.db, [deliveries.Post(channel, NOV24)], now)
    assert first is not None
    (row,) = ledger(core)
    assert deliveries.take_over(core.db, row, now + deliveries.LEASE * 2) is not None
    assert deliveries.mark_failed(core.db, first, "ChannelNotFound", now) is None
    info = core.subscription(channel)
    assert info is not None and (info.status, info.failures) == ("active", 0)
    assert ledger(core)[0].status == "claimed"


async def test_a_taken_over_sent_post_is_recorded_without_sending_again(
    sample_core: PaperBot,
) -> None:
    # Its messages are out; a port that cannot look them up (Slack without the
    # history scope) would post them twice if it were asked again.
    core = sample_core
    now = utc("2025-11-24T09:00")
    port = FlakyPlatformPort("flaky", VirtualClock(), rate_limited_share=0.0)
    channel = ChannelRef("flaky", "W1", "C1")
    core.subscribe(channel, "09:00", "UTC", limit=2)
    picks = core.channel_picks(channel, 2, NOV24)
    (claim,) = deliveries.claim(core.db, [deliveries.Post(channel, NOV24, picks)], now)
    assert claim is not None
    ids = await port.send_picks(channel, picks, claim.key)
    assert deliveries.mark_sent(core.db, [(claim, ids)], now) == {claim.id}
    attempts = port.attempts
    # Then the process died before confirming.
    report = await scheduler.tick(core, {"flaky": port}, now + deliveries.LEASE * 2)
    assert (report.resumed, port.attempts) == (1, attempts)
    (row,) = ledger(core)
    assert (row.status, row.message_ids) == ("confirmed", ids)


async def test_a_retry_after_a_rate_limit_part_way_through_resumes_under_the_same_key() -> None:
    class PartlySent:
        platform = "partly"

        def __init__(self) -> None:
            self.calls: list[tuple[str, bool]] = []

        async def send_picks(
            self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
        ) -> list[str]:
            self.calls.append((key, resume))
            if len(self.calls) == 1:  # the first message went out, then a 429
                raise deliveries.RateLimited(1.0)
            return ["m1", "m2"]

        async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
            raise AssertionError("not a notice")

    port, clock = PartlySent(), VirtualClock()
    claim = deliveries.Claim(
        7, ChannelRef("partly", "W", "C"), NOV24, "t", ["a", "b"], [], utc("2025-11-24T09:10")
    )
    assert await deliveries.send(port, claim, [], sleep=clock.sleep) == ["m1", "m2"]
    assert port.calls == [("pb-7", False), ("pb-7", True)]
    assert clock.sleeps == [1.0]


class Failing:
    """A port whose sends fail with each of `errors` in turn, then succeed."""

    platform = "failing"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ["m1"]

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        return (await self.send_picks(channel, [], key))[0]


async def test_rate_limit_waits_add_up_to_the_budget_then_the_row_waits_for_a_later_tick() -> None:
    clock = VirtualClock()
    port = Failing(*[deliveries.RateLimited(50.0) for _ in range(4)])
    claim = deliveries.Claim(
        7, ChannelRef("failing", "W", "C"), NOV24, "t", ["a"], [], utc("2025-11-24T09:10")
    )
    with pytest.raises(deliveries.GaveUpWaiting):
        await deliveries.send(port, claim, [], sleep=clock.sleep)
    assert clock.sleeps == [50.0, 50.0]  # a third wait would pass MAX_RATE_LIMIT_WAIT (2 min)


async def test_a_send_that_keeps_failing_gives_up_on_its_fifth_attempt(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    outcomes = []
    for n, attempts in enumerate((deliveries.MAX_ATTEMPTS - 1, deliveries.MAX_ATTEMPTS)):
        channel = ChannelRef("failing", "W", f"C{n}")
        core.subscribe(channel, "09:00", "UTC")
        (claim,) = deliveries.claim(core.db, [deliveries.Post(channel, NOV24)], now)
        assert claim is not None
        retried = replace(claim, attempts=attempts)
        port = Failing(deliveries.PostingError("Discord answered 502"))
        (outcome,) = await deliveries.deliver(port, [(retried, [])], db=core.db, now=now)
        outcomes.append(outcome.status)
    assert outcomes == [None, deliveries.Status.FAILED]
    assert [row.status for row in ledger(core)] == ["claimed", "failed"]


async def test_a_post_exactly_at_the_end_of_the_grace_window_still_goes_out(
    sample_core: PaperBot,
) -> None:
    core = sample_core  # default grace: 6 h
    core.subscribe(ChannelRef("local", "demo", "#edge"), "09:00", "Europe/Berlin", limit=2)
    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T14:00"))
    assert (report.posted, report.skipped) == (1, 0)


def claim_and_die(core: PaperBot, channel: ChannelRef, now: datetime) -> deliveries.Claim:
    """A claimer that dies right after claiming, as in the SIGKILL tests."""
    core.subscribe(channel, "09:00", "UTC", limit=2)
    (claim,) = deliveries.claim(
        core.db, [deliveries.Post(channel, NOV24, core.channel_picks(channel, 2, NOV24))], now
    )
    assert claim is not None
    return claim


def test_stale_claims_are_those_of_the_platforms_asked_for_whose_lease_ran_out(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    local = claim_and_die(core, ChannelRef("local", "demo", "#a"), now)
    chat = claim_and_die(core, ChannelRef("discord", "G1", "123"), now)
    later = now + deliveries.LEASE * 2
    assert deliveries.stale(core.db, now, ["local", "discord"]) == []
    assert [row.id for row in deliveries.stale(core.db, later, ["local"])] == [local.id]
    assert [row.id for row in deliveries.stale(core.db, later, ["discord", "local"])] == [
        local.id,
        chat.id,
    ]


async def test_a_stale_unsent_claim_is_not_resumed_after_cancel_or_past_grace(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    cancelled, old = ChannelRef("local", "gone", "#a"), ChannelRef("local", "demo", "#b")
    for channel in (cancelled, old):
        claim_and_die(core, channel, now)
    core.cancel_tenant("local", "gone")

    # Within grace: the cancelled one is dropped, the other resumed.
    report = await scheduler.tick(core, local_port(core), now + deliveries.LEASE * 2)
    assert (report.skipped, report.resumed) == (1, 1)
    assert {m.channel_id for m in local_messages(core)} == {"#b"}
    assert {(d.channel_id, d.status) for d in ledger(core)} == {
        ("#a", "skipped"),
        ("#b", "confirmed"),
    }


async def test_a_stale_claim_past_grace_is_skipped_but_a_sent_one_is_finished(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    now = utc("2025-11-24T09:00")
    unsent, sent = ChannelRef("local", "demo", "#unsent"), ChannelRef("local", "demo", "#sent")
    claim_and_die(core, unsent, now)
    claim_sent = claim_and_die(core, sent, now)
    port = LocalPostingPort(core.db)
    picks = core.stored_picks(claim_sent.paper_ids, claim_sent.notes)
    ids = await port.send_picks(sent, picks, claim_sent.key)
    # Then the process died.
    assert deliveries.mark_sent(core.db, [(claim_sent, ids)], now) == {claim_sent.id}

    report = await scheduler.tick(core, local_port(core), utc("2025-11-24T15:30"))
    assert (report.skipped, report.resumed) == (1, 1)
    assert [m.channel_id for m in local_messages(core)] == ["#sent", "#sent"]
    with core.db.read() as session:
        recorded = session.scalars(sa.select(PostedMessage.message_id)).all()
    assert sorted(recorded) == sorted(ids)


async def test_papers_of_an_abandoned_claim_still_count_as_new_the_next_day(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    channel = ChannelRef("local", "demo", "#c")
    claim_and_die(core, channel, utc("2025-11-24T09:00"))
    assert (await scheduler.tick(core, local_port(core), utc("2025-11-24T15:30"))).skipped == 1
    # No newer papers on the 25th, but the channel never saw the 24th's: picks, not a notice.
    report = await scheduler.tick(core, local_port(core), utc("2025-11-25T09:00"))
    assert (report.posted, report.notices) == (1, 0)


# ---------------------------------------------------------------- a ledger with history
def seed_ledger(core: PaperBot, rows: Sequence[tuple[ChannelRef, date, date | None, str]]) -> None:
    """Ledger rows (channel, local day, feed day, status) as earlier posts left them."""
    now = utc("2025-11-01T00:00")
    with core.db.write() as session:
        for channel, day, feed_day, status in rows:
            session.add(
                Delivery(
                    platform=channel.platform,
                    workspace=channel.workspace,
                    channel_id=channel.channel,
                    day=day,
                    feed_day=feed_day,
                    status=status,
                    paper_ids=["2501.00001"] if feed_day else [],
                    created_at=now,
                    updated_at=now,
                )
            )


async def test_only_a_post_from_the_current_feed_day_makes_the_day_empty_whatever_the_history(
    sample_core: PaperBot,
) -> None:
    core = sample_core
    older = ChannelRef("local", "demo", "#older")
    current = ChannelRef("local", "demo", "#current")
    for channel in (older, current):
        core.subscribe(channel, "09:00", "UTC", limit=2)
    history = [NOV24 - timedelta(days=back) for back in range(40, 0, -1)]  # Oct 15 .. Nov 23
    seed_ledger(
        core,
        # #older was posted each day from the day before's feed; on the 24th the
        # post from the 24th's feed failed, and shows nothing.
        [(older, day, day - timedelta(days=1), "confirmed") for day in history]
        + [(older, NOV24, NOV24, "failed")]
        # #current was posted from each day's own feed, the 24th's included.
        + [(current, day, day, "confirmed") for day in [*history, NOV24]]
        + [(current, day, None, "skipped") for day in (date(2025, 9, 1), date(2025, 9, 2))],
    )
    assert deliveries.last_feed_days(core.db, NOV24) == {("local", "demo", "#current"): NOV24}
    assert deliveries.last_feed_days(core.db, date(2025, 11, 20)) == {
        ("local", "demo", "#older"): date(2025, 11, 22),
        ("local", "demo", "#current"): NOV24,
    }

    # The feed ends on the 24th: on the 25th its newest day is still the 24th.
    report = await scheduler.tick(core, local_port(core), utc("2025-11-25T09:00"))
    assert (report.due, report.posted, report.notices) == (2, 1, 1)
    today = {d.channel_id: d for d in ledger(core) if d.day == date(2025, 11, 25)}
    assert (today["#older"].feed_day, len(today["#older"].paper_ids)) == (NOV24, 2)
    assert (today["#current"].feed_day, today["#current"].paper_ids) == (None, [])
    assert [m.body.get("text") for m in local_messages(core, "#current")] == [
        deliveries.EMPTY_DAY_TEXT
    ]
    assert len(local_messages(core, "#older")) == 2


def test_the_ticks_ledger_reads_search_an_index_rather_than_scan_the_history(
    sqlite_core: PaperBot,
) -> None:
    # SQLite without statistics (paperbot never runs ANALYZE) plans the same
    # for an empty ledger as for a year of one: the plan shows what a tick reads.
    core = sqlite_core
    statements: list[tuple[str, Sequence[object]]] = []

    def capture(conn: object, cursor: object, statement: str, parameters: Any, *_: object) -> None:
        statements.append((statement, parameters))

    sa.event.listen(core.db.engine, "before_cursor_execute", capture)
    try:
        deliveries.existing(core.db, [NOV24, NOV24 + timedelta(days=1)])
        deliveries.last_feed_days(core.db, NOV24)
        deliveries.stale(core.db, utc("2025-11-24T09:00"), ["local"])
    finally:
        sa.event.remove(core.db.engine, "before_cursor_execute", capture)
    reads = [(s, p) for s, p in statements if "FROM deliveries" in s]
    with core.db.engine.connect() as conn:
        plans = [
            [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", tuple(p))]
            for s, p in reads
        ]
    assert len(plans) == 3, reads
    # In-flight rows are found by status, through either index that starts with it.
    indexes = ("ix_deliveries_day (", "ix_deliveries_status_feed_day (", "ix_deliveries_status")
    for plan, index in zip(plans, indexes, strict=True):
        assert any(f"USING INDEX {index}" in step for step in plan), plan
        assert not any(step.startswith("SCAN") for step in plan), plan
