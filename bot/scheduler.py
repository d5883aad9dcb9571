"""When to post: due subscriptions, fan-out to the posting ports, and the jobs of `paperbot run`.

Subscriptions in the database are the schedule. Every minute `tick` asks, for
each active subscription: has its local post time passed today, and does the
ledger (`bot.deliveries`) have no row for this local day? If so it is due and
gets posted once, through its platform's `PostingPort`. A day missed past the
grace, or since the last tick that finished (a week back after a start), gets a
`skipped` row instead, so downtime never loses a day without a word.

`DailyScheduler` runs three APScheduler jobs on the adapters' event loop: the
daily ingest (a subprocess, so only that process loads the embedding model),
the due-post tick, and reconciliation of deliveries left in flight. On
PostgreSQL, where one process leads each job (`Leadership`), it also runs the
heartbeat that keeps its locks: a leader that stops pinging loses them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
import time as monotonic_time
import zlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import col

from bot import deliveries
from bot.database import Database, is_transient
from bot.deliveries import Claim, Post, Sleep, Status
from bot.domain import ChannelRef, Pick
from bot.models import Delivery, Subscription, utcnow
from bot.paperbot import PaperBot
from bot.posting import PostingPort

log = logging.getLogger(__name__)

ACTIVE = ("active", "failing")
# Concurrent sends per platform; each platform's port also enforces its own limits.
# The local platform's "send" is a database write, and writers queue on SQLite's
# lock (sleeping in its busy handler), so more than one worker only slows it down.
DEFAULT_CONCURRENCY = 4
PLATFORM_CONCURRENCY = {"local": 1}
# At most this many posts share one claim, record and confirm transaction. A
# worker takes what is queued when it is free, so batches grow only while the
# ledger is the bottleneck. Only where a send is itself a quick database write
# (`local`): a chat platform's sends take seconds each, the ledger is nothing
# beside them, and the last post of a long batch could outwait its lease.
LEDGER_BATCH = {"local": 64}
# Channels ranked together in one `channel_picks_many` call (and one thread hop).
RANK_CHUNK = 32
# Session-level advisory lock keys on PostgreSQL: the scheduler leader runs the
# database-wide jobs (the daily ingest); each platform's posts are made by one
# process that has its port. Discord and Slack may run in separate processes,
# and each must post its own channels.
LEADER_LOCK_KEY = zlib.crc32(b"paperbot-scheduler-leader")
# How far back a tick looks for daily posts lost to downtime when it does not
# know when the last tick ran (a process's first tick, every `paperbot tick`).
# Each such day is recorded as skipped, so the operator learns it was lost;
# days before this are left unrecorded rather than read from a growing ledger.
MISSED_LOOKBACK = timedelta(days=7)


def posting_lock_key(platform: str) -> int:
    return zlib.crc32(f"paperbot-posting-{platform}".encode())


@dataclass
class TickReport:
    """What one tick did. Counts are deliveries (one per channel and local day)."""

    now: datetime  # when the tick began: what is due is decided at this instant
    leader: bool = True  # False: other schedulers post to every platform here; nothing done
    due: int = 0
    posted: int = 0  # picks posted and confirmed
    notices: int = 0  # "no new papers today" posted and confirmed
    resumed: int = 0  # in-flight rows of a crashed or interrupted claimer, finished now
    skipped: int = 0  # missed beyond PAPERBOT_POST_GRACE, or an empty day with notices off
    failed: int = 0
    retry_later: int = 0
    taken: int = 0  # claimed by another process in the meantime
    handed_over: int = 0  # left alone once this process lost its lock mid-tick: the new holder's
    channels: list[ChannelRef] = field(default_factory=list)  # channels posted to
    platforms: list[str] = field(default_factory=list)  # whose due days this tick decided
    _began: float = field(default_factory=monotonic_time.monotonic, init=False, repr=False)

    def clock(self) -> datetime:
        """`now` plus the time the tick has run. A lease is counted from this: a post
        claimed late in a long tick owns its row for a whole lease, not a lease that
        ran out while earlier channels were sent."""
        return self.now + timedelta(seconds=monotonic_time.monotonic() - self._began)

    def count(self, outcome: deliveries.Outcome, claim: Claim, resumed: bool) -> None:
        if outcome.status is Status.CONFIRMED:
            self.channels.append(claim.channel)
            if resumed:
                self.resumed += 1
            elif claim.is_notice:
                self.notices += 1
            else:
                self.posted += 1
        elif outcome.status is Status.FAILED:
            self.failed += 1
        else:
            self.retry_later += 1


@dataclass(frozen=True)
class Due:
    channel: ChannelRef
    day: date  # the channel's local day
    picks: int


# ---------------------------------------------------------------- local time
def post_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local post time on a local day, deliberately defined across DST.

    - Fall-back (an ambiguous time such as 02:30 on the last Sunday of October
      in Berlin happens twice): the FIRST occurrence (fold=0). The ledger keeps
      the second from posting again.
    - Spring-forward (a time such as 02:30 that does not exist that day): the
      first real instant after the gap, 03:00 local, which is when clocks jump.
    """
    wall = datetime.combine(day, at)
    local = wall.replace(tzinfo=zone, fold=0)
    if _exists(local):
        return local.astimezone(UTC)
    # Walk to the end of the gap minute by minute; gaps are at most a few hours.
    probe = wall
    while not _exists(probe.replace(tzinfo=zone)):
        probe += timedelta(minutes=1)
    return probe.replace(tzinfo=zone).astimezone(UTC)


@functools.cache
def _zone(name: str) -> ZoneInfo | None:
    """A subscription's zone; None, said once per process, when this host does not know it.

    Subscribing checks the name, but a row can outlive the zone data it was
    checked against (a rollback to an older tzdata, a restored database): one
    such row must not stop every channel's post with an error each minute.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning(
            "the time zone %r of a subscription is not known here (tzdata): its channels "
            "are not posted until they subscribe with a known zone",
            name[:64],
        )
        return None


def _exists(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(
        tzinfo=None
    )


# ---------------------------------------------------------------- leadership
# How long PostgreSQL keeps a lock's session that has stopped proving it is alive
# (`idle_session_timeout` on the lock's connection), in seconds. A holder whose
# event loop hangs, or that is stopped (SIGSTOP, a frozen container, a paused VM),
# keeps its connection open; one whose machine or network vanished leaves a
# backend that the server's TCP keepalive ends only after about two hours. Either
# way the lock, and with it every daily post and the ingest, stayed with it while a
# standby sat idle. The server now ends such a session after this long, the lock
# goes with it, and a standby takes over at its next tick (each minute): about
# three minutes of no posting, well inside PAPERBOT_POST_GRACE, so the day's posts
# still go out. A healthy leader never comes near it: the worst event-loop stall
# bench/load.py ever measured was 0.23 s (docs/reliability.md), and every job's long
# wait (a send, the ingest subprocess, a database call in a worker thread) awaits,
# leaving the loop free. Needs PostgreSQL 14 or later (idle_session_timeout).
LOCK_TIMEOUT = 120.0
# Pings per LOCK_TIMEOUT (every 20 s by default): five may be late or lost, to a
# slow database or a busy process, before the server gives up on the session.
PINGS_PER_TIMEOUT = 6
# SQLSTATE of "terminating connection due to idle-session timeout".
IDLE_SESSION_TIMEOUT = "57P05"


class Leadership:
    """One holder per PostgreSQL database of a job: a session advisory lock.

    `key` is `LEADER_LOCK_KEY` (the scheduler leader, which ingests) or a
    platform's `posting_lock_key`, and `role` says it in the logs. The lock lives
    on a dedicated connection kept out of the pool, so it is held exactly as
    long as that connection lives: a killed holder's lock vanishes with it, and
    the server ends the session of a holder that has not pinged (`ping`, from the
    event loop: `heartbeat`) for `timeout` seconds. A holder that wakes after that
    learns on its next ping or `acquire` that it lost the lock, says so once, and
    leads again only if it can take the lock anew. On SQLite there is no lock to
    take: the ledger's unique claim alone keeps two processes from posting the same day.
    """

    def __init__(
        self,
        db: Database,
        key: int = LEADER_LOCK_KEY,
        role: str = "the scheduler leader",
        *,
        timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self._db = db
        self._key = key
        self._role = role
        self.timeout = timeout
        self._conn: sa.Connection | None = None
        self._waiting = False  # said that another holder has it, until this process gets it
        # The scheduler's tick, the heartbeat and the web adapter's first start may ask
        # at once, each from a worker thread, and a connection must not be used by two.
        self._mutex = threading.Lock()

    @classmethod
    def posting(cls, db: Database, platform: str, *, timeout: float = LOCK_TIMEOUT) -> Leadership:
        return cls(db, posting_lock_key(platform), f"posting to {platform}", timeout=timeout)

    @property
    def held(self) -> bool:
        """Whether this process holds the lock, as far as it has learnt: no round trip.
        Work that only the holder may do checks it before each step (a claim, an ingest)."""
        return self._db.is_sqlite or self._conn is not None

    def acquire(self) -> bool:
        if self._db.is_sqlite:
            return True
        with self._mutex:
            return self._alive() or self._acquire()

    def ping(self) -> bool:
        """Prove to the server that the holder lives, so it keeps the lock's session.
        False if this process does not hold the lock (any more)."""
        if self._db.is_sqlite:
            return True
        with self._mutex:
            return self._alive()

    def _alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == IDLE_SESSION_TIMEOUT:
                log.warning(
                    "this process is no longer %s: it did not ping the database for %.0f s "
                    "(stopped, or its event loop blocked), and PostgreSQL ended the lock's "
                    "session; another process may lead now",
                    self._role,
                    self.timeout,
                )
            else:
                log.warning(
                    "this process is no longer %s: the lock's connection was lost (%s)",
                    self._role,
                    str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__,
                )
            self._drop()
            return False

    def _acquire(self) -> bool:
        conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
        ).scalar()
        if got:
            # Only on the holder's connection (never one going back to the pool): the
            # server ends this session, and the lock with it, once no ping came for
            # `timeout` seconds. It counts only while the session waits for a query
            # outside a transaction, which the lock's autocommit connection always is.
            conn.execute(
                sa.text("SELECT set_config('idle_session_timeout', :ms, false)"),
                {"ms": f"{round(self.timeout * 1000)}ms"},
            )
            self._conn = conn
            self._waiting = False
            log.info("this process is %s", self._role)
            return True
        conn.close()
        if not self._waiting:
            # Once, not every minute: a standby process asks each tick for as
            # long as the holder lives, which may be months.
            self._waiting = True
            log.info(
                "another process is %s; this one takes over when that lock is free",
                self._role,
            )
        return False

    def release(self) -> None:
        with self._mutex:
            if self._conn is None:
                return
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            except sa.exc.DBAPIError:
                pass  # the connection is gone, and the lock with it
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()  # never return a lock-holding connection to the pool
            self._conn.close()
            self._conn = None


async def heartbeat(locks: Collection[Leadership]) -> None:
    """Ping the held locks, `PINGS_PER_TIMEOUT` times per timeout, until cancelled.

    A task on the event loop, deliberately: a loop that hangs stops pinging, and
    the server then frees its locks for a standby. (A ping from a thread of its
    own would keep a hung loop's locks forever.) The round trip itself runs on a
    thread kept for it, so it never queues behind the jobs' database work in the
    default executor.
    """
    every = min(lock.timeout for lock in locks) / PINGS_PER_TIMEOUT
    loop = asyncio.get_running_loop()
    pinger = ThreadPoolExecutor(1, thread_name_prefix="paperbot-heartbeat")
    try:
        while True:
            await asyncio.sleep(every)
            for lock in locks:
                if lock.held:
                    await loop.run_in_executor(pinger, lock.ping)
    finally:
        # Not waiting: a ping stuck on a dead network must not hold up a stop.
        pinger.shutdown(wait=False)


# ---------------------------------------------------------------- the tick
async def tick(
    core: PaperBot,
    ports: Mapping[str, PostingPort],
    now: datetime | None = None,
    *,
    leadership: Mapping[str, Leadership] | None = None,
    decided: Mapping[str, datetime] | None = None,
    sleep: Sleep = asyncio.sleep,
    concurrency: Mapping[str, int] | None = None,
) -> TickReport:
    """Post every due subscription once, and finish deliveries left in flight.

    `ports` maps a platform name to its posting port; subscriptions on other
    platforms are left alone (another process may serve them). Of these, the
    tick posts the platforms whose posting lock it holds (`Leadership.posting`):
    `leadership` is the caller's long-lived locks (`paperbot run`); without it
    the tick takes them just for itself (`paperbot tick`).

    `decided` maps a platform to the instant of the last tick that finished for
    it in this process (`report.platforms`); the days since then less the
    grace are looked at. A platform left out is looked at `MISSED_LOOKBACK`
    back: any day lost to downtime is recorded as skipped.
    """
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("tick needs an aware datetime")
    report = TickReport(now=now)
    own_locks = leadership is None
    locks = leadership or {platform: Leadership.posting(core.db, platform) for platform in ports}
    ports = await _led(ports, locks)
    if not ports:
        # Held by another process (`Leadership.acquire` said so). In `paperbot run`
        # every tick of this process, the web first start's too, uses its scheduler's
        # locks (`DailyScheduler.tick`).
        report.leader = False
        return report
    # Locks taken for this tick alone are kept alive for as long as it runs; `paperbot
    # run`'s scheduler pings its own long-lived ones.
    beat = (
        asyncio.create_task(heartbeat([locks[p] for p in ports]))
        if own_locks and not core.db.is_sqlite
        else None
    )
    try:
        await reconcile(core, ports, now, report=report, sleep=sleep, locks=locks)
        due = await asyncio.to_thread(_find_due, core, ports, now, report, decided or {})
        report.due = len(due)
        await _fan_out(core, ports, locks, due, now, report, sleep, concurrency or {})
        report.platforms = sorted(ports)
    finally:
        if beat is not None:
            beat.cancel()
        if own_locks:
            for platform in ports:
                await asyncio.to_thread(locks[platform].release)
    if report.handed_over:
        log.warning(
            "tick: lost the posting lock part-way; %d posts left to the process that holds it now",
            report.handed_over,
        )
    if report.due or report.resumed or report.failed:
        log.info(
            "tick: %d due, %d posted, %d notices, %d resumed, %d failed, %d skipped, %d to retry",
            report.due,
            report.posted,
            report.notices,
            report.resumed,
            report.failed,
            report.skipped,
            report.retry_later,
        )
    return report


async def _led(
    ports: Mapping[str, PostingPort], locks: Mapping[str, Leadership]
) -> dict[str, PostingPort]:
    """The ports of the platforms whose posting lock this process holds (or now takes)."""
    return {p: port for p, port in ports.items() if await asyncio.to_thread(locks[p].acquire)}


async def reconcile(
    core: PaperBot,
    ports: Mapping[str, PostingPort],
    now: datetime | None = None,
    *,
    report: TickReport | None = None,
    sleep: Sleep = asyncio.sleep,
    locks: Mapping[str, Leadership] | None = None,
) -> TickReport:
    """Finish deliveries whose claimer died or gave up: same picks, same key, no second post.

    With `locks` (the posting locks the caller took), a platform whose lock this
    process lost meanwhile is left to the process that holds it now.
    """
    now = now or utcnow()
    report = report or TickReport(now=now)
    rows = await asyncio.to_thread(deliveries.stale, core.db, report.clock(), list(ports))
    resumed: dict[str, list[tuple[Claim, list[Pick]]]] = {}
    for row in rows:
        if locks is not None and not locks[row.platform].held:
            report.handed_over += 1
            continue
        unsent = row.status == Status.CLAIMED
        if unsent and (reason := await asyncio.to_thread(_abandon_reason, core, row, now)):
            # Nothing is known to be out: rather no post than a stale one. (A
            # sent row is always finished: its messages are out, record them.)
            if await asyncio.to_thread(deliveries.abandon, core.db, row, report.clock(), reason):
                report.skipped += 1
                log.warning(
                    "not resuming the delivery of %s on %s: %s", row.channel_id, row.day, reason
                )
            continue
        claim = await asyncio.to_thread(deliveries.take_over, core.db, row, report.clock())
        if claim is None:
            report.taken += 1
            continue
        log.info("resuming the %s delivery of %s on %s", claim.status, claim.channel, claim.day)
        picks = await asyncio.to_thread(core.stored_picks, claim.paper_ids, claim.notes)
        platform = claim.channel.platform
        owned = resumed.setdefault(platform, [])
        owned.append((claim, picks))
        if len(owned) >= LEDGER_BATCH.get(platform, 1):
            await _deliver(
                core, ports[platform], resumed.pop(platform), report, sleep, resumed=True
            )
    for platform, owned in resumed.items():
        await _deliver(core, ports[platform], owned, report, sleep, resumed=True)
    return report


async def _deliver(
    core: PaperBot,
    port: PostingPort,
    owned: Sequence[tuple[Claim, Sequence[Pick]]],
    report: TickReport,
    sleep: Sleep,
    *,
    resumed: bool,
) -> None:
    """Walk owned claims to the end of the ledger protocol and count how each ended."""
    outcomes = await deliveries.deliver(port, owned, db=core.db, now=report.clock(), sleep=sleep)
    for (claim, _), outcome in zip(owned, outcomes, strict=True):
        report.count(outcome, claim, resumed=resumed)


def _abandon_reason(core: PaperBot, row: Delivery, now: datetime) -> str | None:
    info = core.subscription(deliveries.channel_of(row))
    if info is None or info.status not in ACTIVE:
        return f"the subscription is {info.status if info else 'gone'}"
    if now - row.created_at > core.settings.post_grace:
        return f"claimed {_hours(now - row.created_at)} ago, past PAPERBOT_POST_GRACE"
    return None


def _find_due(
    core: PaperBot,
    ports: Mapping[str, PostingPort],
    now: datetime,
    report: TickReport,
    decided: Mapping[str, datetime],
) -> list[Due]:
    """The posts due now; days missed past the grace or their local day are recorded as skipped.

    A subscription's local days are looked at from its platform's floor: the
    last finished tick less the grace (so a post that tick left for a retry is
    still decided), or `MISSED_LOOKBACK` ago when unknown. Every minute that is
    a day or two per subscription; after downtime, every day since.
    """
    with core.db.read() as session:
        subs = session.scalars(
            sa.select(Subscription).where(
                col(Subscription.status).in_(ACTIVE), col(Subscription.platform).in_(list(ports))
            )
        ).all()
    grace = core.settings.post_grace
    oldest = now - MISSED_LOOKBACK
    floors = {p: max(oldest, decided[p] - grace) if p in decided else oldest for p in ports}
    # (subscription, its channel, local day, post instant, whether that day is over)
    candidates: list[tuple[Subscription, ChannelRef, date, datetime, bool]] = []
    # After downtime every subscription walks a week of days; most share a zone
    # and a post time, so each instant is computed once.
    instants: dict[tuple[str, time, date], datetime] = {}
    for sub in subs:
        timezone, post_at = sub.timezone, sub.post_at
        if (zone := _zone(timezone)) is None:
            continue
        channel = deliveries.channel_of(sub)
        floor = floors[sub.platform]
        today = now.astimezone(zone).date()
        day = floor.astimezone(zone).date()
        while day <= today:
            if (at := instants.get((timezone, post_at, day))) is None:
                at = instants[timezone, post_at, day] = post_instant(day, post_at, zone)
            if floor <= at <= now:
                candidates.append((sub, channel, day, at, day < today))
            day += timedelta(days=1)
    done = deliveries.existing(core.db, {day for _, _, day, _, _ in candidates})
    due = []
    missed: dict[ChannelRef, list[tuple[date, str]]] = {}
    for sub, channel, day, at, over in candidates:
        if deliveries.delivery_key(channel, day) in done:
            continue
        late = now - at
        if not over and late <= grace:
            # Also for a subscription made after today's post time: its first post.
            due.append(Due(channel, day, sub.picks))
        elif sub.updated_at <= at:
            # Only a day the subscription stood as it is now was missed: before a
            # subscribe, or a new post time, there was nothing to post.
            reason = (
                f"missed: {_hours(late)} late, and its local day is over"
                if over
                else f"missed: {_hours(late)} late, past PAPERBOT_POST_GRACE ({_hours(grace)})"
            )
            missed.setdefault(channel, []).append((day, reason))
    _record_missed(core, missed, now, report)
    return due


def _record_missed(
    core: PaperBot,
    missed: Mapping[ChannelRef, list[tuple[date, str]]],
    now: datetime,
    report: TickReport,
) -> None:
    """Skip the missed days in one transaction; one warning per channel, naming its days."""
    skips = [(channel, day, reason) for channel, days in missed.items() for day, reason in days]
    recorded = deliveries.skip_many(core.db, skips, now)
    report.skipped += len(recorded)
    for channel, days in missed.items():
        mine = [
            (day, reason)
            for day, reason in days
            if deliveries.delivery_key(channel, day) in recorded
        ]
        if len(mine) == 1:
            log.warning("not posting %s for %s: %s", channel, *mine[0])
        elif mine:
            log.warning(
                "not posting %s for %d days: %s",
                channel,
                len(mine),
                "; ".join(f"{day} ({reason})" for day, reason in mine),
            )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


async def _fan_out(
    core: PaperBot,
    ports: Mapping[str, PostingPort],
    locks: Mapping[str, Leadership],
    due: list[Due],
    now: datetime,
    report: TickReport,
    sleep: Sleep,
    concurrency: Mapping[str, int],
) -> None:
    """Per platform: one producer ranks picks into a bounded queue, workers post from it.

    Ranking (reads and CPU) for the next channels overlaps with posting (the
    platform, and ledger writes) for the previous ones; the bound keeps picks
    from piling up in memory when a platform is slow or rate-limited. Each
    worker takes what is waiting, up to `LEDGER_BATCH`, and claims, records and
    confirms it in one transaction per step. Once this process has lost a
    platform's posting lock (it was stopped or stalled past the lock's timeout,
    and another process leads now), nothing more is ranked or claimed for it.
    """
    if not due:
        return
    feed_days: dict[date, date | None] = {}
    for day in {d.day for d in due}:
        feed_days[day] = await asyncio.to_thread(core.feed_day, day)
    # A channel last posted from a feed day older than all of these gets new papers
    # whatever that day was: only the rows from the oldest of them on need reading.
    shown = [day for day in feed_days.values() if day is not None]
    last_fed = (
        await asyncio.to_thread(deliveries.last_feed_days, core.db, min(shown)) if shown else {}
    )
    by_platform: dict[str, list[Due]] = {}
    for item in due:
        by_platform.setdefault(item.channel.platform, []).append(item)

    async def rank(items: list[Due]) -> dict[Due, Post]:
        """Posts for consecutive due channels: one `channel_picks_many` per (feed day, size)."""
        posts: dict[Due, Post] = {}
        wanted: dict[tuple[date, int], list[Due]] = {}
        for item in items:
            feed_day = feed_days[item.day]
            key = (item.channel.platform, item.channel.workspace, item.channel.channel)
            # New papers are a feed day after the one this channel was last posted from.
            if feed_day is not None and (key not in last_fed or last_fed[key] < feed_day):
                wanted.setdefault((feed_day, item.picks), []).append(item)
            else:
                posts[item] = Post(item.channel, item.day)  # nothing new: an empty day
        for (feed_day, limit), group in wanted.items():
            channels = [item.channel for item in group]
            try:
                ranked = await asyncio.to_thread(core.channel_picks_many, channels, limit, feed_day)
            except Exception as exc:
                _log_failure(exc, "could not rank picks for", channels)
                report.retry_later += len(group)
                continue
            for item, picks in zip(group, ranked, strict=True):
                posts[item] = Post(item.channel, item.day, picks, feed_day if picks else None)
        return posts

    async def produce(
        items: list[Due], queue: asyncio.Queue[Post | None], n: int, lock: Leadership
    ) -> None:
        for start in range(0, len(items), RANK_CHUNK):
            chunk = items[start : start + RANK_CHUNK]
            if not lock.held:
                report.handed_over += len(items) - start
                break
            posts = await rank(chunk)
            for item in chunk:
                if item in posts:
                    await queue.put(posts[item])
        for _ in range(n):
            await queue.put(None)

    async def work(
        queue: asyncio.Queue[Post | None], port: PostingPort, size: int, lock: Leadership
    ) -> None:
        # Each worker gets one None, after the last post: finish its batch, then stop.
        while (first := await queue.get()) is not None:
            batch = [first]
            last = False
            while len(batch) < size and not queue.empty():
                if (item := queue.get_nowait()) is None:
                    last = True
                    break
                batch.append(item)
            if lock.held:
                await _post(core, port, batch, now, report, sleep)
            else:
                report.handed_over += len(batch)
            if last:
                return

    async with asyncio.TaskGroup() as group:
        for platform, items in by_platform.items():
            limit = concurrency.get(platform) or PLATFORM_CONCURRENCY.get(
                platform, DEFAULT_CONCURRENCY
            )
            n = min(len(items), limit)
            size = LEDGER_BATCH.get(platform, 1)
            queue: asyncio.Queue[Post | None] = asyncio.Queue(maxsize=max(2, size) * n)
            group.create_task(produce(items, queue, n, locks[platform]))
            for _ in range(n):
                group.create_task(work(queue, ports[platform], size, locks[platform]))


async def _post(
    core: PaperBot,
    port: PostingPort,
    batch: list[Post],
    now: datetime,
    report: TickReport,
    sleep: Sleep,
) -> None:
    try:
        wanted = []
        for post in batch:
            if post.picks or core.settings.empty_day_message:
                wanted.append(post)
            elif await asyncio.to_thread(
                deliveries.skip, core.db, post.channel, post.day, now, "no new papers"
            ):
                report.skipped += 1
        claims = await asyncio.to_thread(deliveries.claim, core.db, wanted, report.clock())
        owned = [(c, post.picks) for c, post in zip(claims, wanted, strict=True) if c is not None]
        report.taken += len(wanted) - len(owned)
        await _deliver(core, port, owned, report, sleep, resumed=False)
    except Exception as exc:
        # One batch's error must not stop the others; its rows (if claimed) are
        # resumed by reconciliation after the lease, the others by a later tick.
        _log_failure(exc, "daily posts crashed for", [p.channel for p in batch])
        report.retry_later += len(batch)


def _log_failure(exc: Exception, what: str, channels: Sequence[ChannelRef]) -> None:
    """A database away (a PostgreSQL restart past the retries) is one line; a bug, its traceback."""
    names = ", ".join(map(str, channels))
    if is_transient(exc):
        log.warning(
            "%s %s: the database is unavailable (%s); a later tick retries",
            what,
            names,
            str(exc).splitlines()[0],
        )
    else:
        log.exception("%s %s", what, names)


# ---------------------------------------------------------------- the jobs of `paperbot run`
INGEST_RETRY_DELAY = timedelta(hours=2)
END_GRACE = 5.0  # seconds a stopped ingest gets to exit on SIGTERM before SIGKILL
INGEST_RETRIES = 3


class DailyScheduler:
    """APScheduler on the adapters' event loop: ingest, tick, reconcile; and on PostgreSQL
    the heartbeat of its locks. Start it once (from the loop)."""

    def __init__(
        self,
        core: PaperBot,
        ports: Mapping[str, PostingPort],
        *,
        ingest_command: list[str] | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.core = core
        self.ports = dict(ports)
        # The daily ingest: one process per database.
        self.leadership = Leadership(core.db, timeout=lock_timeout)
        self.posting = {
            platform: Leadership.posting(core.db, platform, timeout=lock_timeout)
            for platform in ports
        }
        self._heartbeat: asyncio.Task[None] | None = None
        self._ingest_command = ingest_command or [sys.executable, "-m", "bot", "ingest"]
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._ingest_retries = 0
        self._busy: set[asyncio.Task[object]] = set()
        # Per platform, when this process's last finished tick for it began.
        self._decided: dict[str, datetime] = {}
        self._unavailable_since: datetime | None = None  # since a job found no database

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def jobs(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def next_run(self, job_id: str) -> datetime | None:
        job = self._scheduler.get_job(job_id)
        return job.next_run_time if job else None

    def start(self) -> bool:
        """Add the jobs and start. Calling it again (a gateway reconnect) changes nothing."""
        if self._scheduler.running:
            return False
        from apscheduler.triggers.interval import IntervalTrigger

        from bot.cron import cron_trigger

        settings = self.core.settings
        # coalesce + max_instances=1: after a stall, run a job once, never in parallel with itself.
        common = {"coalesce": True, "max_instances": 1, "replace_existing": True}
        self._scheduler.add_job(
            self._tracked,
            args=[self.ingest],
            trigger=cron_trigger(settings.ingest_cron),
            id="ingest",
            name="ingest",  # logs name the job, not the wrapper that runs it
            misfire_grace_time=int(timedelta(hours=6).total_seconds()),
            **common,
        )
        self._scheduler.add_job(
            self._tracked,
            args=[self.tick],
            trigger=IntervalTrigger(minutes=1, timezone=UTC),
            id="tick",
            name="tick",
            next_run_time=datetime.now(UTC),  # catch up at start-up, within the grace window
            misfire_grace_time=50,
            **common,
        )
        self._scheduler.add_job(
            self._tracked,
            args=[self.reconcile],
            trigger=IntervalTrigger(minutes=5, timezone=UTC),
            id="reconcile",
            name="reconcile",
            misfire_grace_time=240,
            **common,
        )
        self._scheduler.start()
        if not self.core.db.is_sqlite:
            self._heartbeat = asyncio.get_running_loop().create_task(
                heartbeat([self.leadership, *self.posting.values()]), name="heartbeat"
            )
        log.info(
            "scheduler started for %s; next ingest at %s",
            ", ".join(sorted(self.ports)),
            self.next_run("ingest"),
        )
        return True

    async def stop(self, patience: float = 30.0) -> None:
        """Stop scheduling; let a job in progress finish (cancel it after `patience` seconds)."""
        if self._scheduler.running:
            self._scheduler.pause()  # no new runs while the current ones finish
            busy = [task for task in self._busy if not task.done()]
            if busy:
                # A cancelled post is safe (its lease lapses and the next start
                # resumes it), but finishing it is kinder to the channel.
                await asyncio.wait(busy, timeout=patience)
            # AsyncIOExecutor cancels whatever still runs; the scheduler itself
            # stops on its loop's next turn.
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        for lock in (self.leadership, *self.posting.values()):
            await asyncio.to_thread(lock.release)

    async def _tracked(self, job: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101  (APScheduler runs coroutine jobs as tasks)
        self._busy.add(task)
        try:
            await job()
        except Exception as exc:
            if not is_transient(exc):
                raise  # unexpected: APScheduler logs it with its traceback
            # A database restarting or out of reach: expected in production, and
            # every job fails alike until it is back. One line when it starts,
            # not a traceback a minute; the jobs simply run again on schedule.
            if self._unavailable_since is None:
                self._unavailable_since = utcnow()
                log.warning(
                    "the database is unavailable (%s); the jobs run again on schedule",
                    str(exc).splitlines()[0],
                )
        else:
            if self._unavailable_since is not None:
                log.info(
                    "the database is back after %s", _minutes(utcnow() - self._unavailable_since)
                )
                self._unavailable_since = None
        finally:
            self._busy.discard(task)

    async def tick(self, platforms: Collection[str] | None = None) -> TickReport:
        """One tick now, on this process's posting locks: of `platforms`, or of all."""
        ports = self.ports if platforms is None else {p: self.ports[p] for p in platforms}
        report = await tick(self.core, ports, leadership=self.posting, decided=self._decided)
        # Only a tick that finished: one that raised (the database away) decided
        # nothing, and the next looks back from the last that did.
        self._decided.update(dict.fromkeys(report.platforms, report.now))
        return report

    async def reconcile(self) -> TickReport | None:
        ports = await _led(self.ports, self.posting)
        return await reconcile(self.core, ports, locks=self.posting) if ports else None

    async def ingest(self) -> None:
        """Run `paperbot ingest` as a subprocess: the model loads there, never in this process.

        Only while this process is the scheduler leader: one that loses the lock
        (stopped or stalled past its timeout) stops its ingest and leaves the rest,
        retries and housekeeping included, to the new leader.
        """
        if not await asyncio.to_thread(self.leadership.acquire):
            return
        sources = ["hf"] + (["arxiv"] if self.core.settings.arxiv_categories else [])
        for source in sources:
            if not await self._ingest_from(source):
                return
        self._retry_ingest_if_empty()
        try:
            removed = await asyncio.to_thread(self.core.housekeeping)
        except Exception:
            log.exception("housekeeping failed; the next daily run tries again")
        else:
            log.info("housekeeping: deleted %d expired rows", removed)

    async def _ingest_from(self, source: str) -> bool:
        """One source's ingest subprocess, to its end. False if this process lost the
        scheduler leader's lock meanwhile: the subprocess is then stopped. (Two ingests
        at once would do no harm, each paper is upserted and embedded once, but only
        the leader ingests.)"""
        process = await asyncio.create_subprocess_exec(*self._ingest_command, "--source", source)
        exited = asyncio.ensure_future(process.wait())
        try:
            # Checked as often as the heartbeat, which is what learns of a loss.
            while not exited.done():
                await asyncio.wait({exited}, timeout=self.leadership.timeout / PINGS_PER_TIMEOUT)
                if not exited.done() and not self.leadership.held:
                    await _end(process, f"the ingest from {source}")
                    return False
        except asyncio.CancelledError:
            # Stopped past its patience: the ingest must not outlive paperbot,
            # holding the model's memory and the database with nobody waiting.
            await _end(process, f"the ingest from {source}")
            raise
        if code := exited.result():
            log.error("ingest from %s exited with %d", source, code)
        return self.leadership.held

    def _retry_ingest_if_empty(self) -> None:
        today = datetime.now(UTC).date()
        latest = self.core.latest_day()
        # Daily Papers lists a day's papers under that (US) date; after the UTC
        # roll-over the newest list is yesterday's. Older means the feed was empty or down.
        if latest is not None and latest >= today - timedelta(days=1):
            self._ingest_retries = 0
            return
        if self._ingest_retries >= INGEST_RETRIES:
            log.warning("still no new papers after %d ingest retries today", INGEST_RETRIES)
            self._ingest_retries = 0
            return
        self._ingest_retries += 1
        when = datetime.now(UTC) + INGEST_RETRY_DELAY
        log.warning("no papers for %s yet; retrying ingest at %s", today, f"{when:%H:%M} UTC")
        # Through `_tracked`, as the daily run: `stop` waits for it, and a database
        # away is one warning, not a traceback.
        self._scheduler.add_job(
            self._tracked,
            "date",
            args=[self.ingest],
            run_date=when,
            id="ingest-retry",
            name="ingest-retry",
            replace_existing=True,
        )


async def _end(process: asyncio.subprocess.Process, what: str) -> None:
    """Terminate a child process, and kill it if it is still there after `END_GRACE` seconds."""
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), END_GRACE)
    except TimeoutError:
        process.kill()
        await process.wait()
    log.warning("stopped %s (pid %d) before it finished", what, process.pid)
