"""Several schedulers on one database: each channel posted once, each platform by a process that serves it."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot import database, scheduler
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.local_platform import LocalPostingPort
from bot.models import Delivery, LocalMessage
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.fakes.flaky_platform import FlakyPlatformPort, VirtualClock
from tests.helpers import PAPERBOT, subprocess_env

SUBSCRIPTIONS = 200
PICKS = 2


@pytest.mark.slow
def test_two_tick_processes_started_together_post_each_channel_once(migrated_url: str) -> None:
    core = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=Settings())
    core.ingest(SampleSource().fetch())
    for i in range(SUBSCRIPTIONS):
        zone = ("UTC", "Europe/Berlin", "America/Sao_Paulo")[i % 3]
        core.subscribe(ChannelRef("local", f"w{i % 7}", f"#c{i}"), "09:00", zone, limit=PICKS)
    core.close()

    env = subprocess_env(PAPERBOT_DATABASE_URL=migrated_url, PAPERBOT_EMBEDDING_MODEL="hashing")
    command = [*PAPERBOT, "tick", "--now", "2025-11-24T13:00:00Z"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]

    db = database.Database(migrated_url)
    with db.read() as session:
        rows = session.scalars(sa.select(Delivery)).all()
        messages = session.scalars(sa.select(LocalMessage)).all()
    db.dispose()
    assert len(rows) == SUBSCRIPTIONS
    assert {r.status for r in rows} == {"confirmed"}
    assert len(messages) == SUBSCRIPTIONS * PICKS
    assert set(Counter(m.channel_id for m in messages).values()) == {PICKS}


def test_only_one_process_leads_on_postgresql(postgres_url: str) -> None:
    database.upgrade(postgres_url)
    first, second = database.Database(postgres_url), database.Database(postgres_url)
    leader, follower = scheduler.Leadership(first), scheduler.Leadership(second)
    try:
        assert leader.acquire() is True
        assert leader.acquire() is True  # holding it is idempotent
        assert follower.acquire() is False
        leader.release()
        assert follower.acquire() is True
        assert leader.acquire() is False
    finally:
        leader.release()
        follower.release()
        first.dispose()
        second.dispose()


def test_one_lock_asked_from_many_threads_at_once_is_held_once(postgres_url: str) -> None:
    """The scheduler's tick and the web first start share the process's posting lock, each
    asking from a worker thread: every caller holds it, on one connection, not one each."""
    database.upgrade(postgres_url)
    db = database.Database(postgres_url)
    lock = scheduler.Leadership.posting(db, "local")
    threads = 8
    start = threading.Barrier(threads)

    def ask() -> bool:
        start.wait()
        return lock.acquire()

    try:
        with ThreadPoolExecutor(threads) as pool:
            assert list(pool.map(lambda _: ask(), range(threads))) == [True] * threads
        with db.read() as session:
            # This test's database only: the server may be shared with other runs.
            holders = session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND d.datname = current_database()"
                )
            )
        assert holders == 1
    finally:
        lock.release()
        db.dispose()


async def test_a_tick_while_another_process_leads_does_nothing(postgres_url: str) -> None:
    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    other = database.Database(postgres_url)
    other_leader = scheduler.Leadership.posting(other, "local")
    try:
        core.ingest(SampleSource().fetch())
        core.subscribe(ChannelRef("local", "w", "#c"), "06:00", "UTC", limit=PICKS)
        assert other_leader.acquire()
        now = datetime(2025, 11, 24, 12, tzinfo=UTC)
        report = await scheduler.tick(core, {"local": LocalPostingPort(core.db)}, now)
        assert report.leader is False and report.posted == 0
        other_leader.release()
        report = await scheduler.tick(core, {"local": LocalPostingPort(core.db)}, now)
        assert report.leader is True and report.posted == 1
    finally:
        other_leader.release()
        other.dispose()
        core.close()


async def test_a_standby_scheduler_says_once_that_another_holds_the_lock(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    other = database.Database(postgres_url)
    other_leader = scheduler.Leadership.posting(other, "local")
    mine = {"local": scheduler.Leadership.posting(core.db, "local")}
    port = {"local": LocalPostingPort(core.db)}
    now = datetime(2025, 11, 24, 12, tzinfo=UTC)
    try:
        assert other_leader.acquire()
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            for _ in range(3):  # three minutes of a standby `paperbot run`
                assert (await scheduler.tick(core, port, now, leadership=mine)).leader is False
            other_leader.release()
            assert (await scheduler.tick(core, port, now, leadership=mine)).leader is True
        said = [r.getMessage() for r in caplog.records]
        assert [m for m in said if "another process" in m] == [
            "another process is posting to local; this one takes over when that lock is free"
        ]
        assert "this process is posting to local" in said
    finally:
        mine["local"].release()
        other_leader.release()
        other.dispose()
        core.close()


async def test_discord_and_slack_in_separate_processes_each_post_their_channels(
    postgres_url: str,
) -> None:
    # Each process has the ports of its own adapters, and the local platform too.
    database.upgrade(postgres_url)
    cores = [
        PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
        for _ in range(2)
    ]
    cores[0].ingest(SampleSource().fetch())
    channels = {name: ChannelRef(name, "w", "#c") for name in ("discord", "slack", "local")}
    for channel in channels.values():
        cores[0].subscribe(channel, "06:00", "UTC", limit=PICKS)
    clock = VirtualClock()
    ports = [
        {name: FlakyPlatformPort(name, clock, rate_limited_share=0) for name in (chat, "local")}
        for chat in ("discord", "slack")
    ]
    # Long-lived, as `paperbot run` holds them; the first process ticks first.
    locks = [
        {name: scheduler.Leadership.posting(core.db, name) for name in port}
        for core, port in zip(cores, ports, strict=True)
    ]
    now = datetime(2025, 11, 24, 12, tzinfo=UTC)
    try:
        first = await scheduler.tick(cores[0], ports[0], now, leadership=locks[0])
        second = await scheduler.tick(cores[1], ports[1], now, leadership=locks[1])
        assert (first.posted, second.posted) == (2, 1)  # discord and local; slack
        assert {c.platform for c in first.channels} == {"discord", "local"}
        assert [c.platform for c in second.channels] == ["slack"]
        for name, port in (("discord", ports[0]), ("slack", ports[1]), ("local", ports[0])):
            assert len(port[name].messages[channels[name]]) == PICKS
        assert not ports[1]["local"].messages  # posted once, by the first
    finally:
        for held in locks:
            for lock in held.values():
                lock.release()
        for core in cores:
            core.close()


def test_a_killed_leaders_lock_goes_with_its_connection(postgres_url: str) -> None:
    database.upgrade(postgres_url)
    first, second = database.Database(postgres_url), database.Database(postgres_url)
    leader, follower = scheduler.Leadership(first), scheduler.Leadership(second)
    try:
        assert leader.acquire()
        # What a SIGKILL does to the leader: the server ends its session. The
        # timeout makes pg_terminate_backend wait until the backend is gone (it
        # only signals otherwise); only this test's database is touched.
        with second.engine.connect() as admin:
            admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l "
                    "JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND l.objid = :key "
                    "AND d.datname = current_database()"
                ),
                {"key": scheduler.LEADER_LOCK_KEY},
            )
        assert follower.acquire() is True
        assert leader.acquire() is False  # it notices the lost connection, and does not lead
    finally:
        leader.release()
        follower.release()
        first.dispose()
        second.dispose()
