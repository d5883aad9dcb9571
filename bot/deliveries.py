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
3. Record the message ids (status sent), then which message shows which paper
   (`PaperBot.record_posts`), then confirm.

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.database import Database
from bot.domain import ChannelRef, Pick
from bot.models import Delivery, Subscription, utcnow
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


def _channel_filter(model: type, channel: ChannelRef) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        model.platform == channel.platform,  # type: ignore[attr-defined]
        model.workspace == channel.workspace,  # type: ignore[attr-defined]
        model.channel_id == channel.channel,  # type: ignore[attr-defined]
    )


# ---------------------------------------------------------------- reading the ledger
def existing(db: Database, days: Iterable[date]) -> set[tuple[str, str, str, date]]:
    """(platform, workspace, channel, day) of every ledger row on these days, whatever its state."""
    days = sorted(set(days))
    if not days:
        return set()
    with db.read() as session:
        rows = session.execute(
            sa.select(
                Delivery.platform, Delivery.workspace, Delivery.channel_id, Delivery.day
            ).where(Delivery.day.in_(days))
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


def last_feed_days(db: Database) -> dict[tuple[str, str, str], date]:
    """The newest feed day each channel was posted from: a later day is new papers."""
    with db.read() as session:
        rows = session.execute(
            sa.select(
                Delivery.platform,
                Delivery.workspace,
                Delivery.channel_id,
                sa.func.max(Delivery.feed_day),
            )
            .where(Delivery.feed_day.is_not(None), Delivery.status.in_(POSTED_OR_PENDING))
            .group_by(Delivery.platform, Delivery.workspace, Delivery.channel_id)
        )
        return {(p, w, c): d for p, w, c, d in rows}


def stale(db: Database, now: datetime, platforms: Iterable[str]) -> list[Delivery]:
    """In-flight rows whose claimer's lease ran out: it crashed or gave up for now."""
    with db.read() as session:
        return list(
            session.scalars(
                sa.select(Delivery)
                .where(
                    Delivery.status.in_(IN_FLIGHT),
                    Delivery.lease_until < now,
                    Delivery.platform.in_(list(platforms)),
                )
                .order_by(Delivery.id)
            )
        )


# ---------------------------------------------------------------- writing the ledger
def claim(
    db: Database,
    channel: ChannelRef,
    day: date,
    now: datetime,
    *,
    picks: Sequence[Pick] = (),
    feed_day: date | None = None,
) -> Claim | None:
    """Take (channel, day) for this process. None when any other row for it exists."""
    crash_point("before_claim")
    token = secrets.token_hex(16)
    notes = [{"score": p.score, "reason": p.reason} for p in picks]
    paper_ids = [p.paper_id for p in picks]
    values = {
        "platform": channel.platform,
        "workspace": channel.workspace,
        "channel_id": channel.channel,
        "day": day,
        "status": Status.CLAIMED.value,
        "paper_ids": paper_ids,
        "pick_notes": notes,
        "feed_day": feed_day,
        "message_ids": [],
        "claim_token": token,
        "lease_until": now + LEASE,
        "attempts": 1,
        "created_at": now,
        "updated_at": now,
    }
    delivery_id = db.write_retrying(lambda s: _insert_once(s, values), what="claim delivery")
    if delivery_id is None:
        return None
    return Claim(delivery_id, channel, day, token, paper_ids, notes)


def skip(db: Database, channel: ChannelRef, day: date, now: datetime, reason: str) -> bool:
    """Record that (channel, day) will not be posted, so it is decided (and logged) once."""
    values = {
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
    return db.write_retrying(lambda s: _insert_once(s, values), what="skip delivery") is not None


def _insert_once(session: Session, values: dict[str, object]) -> int | None:
    # ON CONFLICT DO NOTHING, not a caught IntegrityError: on PostgreSQL a
    # concurrent claimer waits for the first one's commit and then inserts
    # nothing, without aborting its transaction.
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(Delivery)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["platform", "workspace", "channel_id", "day"])
        .returning(Delivery.id)
    )
    return session.execute(statement).scalar()


def _still_stale(
    row: Delivery, now: datetime, statuses: Sequence[Status]
) -> tuple[sa.ColumnElement[bool], ...]:
    """The compare in compare-and-set: nobody renewed, took over or finished the row since we read it."""
    return (
        Delivery.id == row.id,
        Delivery.claim_token == row.claim_token,
        Delivery.status.in_([s.value for s in statuses]),
        Delivery.lease_until < now,
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
                attempts=Delivery.attempts + 1,
                updated_at=now,
            )
        )
        return result.rowcount == 1

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
        return result.rowcount == 1

    return db.write_retrying(work, what="abandon delivery")


def _owned(claim: Claim) -> tuple[sa.ColumnElement[bool], ...]:
    return (Delivery.id == claim.id, Delivery.claim_token == claim.token)


def mark_sent(db: Database, claim: Claim, message_ids: list[str], now: datetime) -> bool:
    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Delivery)
            .where(*_owned(claim))
            .values(status=Status.SENT.value, message_ids=message_ids, error=None, updated_at=now)
        )
        return result.rowcount == 1

    return db.write_retrying(work, what="record sent delivery")


def confirm(db: Database, claim: Claim, now: datetime) -> bool:
    """The post is complete: close the row and reset the subscription's failure count."""

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Delivery)
            .where(*_owned(claim), Delivery.status == Status.SENT.value)
            .values(status=Status.CONFIRMED.value, lease_until=None, updated_at=now)
        )
        if result.rowcount != 1:
            return False
        session.execute(
            sa.update(Subscription)
            .where(
                *_channel_filter(Subscription, claim.channel),
                Subscription.status.in_(("active", "failing")),
                # Only a subscription with failures to forget: most posts write nothing here.
                sa.or_(Subscription.failures > 0, Subscription.status == "failing"),
            )
            .values(status="active", failures=0, last_error=None, updated_at=now)
        )
        return True

    return db.write_retrying(work, what="confirm delivery")


def mark_failed(db: Database, claim: Claim, reason: str, now: datetime) -> str | None:
    """The channel cannot take posts. Returns the subscription's new status."""

    def work(session: Session) -> str | None:
        result = session.execute(
            sa.update(Delivery)
            .where(*_owned(claim))
            .values(status=Status.FAILED.value, error=reason, lease_until=None, updated_at=now)
        )
        if result.rowcount != 1:
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
            .where(*_owned(claim), Delivery.status.in_(IN_FLIGHT))
            .values(lease_until=not_before, error=reason, updated_at=utcnow())
        )
        return result.rowcount == 1

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
    claim: Claim,
    picks: Sequence[Pick],
    *,
    record_posts: Callable[[ChannelRef, list[tuple[str, str]], int], None],
    db: Database,
    now: datetime,
    notice: str = EMPTY_DAY_TEXT,
    sleep: Sleep = asyncio.sleep,
) -> Outcome:
    """Post an owned claim and walk it to confirmed (or failed, or released for a retry)."""
    crash_point("after_claim")
    message_ids = claim.message_ids
    if claim.status is Status.CLAIMED:
        try:
            message_ids = await send(port, claim, picks, notice=notice, sleep=sleep)
        except (ChannelNotFound, MissingPermission) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:500]
            state = await asyncio.to_thread(mark_failed, db, claim, reason, now)
            log.warning(
                "daily post to %s failed (%s); subscription %s", claim.channel, reason, state
            )
            return Outcome(Status.FAILED, reason)
        except Exception as exc:
            # Anything else (a 5xx, a reset connection) may be transient: keep the
            # row and its picks; the lease lapses and a later tick resumes it.
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            if claim.attempts >= MAX_ATTEMPTS:
                await asyncio.to_thread(mark_failed, db, claim, reason, now)
                log.error(
                    "daily post to %s failed %d times: %s", claim.channel, claim.attempts, reason
                )
                return Outcome(Status.FAILED, reason)
            # Never come back before the platform's retry_after.
            not_before = now + timedelta(seconds=getattr(exc, "retry_after", 0.0))
            await asyncio.to_thread(release, db, claim, reason, not_before)
            log.warning("daily post to %s will be retried: %s", claim.channel, reason)
            return Outcome(None, reason)
        crash_point("after_send")
        if not await asyncio.to_thread(mark_sent, db, claim, message_ids, now):
            return Outcome(None, "lost the claim")  # our lease ran out and someone took over
    posts = list(zip(message_ids, claim.paper_ids, strict=False))
    if posts:
        await asyncio.to_thread(record_posts, claim.channel, posts, claim.id)
    crash_point("after_record")
    if not await asyncio.to_thread(confirm, db, claim, now):
        return Outcome(None, "lost the claim")
    return Outcome(Status.CONFIRMED)
