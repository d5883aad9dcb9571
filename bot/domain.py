"""The core's platform-neutral value types: who, where, which paper, which pick.

Adapters build these from platform events and render core results from them;
nothing here knows about Discord or Slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import date, datetime, time
from typing import Literal

from bot.errors import InvalidInput

Platform = str  # "discord", "slack", "local" - open so new adapters need no core change
TENANT_KEY_MAX = 64  # characters of a platform, workspace, user or channel id, as stored


def _check_ids(*ids: str) -> None:
    """Ids the database can store, checked once here: past its column width (or with a
    NUL) PostgreSQL fails the write where SQLite would take it, so both refuse alike."""
    for value in ids:
        if len(value) > TENANT_KEY_MAX or "\x00" in value:
            raise InvalidInput(
                f"An id is at most {TENANT_KEY_MAX} characters, without NUL: {value[:20]!r}…"
            )


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person, scoped to one tenant: (platform, workspace) is a guild or a Slack team."""

    platform: Platform
    workspace: str
    user: str

    def __post_init__(self) -> None:
        _check_ids(self.platform, self.workspace, self.user)

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.user}"


@dataclass(frozen=True, slots=True)
class ChannelRef:
    platform: Platform
    workspace: str
    channel: str

    def __post_init__(self) -> None:
        _check_ids(self.platform, self.workspace, self.channel)

    def __str__(self) -> str:  # as logs name it, and as `paperbot` options take it
        return f"{self.platform}:{self.workspace}:{self.channel}"


@dataclass(frozen=True, slots=True)
class PaperIn:
    """A paper as a source delivers it, already normalised (see `normalise.py`)."""

    id: str
    title: str
    abstract: str
    authors: Sequence[str]
    published: datetime | None
    listed_on: date
    source: str
    upvotes: int = 0
    url: str | None = None
    github: str | None = None
    ai_summary: str | None = None
    keywords: Sequence[str] = ()
    pdf_url: str | None = None
    project_page: str | None = None
    thumbnail: str | None = None


# Where `Pick.github` may lead: adapters show it labelled "GitHub", and a feed's
# field is free text.
GITHUB_HOSTS = ("github.com", "www.github.com")


@dataclass(frozen=True, slots=True)
class Pick:
    """One recommended paper with why it was picked.

    The first five fields are the contract; the keyword-only rest lets adapters
    render a full card without a second query.
    """

    paper_id: str
    title: str
    url: str
    score: float
    reason: str
    _: KW_ONLY
    authors: tuple[str, ...] = ()
    summary: str = ""
    upvotes: int = 0
    github: str | None = None
    thumbnail: str | None = None
    listed_on: date | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    embedded: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class Interest:
    keywords: tuple[str, ...]
    weight: float
    examples: tuple[str, ...]  # paper titles


@dataclass(frozen=True, slots=True)
class Profile:
    user: UserRef
    likes: int
    dislikes: int
    saved: int
    shown: int
    follows: tuple[str, ...]
    interests: tuple[Interest, ...]


SubscriptionStatus = Literal["active", "failing", "paused", "cancelled"]


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    channel: ChannelRef
    at: time
    tz: str
    limit: int
    status: SubscriptionStatus
    failures: int
    last_error: str | None
    last_posted_on: date | None


@dataclass(frozen=True, slots=True)
class FeedbackState:
    """Which of 👍, 👎 and 🔖 count for a user on a paper: at most one thumb, the newer."""

    up: bool = False
    down: bool = False
    saved: bool = False
