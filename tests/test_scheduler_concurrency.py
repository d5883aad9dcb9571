"""Several schedulers on one database: each channel posted once, each platform by a process that serves it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import database, deliveries, scheduler
from bot.domain import ChannelRef, Pick, UserRef
from bot.embedding import HashingEmbedder
from bot.local_platform import LocalPostingPort
from bot.models import Delivery, LocalMessage
from bot.paperbot import PaperBot
from bot.posting import message_key
from bot.scheduler import posting_lock_key
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.fakes.flaky_platform import FlakyPlatformPort, VirtualClock
from tests.helpers import PAPERBOT, eventually, subprocess_env

SUBSCRIPTIONS = 200
PICKS = 2


def end_session_holding(db: database.Database, key: int) -> None:
    """End the session that holds lock `key`, as the server does when its process dies.

    The timeout makes pg_terminate_backend wait until the backend is gone (it
    only signals otherwise); only this test's database is touched.
    """
    with db.engine.connect() as admin:
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l "
                "JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.objid = :key AND l.granted "
                "AND d.datname = current_database()"
            ),
            {"key": key},
        )


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


@pytest.fixture
def cores(postgres_url: str) -> Iterator[list[PaperBot]]:
    """Two processes' cores on one PostgreSQL database, the sample feed ingested."""
    database.upgrade(postgres_url)
    opened = [
        PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
        for _ in range(2)
    ]
    opened[0].ingest(SampleSource().fetch())
    yield opened
    for core in opened:
        core.close()


async def test_discord_and_slack_in_separate_processes_each_post_their_channels(
    cores: list[PaperBot],
) -> None:
    # Each process has the ports of its own adapters, and the local platform too.
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


def test_a_killed_leaders_lock_goes_with_its_connection(postgres_url: str) -> None:
    database.upgrade(postgres_url)
    first, second = database.Database(postgres_url), database.Database(postgres_url)
    leader, follower = scheduler.Leadership(first), scheduler.Leadership(second)
    try:
        assert leader.acquire()
        end_session_holding(second, scheduler.LEADER_LOCK_KEY)  # what a SIGKILL does
        assert follower.acquire() is True
        assert leader.acquire() is False  # it notices the lost connection, and does not lead
    finally:
        leader.release()
        follower.release()
        first.dispose()
        second.dispose()


# ---------------------------------------------------------------- a hung or stopped holder
async def test_a_holder_that_stops_pinging_loses_its_lock_to_a_standby(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = database.Database(postgres_url), database.Database(postgres_url)
    # One second, so that the test takes seconds; `paperbot run` has LOCK_TIMEOUT.
    leader = scheduler.Leadership(first, timeout=1.0)
    standby = scheduler.Leadership(second)
    try:
        assert leader.acquire()
        # No ping from here on: what a stopped process, or one whose event loop
        # hangs, sends. Its connection stays open all along.
        await eventually(standby.acquire, "the standby takes the lock", within=60)
        caplog.clear()  # only what the woken holder says
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            assert leader.ping() is False  # it wakes: the server has ended its session
            assert leader.acquire() is False  # and it does not lead
            assert leader.ping() is False
        assert [r.getMessage() for r in caplog.records] == [
            "this process is no longer the scheduler leader: it did not ping the database "
            "for 1 s (stopped, or its event loop blocked), and PostgreSQL ended the lock's "
            "session; another process may lead now",
            "another process is the scheduler leader; this one takes over when that lock is free",
        ]
        assert standby.ping() is True
    finally:
        leader.release()
        standby.release()
        first.dispose()
        second.dispose()


class SlowPort(FlakyPlatformPort):
    """A chat platform whose every message takes `latency` seconds, awaited as a real send is."""

    def __init__(self, latency: float) -> None:
        super().__init__("slow", VirtualClock(), rate_limited_share=0)
        self.latency = latency

    async def _send(self, channel: ChannelRef, key: str, text: str) -> str:
        await asyncio.sleep(self.latency)
        return await super()._send(channel, key, text)


async def test_a_long_healthy_tick_and_ingest_keep_their_locks(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Minutes of posting and of ingest in production; here several lock timeouts of each.
    Both await (the sends, the subprocess): the loop stays free, and the heartbeat pings."""
    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    core.ingest(SampleSource().fetch())
    core.settings.post_grace = timedelta(days=1)  # 00:00 UTC has passed: due now
    channels = [ChannelRef("slow", "w", f"#c{i}") for i in range(8)]
    for channel in channels:
        core.subscribe(channel, "00:00", "UTC", limit=PICKS)
    timeout = 2.0
    ingest = [sys.executable, "-c", f"import time; time.sleep({4 * timeout})"]
    # 8 channels x 2 picks x 1 s over 4 workers: 4 s of posting, twice the timeout.
    daily = scheduler.DailyScheduler(
        core, {"slow": SlowPort(latency=1.0)}, ingest_command=ingest, lock_timeout=timeout
    )
    locks = [daily.leadership, *daily.posting.values()]
    beat = asyncio.create_task(scheduler.heartbeat(locks))
    other = database.Database(postgres_url)
    standbys = [scheduler.Leadership(other), scheduler.Leadership.posting(other, "slow")]
    try:
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            report, _ = await asyncio.gather(daily.tick(), daily.ingest())
        assert (report.posted, report.handed_over) == (len(channels), 0)
        assert "no longer" not in caplog.text and "stopped the ingest" not in caplog.text
        assert [lock.ping() for lock in locks] == [True, True]
        assert [lock.acquire() for lock in standbys] == [False, False]
    finally:
        beat.cancel()
        await daily.stop()
        other.dispose()
        core.close()


class LosesItsLockOnTheFirstSend(FlakyPlatformPort):
    """As the first post goes out, the server ends the posting lock's session (the
    process was stopped past the lock's timeout), and the heartbeat learns it."""

    def __init__(self, lock: scheduler.Leadership, admin: database.Database) -> None:
        super().__init__("flaky", VirtualClock(), rate_limited_share=0)
        self.lock = lock
        self.admin = admin

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        if not self.messages:
            await asyncio.to_thread(end_session_holding, self.admin, posting_lock_key("flaky"))
            await asyncio.to_thread(self.lock.ping)
        return await super().send_picks(channel, picks, key, resume=resume)


async def test_a_tick_that_loses_its_lock_part_way_leaves_the_rest_to_the_new_holder(
    cores: list[PaperBot], caplog: pytest.LogCaptureFixture
) -> None:
    channels = [ChannelRef("flaky", "w", f"#c{i}") for i in range(5)]
    for channel in channels:
        cores[0].subscribe(channel, "06:00", "UTC", limit=PICKS)
    old, new = (scheduler.Leadership.posting(core.db, "flaky") for core in cores)
    port = LosesItsLockOnTheFirstSend(old, cores[1].db)
    now = datetime(2025, 11, 24, 12, tzinfo=UTC)
    try:
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            first = await scheduler.tick(
                cores[0], {"flaky": port}, now, leadership={"flaky": old}, concurrency={"flaky": 1}
            )
        # The post under way when the lock went is finished (it was claimed: the
        # ledger's), and nothing more is claimed.
        assert (first.posted, first.handed_over) == (1, len(channels) - 1)
        assert "tick: lost the posting lock part-way; 4 posts left" in caplog.text
        second = await scheduler.tick(
            cores[1], {"flaky": port}, now, leadership={"flaky": new}, concurrency={"flaky": 1}
        )
        assert second.posted == len(channels) - 1
        assert {c: len(m) for c, m in port.messages.items()} == dict.fromkeys(channels, PICKS)
    finally:
        old.release()
        new.release()


async def test_an_ingest_stops_when_its_process_loses_the_lead(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    pid_file = tmp_path / "pid"
    slow = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    daily = scheduler.DailyScheduler(
        core,
        {"local": LocalPostingPort(core.db)},
        ingest_command=[sys.executable, "-c", slow, str(pid_file)],
        lock_timeout=1.0,
    )
    beat = asyncio.create_task(scheduler.heartbeat([daily.leadership]))
    try:
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            running = asyncio.create_task(daily.ingest())
            started = lambda: pid_file.exists() and pid_file.read_text()  # noqa: E731
            pid = int(await eventually(started, "the ingest has started", within=60))
            # The server ends the leader's session: it was stopped past the timeout.
            end_session_holding(core.db, scheduler.LEADER_LOCK_KEY)
            await asyncio.wait_for(running, 60)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ended and reaped
        assert "this process is no longer the scheduler leader" in caplog.text
        assert f"stopped the ingest from hf (pid {pid}) before it finished" in caplog.text
        assert "housekeeping" not in caplog.text  # left to the new leader, with the retries
    finally:
        beat.cancel()
        await daily.stop()
        core.close()


@pytest.mark.slow
async def test_a_stopped_leader_process_is_replaced_and_stands_down_when_it_wakes(
    postgres_url: str, tmp_path: Path
) -> None:
    """SIGSTOP stands for a hung event loop, a frozen container, a paused VM, and (to
    the server, which hears nothing either way) a machine that vanished."""
    database.upgrade(postgres_url)
    log_file = tmp_path / "leader.log"
    db = database.Database(postgres_url)
    keys = [scheduler.LEADER_LOCK_KEY, posting_lock_key("local")]
    standbys = [scheduler.Leadership(db), scheduler.Leadership.posting(db, "local")]

    def held_elsewhere() -> bool:
        with db.read() as session:
            held = session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objid IN :keys "
                    "AND d.datname = current_database()"
                ).bindparams(sa.bindparam("keys", expanding=True)),
                {"keys": keys},
            )
        return held == len(keys)

    with log_file.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "tests.leader_process", postgres_url, "2"],
            env=subprocess_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )

    def lines() -> list[str]:
        return log_file.read_text().splitlines()

    try:
        # Its ingest done, it ticks: stopped anywhere from here on.
        leading = "leader_process INFO tick: leader=True"
        await eventually(lambda: leading in lines(), "the process leads", within=120)
        assert held_elsewhere()
        process.send_signal(signal.SIGSTOP)
        for lock in standbys:
            await eventually(lock.acquire, "the standby takes over", within=60)
        process.send_signal(signal.SIGCONT)

        def after_loss() -> list[str]:
            said = lines()
            lost = [i for i, line in enumerate(said) if "no longer posting to local" in line]
            return said[lost[0] + 1 :] if lost else []

        await eventually(
            lambda: sum("tick: leader=" in line for line in after_loss()) >= 3,
            "the woken process has ticked three times",
            within=60,
        )
        said = lines()
        assert process.returncode is None, said  # awake, serving, not leading
        for role in ("the scheduler leader", "posting to local"):
            assert sum(f"this process is no longer {role}: it did not ping" in s for s in said) == 1
            assert said.count(f"bot.scheduler INFO this process is {role}") == 1
        assert leading not in after_loss()
        assert [lock.ping() for lock in standbys] == [True, True]
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        await process.wait()
        for lock in standbys:
            lock.release()
        db.dispose()


class NoKeys:
    """A platform that keeps no idempotency key (Slack): a send without `resume` always
    posts; with it, the port first finds what was already posted under the key."""

    platform = "plain"

    def __init__(self) -> None:
        self.posted: list[str] = []  # the keys of every message, in order

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        keys = [message_key(key, i) for i in range(len(picks))]
        self.posted += [k for k in keys if not (resume and k in self.posted)]
        return keys

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        raise AssertionError("no notice in this test")


async def test_a_claimer_stopped_past_its_lease_does_not_post_again_what_its_successor_posted(
    core: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    """The old leader claimed a post and was stopped before sending it; the new leader
    resumed the row after its lease and posted it. Woken, the old one must not send."""
    core.ingest(SampleSource().fetch())
    channel = ChannelRef("plain", "w", "#c")
    core.subscribe(channel, "06:00", "UTC", limit=PICKS)
    picks = core.today(UserRef("plain", "w", "reader"))[:PICKS]
    port = NoKeys()
    claimed = datetime(2025, 11, 24, 12, tzinfo=UTC)
    (claim,) = deliveries.claim(core.db, [deliveries.Post(channel, claimed.date(), picks)], claimed)
    assert claim is not None
    woken = claimed + deliveries.LEASE + timedelta(minutes=2)
    resumed = await scheduler.reconcile(core, {"plain": port}, woken - timedelta(minutes=1))
    assert resumed.resumed == 1 and len(port.posted) == PICKS
    with caplog.at_level(logging.WARNING, logger="bot.deliveries"):
        (outcome,) = await deliveries.deliver(port, [(claim, picks)], db=core.db, now=woken)
    assert outcome.status is None  # not sent, not recorded: the row is its successor's
    assert len(port.posted) == PICKS
    assert f"not sending the post to {channel}: its lease ends at 12:10:00" in caplog.text
    with core.db.read() as session:
        assert session.scalars(sa.select(Delivery.status)).all() == ["confirmed"]
