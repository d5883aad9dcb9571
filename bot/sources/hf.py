"""Hugging Face Daily Papers: `GET {api}?date=YYYY-MM-DD&limit=100&p=N`, paged until `[]`.

Each item is `{paper: {id, title, summary, authors, upvotes, ai_summary,
ai_keywords, githubRepo?, projectPage?, ...}, title, summary, thumbnail, ...}`.
`paper.id` is the arXiv id and the dedup key.

Trust nothing in the body. A response that is not a JSON array fails the
page with a `FeedError`. An item without a usable id, title or abstract is
rejected, counted under its reason and logged; the other items stay. An
optional field of the wrong type is dropped with a log line, keeping the paper.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.domain import PaperIn
from bot.normalise import MAX_COUNT, arxiv_id, clean_text, timestamp
from bot.sources.feed_http import FeedClient, FeedError

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# A day has a few dozen papers; a server that never returns [] must not loop us forever.
MAX_PAGES = 50
MAX_TITLE_CHARS = 500
MAX_ABSTRACT_CHARS = 10_000
MAX_SUMMARY_CHARS = 2_000
MAX_AUTHORS = 200
MAX_KEYWORDS = 20
MAX_URL_CHARS = 2_000


class ItemRejected(ValueError):
    """One item is unusable; `reason` is short and the same for the same fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_body(body: bytes, what: str) -> list[Any]:
    """The JSON array a Daily Papers response must be. Raises `FeedError` otherwise."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise FeedError(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # includes invalid UTF-8
        raise FeedError(f"{what}: not JSON ({str(exc)[:80]})") from None
    if not isinstance(data, list):
        raise FeedError(f"{what}: expected a JSON array, got {type(data).__name__}")
    return data


def parse_items(
    items: list[Any], listed_on: date | None, rejected: Counter[str], what: str
) -> Iterator[PaperIn]:
    """Papers from a list of Daily Papers items. `listed_on=None`: the item's own day."""
    for index, item in enumerate(items):
        try:
            yield parse_item(item, listed_on)
        except ItemRejected as exc:
            rejected[exc.reason] += 1
            log.warning("%s item %d rejected: %s", what, index, exc.reason)


def parse_item(item: Any, listed_on: date | None) -> PaperIn:
    if not isinstance(item, dict):
        raise ItemRejected(f"item is {type(item).__name__}, not an object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise ItemRejected("missing 'paper' object")
    raw_id = paper.get("id")
    if not isinstance(raw_id, str):
        raise ItemRejected("paper.id missing or not a string")
    try:
        pid = arxiv_id(raw_id)
    except ValueError:
        raise ItemRejected("paper.id is not an arXiv id") from None
    fields = _Fields(pid)
    title = fields.text(paper, "title", MAX_TITLE_CHARS) or fields.text(
        item, "title", MAX_TITLE_CHARS
    )
    if not title:
        raise ItemRejected("no title")
    abstract = fields.text(paper, "summary", MAX_ABSTRACT_CHARS) or fields.text(
        item, "summary", MAX_ABSTRACT_CHARS
    )
    if not abstract:
        raise ItemRejected("no abstract")
    published = fields.timestamp(paper, "publishedAt") or fields.timestamp(item, "publishedAt")
    listed = fields.timestamp(paper, "submittedOnDailyAt")
    day = listed_on or (listed or published or datetime.now(UTC)).date()
    return PaperIn(
        id=pid,
        title=title,
        abstract=abstract,
        authors=fields.authors(paper),
        published=published,
        listed_on=day,
        source="hf",
        upvotes=fields.count(paper, "upvotes"),
        github=fields.url(paper, "githubRepo"),
        ai_summary=fields.text(paper, "ai_summary", MAX_SUMMARY_CHARS) or None,
        keywords=fields.keywords(paper, "ai_keywords"),
        project_page=fields.url(paper, "projectPage"),
        thumbnail=fields.url(item, "thumbnail"),
    )


class _Fields:
    """Readers for optional fields: a wrong type drops the field, logged, never the paper."""

    def __init__(self, pid: str) -> None:
        self.pid = pid

    def _get(self, obj: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
        value = obj.get(key)
        if value is None:
            return None
        # bool is an int subclass; a boolean upvote count is a fault, not 1.
        if not isinstance(value, kinds) or isinstance(value, bool):
            log.warning("paper %s: field %s is %s, ignored", self.pid, key, type(value).__name__)
            return None
        return value

    def text(self, obj: dict[str, Any], key: str, max_chars: int) -> str:
        value = self._get(obj, key, str)
        return clean_text(value, max_chars=max_chars) if value else ""

    def count(self, obj: dict[str, Any], key: str) -> int:
        value = self._get(obj, key, int)
        if value is not None and value > MAX_COUNT:
            log.warning("paper %s: field %s is %d, too large, ignored", self.pid, key, value)
            return 0
        return max(0, value) if value is not None else 0

    def url(self, obj: dict[str, Any], key: str) -> str | None:
        value = self._get(obj, key, str)
        if not value:
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")) or len(value) > MAX_URL_CHARS:
            log.warning("paper %s: field %s is not an http(s) URL, ignored", self.pid, key)
            return None
        return value

    def timestamp(self, obj: dict[str, Any], key: str) -> datetime | None:
        value = self._get(obj, key, str)
        if not value:
            return None
        try:
            return timestamp(value)
        except ValueError as exc:
            log.warning("paper %s: field %s ignored: %s", self.pid, key, exc)
            return None

    def authors(self, paper: dict[str, Any]) -> tuple[str, ...]:
        raw = self._get(paper, "authors", list) or []
        names = []
        for author in raw[:MAX_AUTHORS]:
            name = author.get("name") if isinstance(author, dict) else None
            if isinstance(name, str) and (cleaned := clean_text(name, max_chars=200)):
                names.append(cleaned)
        return tuple(names)

    def keywords(self, paper: dict[str, Any], key: str) -> tuple[str, ...]:
        raw = self._get(paper, key, list) or []
        words = [clean_text(k, max_chars=80) for k in raw if isinstance(k, str)]
        return tuple(w for w in words if w)[:MAX_KEYWORDS]


class HfDailySource:
    """One day of Daily Papers from the API."""

    name = "hf"

    def __init__(self, client: FeedClient, api_url: str, day: date) -> None:
        self.client = client
        self.api_url = api_url
        self.day = day
        self.rejected: Counter[str] = Counter()

    def fetch(self) -> Iterator[PaperIn]:
        for page in range(MAX_PAGES):
            what = f"Daily Papers {self.day} page {page}"
            body = self.client.get(
                self.api_url, {"date": self.day.isoformat(), "limit": PAGE_SIZE, "p": page}
            )
            items = parse_body(body, what)
            if not items:
                return
            yield from parse_items(items, self.day, self.rejected, what)
        log.warning("Daily Papers %s: stopped after %d pages", self.day, MAX_PAGES)


class HfFileSource:
    """A saved Daily Papers JSON response (`paperbot ingest --file`)."""

    name = "hf"

    def __init__(self, path: Path, day: date | None = None, max_bytes: int | None = None) -> None:
        self.path = path
        self.day = day
        self.max_bytes = max_bytes
        self.rejected: Counter[str] = Counter()

    def fetch(self) -> Iterator[PaperIn]:
        try:
            size = self.path.stat().st_size
            if self.max_bytes is not None and size > self.max_bytes:
                raise FeedError(f"{self.path.name} is larger than {self.max_bytes} bytes")
            body = self.path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read {self.path}: {exc.strerror}") from None
        items = parse_body(body, self.path.name)
        yield from parse_items(items, self.day, self.rejected, self.path.name)
