"""Database tables (SQLModel). Alembic migrations in `alembic/versions` mirror these.

Tenancy is in the keys: every row about a user, a channel, a reaction or a
subscription starts with (platform, workspace), and foreign keys carry both, so
a query that forgets the tenant cannot join across one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel, col

from bot.domain import TENANT_KEY_MAX

PAPER_ID_MAX = 64


def is_paper_id(value: str) -> bool:
    """Could be a stored paper's id: anything else is unknown without asking the
    database (PostgreSQL fails a query holding a NUL instead of finding nothing)."""
    return 0 < len(value) <= PAPER_ID_MAX and "\x00" not in value


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, identically on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        # The same as `value.replace(tzinfo=UTC)` at 0.2 µs instead of 0.5 (replace
        # parses keywords): a year-long user's today() reads ~3,000 of these.
        return None if value is None else datetime.combine(value.date(), value.time(), UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def table(model: type[SQLModel]) -> sa.Table:
    """A table model's Core table, for statements that skip the ORM. SQLModel sets
    `__table__` on every `table=True` class but does not declare it to type checkers."""
    return model.__table__  # type: ignore[attr-defined]


def _utc(nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, **kw))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


def _tenant(**kw: Any) -> Any:
    return Field(primary_key=True, max_length=TENANT_KEY_MAX, **kw)


def _paper(**kw: Any) -> Any:
    """A paper's id, deleted with the paper. A column of its own per table: SQLAlchemy
    binds a Column to one table, so it cannot be shared."""
    return Field(
        sa_column=sa.Column(
            sa.String(PAPER_ID_MAX), sa.ForeignKey("papers.id", ondelete="CASCADE"), **kw
        )
    )


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["platform", "workspace", "user_id"],
        ["users.platform", "users.workspace", "users.user_id"],
        ondelete="CASCADE",
        name=f"fk_{table}_user",
    )


class Paper(SQLModel, table=True):
    __tablename__ = "papers"

    id: str = Field(primary_key=True, max_length=PAPER_ID_MAX)
    title: str = Field(sa_type=sa.Text)
    abstract: str = Field(sa_type=sa.Text)
    authors: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    abs_url: str | None = Field(default=None, sa_type=sa.Text)
    pdf_url: str | None = Field(default=None, sa_type=sa.Text)
    published: datetime | None = _utc()
    listed_on: date = Field(index=True)
    upvotes: int = 0
    github: str | None = Field(default=None, sa_type=sa.Text)
    project_page: str | None = Field(default=None, sa_type=sa.Text)
    thumbnail: str | None = Field(default=None, sa_type=sa.Text)
    ai_summary: str | None = Field(default=None, sa_type=sa.Text)
    keywords: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    source: str = Field(max_length=16)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class PaperEmbedding(SQLModel, table=True):
    __tablename__ = "paper_embeddings"

    paper_id: str = _paper(primary_key=True)
    model: str = Field(primary_key=True, max_length=200)
    dim: int
    vector: bytes = Field(sa_type=sa.LargeBinary)  # float32, L2-normalised


class User(SQLModel, table=True):
    __tablename__ = "users"

    platform: str = _tenant()
    workspace: str = _tenant()
    user_id: str = _tenant()
    created_at: datetime = _created()


class Follow(SQLModel, table=True):
    """A free-text topic the user asked to follow, with its embedding."""

    __tablename__ = "follows"
    __table_args__ = (_user_fk("follows"),)

    platform: str = _tenant()
    workspace: str = _tenant()
    user_id: str = _tenant()
    topic: str = Field(primary_key=True, max_length=200)
    model: str = Field(max_length=200)
    vector: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = _created()


class Reaction(SQLModel, table=True):
    """One row per (user, paper): the user's current feedback on it.

    👍 and 👎 are kept as separate timestamps, not one number, so that removing
    one of two platform reactions restores the other exactly; the signal is the
    newer of the two. Setting a timestamp that is already set is a no-op, which
    makes replayed events harmless.
    """

    __tablename__ = "reactions"
    __table_args__ = (_user_fk("reactions"),)

    platform: str = _tenant()
    workspace: str = _tenant()
    user_id: str = _tenant()
    paper_id: str = _paper(primary_key=True)
    channel_id: str | None = Field(default=None, max_length=TENANT_KEY_MAX, index=True)
    up_at: datetime | None = _utc()
    down_at: datetime | None = _utc()
    saved_at: datetime | None = _utc()
    updated_at: datetime = _created()

    @property
    def signal(self) -> int:
        return reaction_signal(self.up_at, self.down_at)

    @classmethod
    def liked(cls) -> sa.ColumnElement[bool]:
        """`reaction_signal(...) == 1` as SQL, for queries that must filter (and limit)
        on it in the database."""
        return sa.and_(
            col(cls.up_at).is_not(None),
            sa.or_(col(cls.down_at).is_(None), col(cls.up_at) >= col(cls.down_at)),
        )

    @classmethod
    def disliked(cls) -> sa.ColumnElement[bool]:
        """`reaction_signal(...) == -1` as SQL: a 👎 that stands."""
        return sa.and_(col(cls.down_at).is_not(None), ~cls.liked())

    @classmethod
    def feedback_at(cls) -> sa.ColumnElement[datetime]:
        """`feedback_time(...)` as SQL, to order (and limit) by it in the database."""
        return sa.case((cls.liked(), cls.up_at), (cls.disliked(), cls.down_at), else_=cls.saved_at)


def reaction_signal(up_at: datetime | None, down_at: datetime | None) -> int:
    """+1, -1 or 0: the newer of 👍 and 👎 wins (`Reaction.liked` is the +1 in SQL).
    A plain function, so code that reads reaction rows as tuples (every model build,
    every `today()`) need not build a `Reaction` for each: that costs about 20 µs a row."""
    if up_at and (not down_at or up_at >= down_at):
        return 1
    if down_at:
        return -1
    return 0


def feedback_time(
    up_at: datetime | None, down_at: datetime | None, saved_at: datetime | None
) -> datetime:
    """When the feedback that stands was given: the 👍 or 👎 that counts, else the 🔖.

    Not the row's `updated_at`: adding and taking back another signal on the
    same paper must not make an old 👍 count as new.
    """
    signal = reaction_signal(up_at, down_at)
    at = up_at if signal > 0 else down_at if signal < 0 else saved_at
    if at is None:  # taking back the last feedback deletes the row (feedback.apply)
        raise ValueError("a reaction row without feedback")
    return at


class InterestProfile(SQLModel, table=True):
    """A user's interests as last learned: what `/papers profile` shows.

    The model itself is rebuilt from feedback in memory (it depends on the whole
    catalogue's vocabulary); this row keeps its readable summary so any process
    can answer `profile` without rebuilding it. `stamp` digests the inputs the
    summary came from (feedback, follows, catalogue, day): a row whose stamp
    differs from the current inputs is stale and is rewritten.
    """

    __tablename__ = "user_interest_profiles"
    __table_args__ = (_user_fk("user_interest_profiles"),)

    platform: str = _tenant()
    workspace: str = _tenant()
    user_id: str = _tenant()
    stamp: str = Field(max_length=64)
    # [{"keywords": [...], "weight": float, "examples": [title, ...]}, ...]
    interests: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    built_at: datetime = _created()


class Impression(SQLModel, table=True):
    """A paper that was shown to a user in their picks, so it is not repeated."""

    __tablename__ = "impressions"
    __table_args__ = (
        _user_fk("impressions"),
        # The batches of picks a person's likes were in (`PaperBot._batches_of`).
        sa.Index(
            "ix_impressions_batches", "platform", "workspace", "user_id", "shown_at", "paper_id"
        ),
    )

    platform: str = _tenant()
    workspace: str = _tenant()
    user_id: str = _tenant()
    paper_id: str = _paper(primary_key=True)
    shown_at: datetime = _created()


class Channel(SQLModel, table=True):
    __tablename__ = "channels"

    platform: str = _tenant()
    workspace: str = _tenant()
    channel_id: str = _tenant()
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _created()


class Subscription(SQLModel, table=True):
    """A channel's daily post. The database is the schedule: no pickled jobs."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["platform", "workspace", "channel_id"],
            ["channels.platform", "channels.workspace", "channels.channel_id"],
            ondelete="CASCADE",
            name="fk_subscriptions_channel",
        ),
    )

    platform: str = _tenant()
    workspace: str = _tenant()
    channel_id: str = _tenant()
    post_at: time
    timezone: str = Field(max_length=64)
    picks: int = 5
    status: str = Field(default="active", max_length=16, index=True)
    failures: int = 0
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_by: str | None = Field(default=None, max_length=TENANT_KEY_MAX)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Delivery(SQLModel, table=True):
    """The ledger of daily posts: one row per (channel, local day), never two.

    claimed -> sent (message ids recorded) -> confirmed, or failed/skipped with a reason.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("platform", "workspace", "channel_id", "day", name="uq_delivery_day"),
        # The tick's "newest feed day posted" reads only recent feed days; status
        # first, or SQLite answers that query from the status index alone.
        sa.Index("ix_deliveries_status_feed_day", "status", "feed_day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=TENANT_KEY_MAX)
    workspace: str = Field(max_length=TENANT_KEY_MAX)
    channel_id: str = Field(max_length=TENANT_KEY_MAX)
    day: date = Field(index=True)  # the tick reads today's rows every minute
    status: str = Field(default="claimed", max_length=16, index=True)
    paper_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    message_ids: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # What the picks were ranked from, and each pick's score and reason, stored
    # with the claim so a retry re-sends exactly the same post.
    feed_day: date | None = None
    pick_notes: list[dict[str, Any]] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    claim_token: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _utc()
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class PostedMessage(SQLModel, table=True):
    """Maps a platform message to the paper it shows, so reactions can be resolved."""

    __tablename__ = "posted_messages"
    # An adapter back from a disconnection reads its recent posts' reactions again.
    __table_args__ = (sa.Index("ix_posted_messages_recent", "platform", "posted_at"),)

    platform: str = _tenant()
    workspace: str = _tenant()
    channel_id: str = _tenant()
    message_id: str = _tenant()
    paper_id: str = _paper(nullable=False)
    delivery_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("deliveries.id", ondelete="SET NULL")),
    )
    posted_at: datetime = _created()


class ForgetRequest(SQLModel, table=True):
    """Who asked `/papers forget`, as a digest, for as long as reactions are read back.

    An adapter back from an outage re-stores the 👍/👎 still on recent posts
    (`bot.missed_reactions`). A forgotten person's emoji stay on those posts, and
    must not bring their feedback back. A digest, not the id: the table is no
    list of people; it can only answer whether a given person asked, and when.
    """

    __tablename__ = "forget_requests"

    platform: str = _tenant()
    workspace: str = _tenant()
    user_digest: str = Field(primary_key=True, max_length=64)
    forgotten_at: datetime = _created()


class ProcessedEvent(SQLModel, table=True):
    """Platform event ids already handled, so a retried or replayed event changes nothing."""

    __tablename__ = "processed_events"

    platform: str = _tenant()
    workspace: str = _tenant()
    event_id: str = Field(primary_key=True, max_length=128)
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )


class LocalMessage(SQLModel, table=True):
    """Messages of the `local` platform: the web adapter's channel, and tests."""

    __tablename__ = "local_messages"

    id: int | None = Field(default=None, primary_key=True)
    workspace: str = Field(max_length=TENANT_KEY_MAX)
    channel_id: str = Field(max_length=TENANT_KEY_MAX, index=True)
    idempotency_key: str | None = Field(default=None, max_length=128, unique=True)
    paper_id: str | None = Field(default=None, max_length=64)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = _created()
