"""The delivery ledger: each channel's daily post, exactly once per (channel, local day).

One `deliveries` row per (channel, local day), guarded by a unique constraint,
moves through

    claimed --send--> sent (message ids) --record posts--> confirmed
       \\-> failed (channel gone, no permission) / skipped (missed the grace window, empty day)

The protocol that makes a post happen once across crashes and processes:

1. Claim the row in its own transaction BEFORE sending, with the picks (paper
   ids, scores, reasons) and a lease (`claim_token`, `lease_until`). A second
   claimer's INSERT does nothing, so two processes never both own a day.
2. Send with the idempotency key `pb-<delivery id>`: every retry of this row
   uses the same key, so the port's idempotency (Discord's nonce, the local
   platform's unique key, a history lookup on Slack) returns the messages
   already posted instead of posting again (`resume=True`).
3. Record the message ids (status sent) and which message shows which paper
   (`posted_messages`) in one transaction, then confirm.

Steps 1 and 3 are batched: one transaction claims, records or confirms many
channels' rows, so a big fan-out is not five commits per channel.

A claimer that dies leaves a row whose lease runs out; `stale` finds it and
`take_over` moves it to a new token by compare-and-set, so exactly one process
resumes it, with the same picks and the same key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from bot import posted_messages
from bot.database import Database, dialect_insert, keys_in, rowcount
from bot.domain import ChannelRef, Pick
from bot.models import Delivery, Subscription, table, utcnow
from bot.posting import (
    ChannelNotFound,
    MissingPermission,
    PostingError,
    PostingPort,
    RateLimited,
)

log = logging.getLogger(__name__)

# How long a claimer owns a row before another process may take it over. Longer
# than any single send (including rate-limit waits, see MAX_RATE_LIMIT_WAIT).
LEASE = timedelta(minutes=10)
PAUSE_AFTER_FAILURES = 3
# A send that keeps failing for unknown reasons (network, 5xx) gives up after this many claims.
MAX_ATTEMPTS = 5
# A post waits out rate limits for at most this long in total; past that the
# row is released, not before the platform's retry_after, for a later tick.
MAX_RATE_LIMIT_WAIT = timedelta(minutes=2)
# A send starts only with at least this much of its lease left: its rate-limit
# waits and a few requests, so it is over before another process may take the row
# over. A claimer's send normally follows its claim within seconds; one that was
# stopped or stalled in between (a hung event loop, a paused VM: the scheduler
# leader's lock has gone to a standby meanwhile, see bot.scheduler.LOCK_TIMEOUT)
# may find the row resumed by another process, whose post is out. Sent again
# without `resume`, it would post twice where the platform keeps keys for minutes
# (Discord's nonce) or not at all (Slack); it leaves the row to reconciliation.
SEND_TIME = MAX_RATE_LIMIT_WAIT + timedelta(minutes=1)
EMPTY_DAY_TEXT = "No new papers today. I'll be back with picks when the feed has new ones."

# Tests kill the process at a named step of the protocol to prove crash safety
# (tests/test_delivery_crashes.py). It is an environment variable, not a
# parameter, because the test drives the real `paperbot tick` subprocess; unset
# in production, where `crash_point` is a dictionary lookup and nothing else.
CRASH_ENV = "PAPERBOT_TEST_CRASH_AT"
CRASH_STEPS = ("before_claim", "after_claim", "after_send", "after_record")

Sleep = Callable[[float], Awaitable[None]]


class Status(StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    SKIPPED = "skipped"


IN_FLIGHT = (Status.CLAIMED, Status.SENT)
# Rows whose picks are out or on their way; failed and skipped ones showed nothing.
POSTED_OR_PENDING = (*IN_FLIGHT, Status.CONFIRMED)


def crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        log.warning("test crash hook: SIGKILL at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Claim:
    """A delivery row this process owns until `lease_until`."""

    id: int
    channel: ChannelRef
    day: date
    token: str
    paper_ids: list[str]
    notes: list[dict[str, Any]]
    lease_until: datetime  # by this process's clock, as the row has it
    status: Status = Status.CLAIMED
    message_ids: list[str] = field(default_factory=list)
    attempts: int = 1
    resumed: bool = False  # an earlier claimer may already have sent some messages

    @property
    def key(self) -> str:
        # Short and unique per database: Discord nonces hold at most 25 characters.
        return f"pb-{self.id}"

    @property
    def is_notice(self) -> bool:
        return not self.paper_ids


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: released for a later retry
    reason: str | None = None


def channel_of(row: Delivery | Subscription) -> ChannelRef:
    return ChannelRef(row.platform, row.workspace, row.channel_id)


# ---------------------------------------------------------------- reading the ledger
def existing(db: Database, days: Iterable[date]) -> set[tuple[str, str, str, date]]:
    """(platform, workspace, channel, day) of every ledger row on these days, whatever its state."""
    days = sorted(set(days))
    if not days:
        return set()
    # The tick asks every minute: ix_deliveries_day reads these days' rows, not the history.
    with db.read() as session:
        rows = session.execute(
            sa.select(
                col(Delivery.platform),
                col(Delivery.workspace),
                col(Delivery.channel_id),
                col(Delivery.day),
            ).where(col(Delivery.day).in_(days))
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


def last_feed_days(db: Database, since: date) -> dict[tuple[str, str, str], date]:
    """The newest feed day each channel was posted from, if it is `since` or later.

    A later feed day than a channel's is new papers for it. A channel left out
    was last posted from a feed day before `since`, or never: for any feed day
    from `since` on the answer is the same, new papers. So only the rows from
    `since` on are read (ix_deliveries_status_feed_day), about one per channel,
    not every post since the bot started.
    """
    with db.read() as session:
        rows = session.execute(
            sa.select(
                col(Delivery.platform),
                col(Delivery.workspace),
                col(Delivery.channel_id),
                sa.func.max(col(Delivery.feed_day)),
            )
            .where(col(Delivery.status).in_(POSTED_OR_PENDING), col(Delivery.feed_day) >= since)
            .group_by(col(Delivery.platform), col(Delivery.workspace), col(Delivery.channel_id))
        )
        # Never NULL: the max of feed days filtered on `>= since`.
        return {(p, w, c): cast(date, d) for p, w, c, d in rows}


def stale(db: Database, now: datetime, platforms: Iterable[str]) -> list[Delivery]:
    """In-flight rows whose claimer's lease ran out: it crashed or gave up for now."""
    wanted = set(platforms)
    with db.read() as session:
        rows = session.scalars(
            sa.select(Delivery)
            .where(col(Delivery.status).in_(IN_FLIGHT), col(Delivery.lease_until) < now)
            .order_by(col(Delivery.id))
        )
        # The platforms are picked here, not in SQL: given `platform IN (...)`,
        # SQLite (no statistics) reads the rows by the unique key's first column,
        # every row of the ledger, instead of the few in flight by status.
        return [row for row in rows if row.platform in wanted]


# ---------------------------------------------------------------- writing the ledger
@dataclass(frozen=True)
class Post:
    """A due post, ranked and ready to claim: picks, or none for an empty-day notice."""

    channel: ChannelRef
    day: date  # the channel's local day
    picks: Sequence[Pick] = ()
    feed_day: date | None = None  # the feed day the picks come from


def claim(db: Database, posts: Sequence[Post], now: datetime) -> list[Claim | None]:
    """Take each (channel, day) for this process, in one transaction.

    Returns a Claim per post, or None where any other row for that (channel,
    day) already exists. One statement for the whole batch: the ledger writes,
    not the ranking, were most of a big fan-out's time (bench/fanout.py).
    """
    crash_point("before_claim")
    if not posts:
        return []
    rows: dict[tuple[str, str, str, date], dict[str, Any]] = {
        delivery_key(p.channel, p.day): {
            "platform": p.channel.platform,
            "workspace": p.channel.workspace,
            "channel_id": p.channel.channel,
            "day": p.day,
            "status": Status.CLAIMED.value,
            "paper_ids": [pick.paper_id for pick in p.picks],
            "pick_notes": [{"score": pick.score, "reason": pick.reason} for pick in p.picks],
            "feed_day": p.feed_day,
            "message_ids": [],
            "claim_token": secrets.token_hex(16),
            "lease_until": now + LEASE,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
        }
        for p in posts
    }
    # Sorted keys: two claimers on PostgreSQL then wait on each other's rows in
    # the same order and cannot deadlock.
    ordered = [rows[key] for key in sorted(rows)]
    won = db.write_retrying(lambda s: _insert_once(s, ordered), what="claim deliveries")
    claims: list[Claim | None] = []
    for p in posts:
        key = delivery_key(p.channel, p.day)
        row = rows[key]
        claims.append(
            Claim(
                won[key],
                p.channel,
                p.day,
                row["claim_token"],
                row["paper_ids"],
                row["pick_notes"],
                row["lease_until"],
            )
            if key in won
            else None
        )
    return claims


def delivery_key(channel: ChannelRef, day: date) -> tuple[str, str, str, date]:
    return (channel.platform, channel.workspace, channel.channel, day)


def skip(db: Database, channel: ChannelRef, day: date, now: datetime, reason: str) -> bool:
    """Record that (channel, day) will not be posted, so it is decided (and logged) once."""
    return bool(skip_many(db, [(channel, day, reason)], now))


# Rows per INSERT: SQLite binds at most 32,766 parameters, a skipped row has 11.
SKIP_CHUNK = 500


def skip_many(
    db: Database, skips: Sequence[tuple[ChannelRef, date, str]], now: datetime
) -> set[tuple[str, str, str, date]]:
    """`skip` for many (channel, day, reason) in one transaction: the keys recorded now.

    After a long downtime a tick records a week of days for every channel: one
    commit per row would hold the tick for minutes.
    """
    rows = [
        {
            "platform": channel.platform,
            "workspace": channel.workspace,
            "channel_id": channel.channel,
            "day": day,
            "status": Status.SKIPPED.value,
            "paper_ids": [],
            "message_ids": [],
            "attempts": 0,
            "error": reason,
            "created_at": now,
            "updated_at": now,
        }
        # Sorted, as claims are: concurrent writers then lock rows in the same order.
        for channel, day, reason in sorted(skips, key=lambda s: delivery_key(s[0], s[1]))
    ]
    if not rows:
        return set()

    def work(session: Session) -> set[tuple[str, str, str, date]]:
        recorded: set[tuple[str, str, str, date]] = set()
        for start in range(0, len(rows), SKIP_CHUNK):
            recorded.update(_insert_once(session, rows[start : start + SKIP_CHUNK]))
        return recorded

    return db.write_retrying(work, what="skip deliveries")


def _insert_once(
    session: Session, rows: list[dict[str, Any]]
) -> dict[tuple[str, str, str, date], int]:
    """Insert the rows whose (channel, day) is free: {(platform, workspace, channel, day): id}."""
    # ON CONFLICT DO NOTHING, not a caught IntegrityError: on PostgreSQL a
    # concurrent claimer waits for the first one's commit and then inserts
    # nothing, without aborting its transaction.
    statement = (
        dialect_insert(session)(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["platform", "workspace", "channel_id", "day"])
        .returning(
            col(Delivery.platform),
            col(Delivery.workspace),
            col(Delivery.channel_id),
            col(Delivery.day),
            col(Delivery.id),
        )
    )
    return {(p, w, c, d): i for p, w, c, d, i in session.execute(statement)}


def _still_stale(
    row: Delivery, now: datetime, statuses: Sequence[Status]
) -> tuple[sa.ColumnElement[bool], ...]:
    """The compare in compare-and-set: nobody renewed, took over or finished the row since we read it."""
    return (
        col(Delivery.id) == row.id,
        col(Delivery.claim_token) == row.claim_token,
        col(Delivery.status).in_([s.value for s in statuses]),
        col(Delivery.lease_until) < now,
    )


def take_over(db: Database, row: Delivery, now: datetime) -> Claim | None:
    """Compare-and-set a stale row to a fresh token. None if another process got it first."""
    token = secrets.token_hex(16)

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Delivery)
            .where(*_still_stale(row, now, IN_FLIGHT))
            .values(
                claim_token=token,
                lease_until=now + LEASE,
                attempts=col(Delivery.attempts) + 1,
                updated_at=now,
            )
        )
        return rowcount(result) == 1

    if not db.write_retrying(work, what="take over delivery"):
        return None
    assert row.id is not None  # noqa: S101  (a stored row has its id)
    return Claim(
        row.id,
        channel_of(row),
        row.day,
        token,
        list(row.paper_ids),
        list(row.pick_notes or []),
        now + LEASE,
        status=Status(row.status),
        message_ids=list(row.message_ids),
        attempts=row.attempts + 1,
        resumed=True,
    )


def abandon(db: Database, row: Delivery, now: datetime, reason: str) -> bool:
    """Close a stale, never-sent row as skipped (compare-and-set, like `take_over`)."""

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Delivery)
            .where(*_still_stale(row, now, (Status.CLAIMED,)))
            .values(status=Status.SKIPPED.value, error=reason, lease_until=None, updated_at=now)
        )
        return rowcount(result) == 1

    return db.write_retrying(work, what="abandon delivery")


def _owned(claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
    return (col(Delivery.id) == claim.id, col(Delivery.claim_token) == claim.token)


def mark_sent(db: Database, sent: Sequence[tuple[Claim, Sequence[str]]], now: datetime) -> set[int]:
    """Record the message ids of sent posts, in the ledger and as posted messages, in one transaction.

    Returns the ids of the deliveries still owned (status sent); a row whose
    lease ran out and was taken over by another process is left to that one.
    """

    def work(session: Session) -> set[int]:
        owned = _still_owned(session, [claim for claim, _ in sent])
        mine = [(claim, ids) for claim, ids in sent if claim.id in owned]
        if mine:
            # executemany of one compiled statement: per-row statements were
            # most of a big fan-out's ledger time.
            session.connection().execute(
                sa.update(table(Delivery))
                .where(table(Delivery).c.id == sa.bindparam("delivery_id"))
                .values(
                    status=Status.SENT.value,
                    message_ids=sa.bindparam("ids"),
                    error=None,
                    updated_at=now,
                ),
                [{"delivery_id": claim.id, "ids": list(ids)} for claim, ids in mine],
            )
            posted_messages.record_many(
                session,
                [
                    (claim.channel, list(zip(ids, claim.paper_ids, strict=False)), claim.id)
                    for claim, ids in mine
                ],
            )
        return owned

    return db.write_retrying(work, what="record sent deliveries") if sent else set()


def _still_owned(session: Session, claims: Sequence[Claim]) -> set[int]:
    """Which claims this process still owns: nobody took the row over since."""
    if not claims:
        return set()
    statement = sa.select(col(Delivery.id)).where(
        keys_in((col(Delivery.id), col(Delivery.claim_token)), [(c.id, c.token) for c in claims])
    )
    if session.get_bind().dialect.name == "postgresql":
        # Hold the rows until commit, so no take-over slips in between.
        statement = statement.with_for_update()
    return set(session.scalars(statement))


def confirm(db: Database, claims: Sequence[Claim], now: datetime) -> set[int]:
    """The posts are complete: close the rows and reset their subscriptions' failure counts.

    Returns the ids of the deliveries confirmed now.
    """

    def work(session: Session) -> set[int]:
        # A stored row's id is never None: SQLModel types it Optional for rows not inserted yet.
        confirmed = cast(
            set[int],
            set(
                session.scalars(
                    sa.update(Delivery)
                    .where(
                        keys_in(
                            (col(Delivery.id), col(Delivery.claim_token)),
                            [(c.id, c.token) for c in claims],
                        ),
                        col(Delivery.status) == Status.SENT.value,
                    )
                    .values(status=Status.CONFIRMED.value, lease_until=None, updated_at=now)
                    .returning(col(Delivery.id))
                )
            ),
        )
        channels = [c.channel for c in claims if c.id in confirmed]
        if channels:
            session.execute(
                sa.update(Subscription)
                .where(
                    keys_in(
                        (
                            col(Subscription.platform),
                            col(Subscription.workspace),
                            col(Subscription.channel_id),
                        ),
                        [(c.platform, c.workspace, c.channel) for c in channels],
                    ),
                    col(Subscription.status).in_(("active", "failing")),
                    # Only subscriptions with failures to forget: most posts write nothing here.
                    sa.or_(col(Subscription.failures) > 0, col(Subscription.status) == "failing"),
                )
                .values(status="active", failures=0, last_error=None, updated_at=now)
            )
        return confirmed

    return db.write_retrying(work, what="confirm deliveries") if claims else set()


def mark_failed(db: Database, claim: Claim, reason: str, now: datetime) -> str | None:
    """The channel cannot take posts. Returns the subscription's new status."""

    def work(session: Session) -> str | None:
        result = session.execute(
            sa.update(Delivery)
            .where(*_owned(claim))
            .values(status=Status.FAILED.value, error=reason, lease_until=None, updated_at=now)
        )
        if rowcount(result) != 1:
            return None
        sub = session.get(
            Subscription, (claim.channel.platform, claim.channel.workspace, claim.channel.channel)
        )
        if sub is None or sub.status not in ("active", "failing"):
            return sub.status if sub else None
        sub.failures += 1
        sub.last_error = reason
        sub.status = "paused" if sub.failures >= PAUSE_AFTER_FAILURES else "failing"
        sub.updated_at = now
        return sub.status

    return db.write_retrying(work, what="record failed delivery")


def release(db: Database, claim: Claim, reason: str, not_before: datetime) -> bool:
    """Give the row back for an attempt from `not_before` on, keeping its picks."""

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Delivery)
            .where(*_owned(claim), col(Delivery.status).in_(IN_FLIGHT))
            .values(lease_until=not_before, error=reason, updated_at=utcnow())
        )
        return rowcount(result) == 1

    return db.write_retrying(work, what="release delivery")


# ---------------------------------------------------------------- the send protocol
class GaveUpWaiting(PostingError):
    """The platform keeps rate-limiting us: leave the row for a later tick."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:.0f}s, on a later tick")
        self.retry_after = retry_after


async def send(
    port: PostingPort,
    claim: Claim,
    picks: Sequence[Pick],
    *,
    notice: str = EMPTY_DAY_TEXT,
    sleep: Sleep = asyncio.sleep,
) -> list[str]:
    """Send the claim's post, waiting out rate limits exactly as long as the platform asks."""
    waited = 0.0
    attempt = 0
    while True:
        try:
            if claim.is_notice:
                return [await port.send_notice(claim.channel, notice, f"{claim.key}:notice")]
            # A taken-over claim, or a retry after a 429 part-way through, may
            # follow a partial send: resume under the same key.
            resume = claim.resumed or attempt > 0
            return await port.send_picks(claim.channel, picks, claim.key, resume=resume)
        except RateLimited as exc:
            wait = max(exc.retry_after, 0.0)
            if waited + wait > MAX_RATE_LIMIT_WAIT.total_seconds():
                raise GaveUpWaiting(wait) from exc
            log.info("%s rate limited, retrying after %.2fs", claim.channel.platform, wait)
            await sleep(wait)
            waited += wait
            attempt += 1


async def deliver(
    port: PostingPort,
    owned: Sequence[tuple[Claim, Sequence[Pick]]],
    *,
    db: Database,
    now: datetime,
    notice: str = EMPTY_DAY_TEXT,
    sleep: Sleep = asyncio.sleep,
) -> list[Outcome]:
    """Post owned claims and walk them to confirmed (or failed, or released for a retry).

    The sends go one by one; the ledger writes after them cover the whole batch
    in one transaction each, so a crash at any step leaves every row in a state
    the next claimer resumes under the same key. Returns an Outcome per claim.
    """
    crash_point("after_claim")
    began = time.monotonic()
    outcomes: dict[int, Outcome] = {}
    sent: list[tuple[Claim, Sequence[str]]] = []
    for claim, picks in owned:
        if claim.status is Status.SENT:
            sent.append((claim, claim.message_ids))  # out already: only the records are missing
            continue
        clock = now + timedelta(seconds=time.monotonic() - began)
        if clock > claim.lease_until - SEND_TIME:
            log.warning(
                "not sending the post to %s: its lease ends at %s UTC, too soon for a send "
                "(was this process stopped or stalled?); reconciliation resumes it",
                claim.channel,
                f"{claim.lease_until:%H:%M:%S}",
            )
            outcomes[claim.id] = Outcome(None, "lease too short to send")
            continue
        try:
            sent.append((claim, await send(port, claim, picks, notice=notice, sleep=sleep)))
        except Exception as exc:  # one channel's failure must not stop the batch
            outcomes[claim.id] = await _failed_send(db, claim, exc, now)
    if any(claim.status is Status.CLAIMED for claim, _ in sent):
        crash_point("after_send")
    recorded = await asyncio.to_thread(mark_sent, db, sent, now)
    crash_point("after_record")
    confirmed = await asyncio.to_thread(
        confirm, db, [claim for claim, _ in sent if claim.id in recorded], now
    )
    for claim, _ in sent:
        # Not confirmed: our lease ran out and another process took the row over.
        done = claim.id in confirmed
        outcomes[claim.id] = Outcome(Status.CONFIRMED) if done else Outcome(None, "lost the claim")
    return [outcomes[claim.id] for claim, _ in owned]


async def _failed_send(db: Database, claim: Claim, exc: Exception, now: datetime) -> Outcome:
    if isinstance(exc, ChannelNotFound | MissingPermission):
        reason = f"{type(exc).__name__}: {exc}"[:500]
        state = await asyncio.to_thread(mark_failed, db, claim, reason, now)
        log.warning("daily post to %s failed (%s); subscription %s", claim.channel, reason, state)
        return Outcome(Status.FAILED, reason)
    # Anything else (a 5xx, a reset connection) may be transient: keep the row
    # and its picks; the lease lapses and a later tick resumes it.
    reason = f"{type(exc).__name__}: {str(exc)[:300]}"
    if claim.attempts >= MAX_ATTEMPTS:
        await asyncio.to_thread(mark_failed, db, claim, reason, now)
        log.error("daily post to %s failed %d times: %s", claim.channel, claim.attempts, reason)
        return Outcome(Status.FAILED, reason)
    # Never come back before the platform's retry_after.
    not_before = now + timedelta(seconds=getattr(exc, "retry_after", 0.0))
    await asyncio.to_thread(release, db, claim, reason, not_before)
    log.warning("daily post to %s will be retried: %s", claim.channel, reason)
    return Outcome(None, reason)
