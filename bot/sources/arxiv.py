"""arXiv categories through the arXiv API (Atom), politely.

`ArxivSource` asks for the newest submissions in the given categories,
`(cat:cs.CL OR cat:cs.LG)` sorted by submission date, a page at a time, and
stops at the first entry submitted before the look-back window. A paper
cross-listed into one of the categories is included whatever its primary
category, and a paper in several of them comes back once (the query is one OR).

Every request goes through one process-wide `RateLimiter` (one request at a
time, 3 s apart), as arXiv's API terms ask. The XML is parsed by defusedxml
with DTDs forbidden, so entity bombs and external entities are refused before
any expansion.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bot.domain import PaperIn
from bot.normalise import arxiv_id, clean_text, timestamp
from bot.sources.feed_http import FeedClient, FeedError
from bot.sources.hf import MAX_ABSTRACT_CHARS, MAX_AUTHORS, MAX_TITLE_CHARS, ItemRejected
from bot.sources.rate_limit import RateLimiter

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
PAGE_SIZE = 100
MAX_PAGES = 10
WINDOW_DAYS = 2  # announcements lag submissions by a day or two
_CATEGORY = re.compile(r"^[a-z\-]+(\.[A-Za-z\-]+)?$")
# arXiv's terms: no more than one request every three seconds, one connection.
ARXIV_LIMITER = RateLimiter(3.0)


def valid_category(name: str) -> bool:
    return bool(_CATEGORY.match(name)) and len(name) <= 32


class ArxivSource:
    name = "arxiv"

    def __init__(
        self,
        client: FeedClient,
        api_url: str,
        categories: Sequence[str],
        day: date,
        *,
        limiter: RateLimiter = ARXIV_LIMITER,
    ) -> None:
        bad = [c for c in categories if not valid_category(c)]
        if bad or not categories:
            raise FeedError(f"not arXiv categories: {', '.join(bad)[:100] or '(none given)'}")
        self.client = client
        self.api_url = api_url
        self.categories = tuple(dict.fromkeys(categories))
        self.day = day
        self.limiter = limiter
        self.rejected: Counter[str] = Counter()

    def fetch(self) -> Iterator[PaperIn]:
        oldest = datetime.combine(self.day - timedelta(days=WINDOW_DAYS), datetime.min.time(), UTC)
        query = " OR ".join(f"cat:{c}" for c in self.categories)
        for page in range(MAX_PAGES):
            params: dict[str, str | int] = {
                "search_query": query,
                "sortBy": "submittedDate",
                "sortOrder": "descending",
                "start": page * PAGE_SIZE,
                "max_results": PAGE_SIZE,
            }
            with self.limiter.slot():
                body = self.client.get(self.api_url, params)
            entries = parse_feed(body, f"arXiv page {page}")
            if not entries:
                return
            for index, entry in enumerate(entries):
                try:
                    paper = parse_entry(entry, self.day)
                except ItemRejected as exc:
                    self.rejected[exc.reason] += 1
                    log.warning("arXiv page %d entry %d rejected: %s", page, index, exc.reason)
                    continue
                if paper.published is not None and paper.published < oldest:
                    return  # sorted newest first: everything after is older still
                yield paper
            if len(entries) < PAGE_SIZE:
                return


def parse_feed(body: bytes, what: str) -> list[Any]:
    """The `<entry>` elements of an Atom feed. Raises `FeedError` on hostile or broken XML."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException as exc:
        # DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden: bombs and XXE.
        raise FeedError(f"{what}: refused XML ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise FeedError(f"{what}: not well-formed XML ({exc})") from None
    if root.tag != f"{ATOM}feed":
        raise FeedError(f"{what}: not an Atom feed")
    entries = root.findall(f"{ATOM}entry")
    # The API reports a bad query as a feed with one entry whose id is an error URL.
    if len(entries) == 1 and "/api/errors" in (entries[0].findtext(f"{ATOM}id") or ""):
        message = clean_text(entries[0].findtext(f"{ATOM}summary") or "", max_chars=200)
        raise FeedError(f"{what}: arXiv API error: {message}")
    return entries


def parse_entry(entry: Any, listed_on: date) -> PaperIn:
    raw_id = entry.findtext(f"{ATOM}id") or ""
    try:
        pid = arxiv_id(raw_id)  # strips the version: .../abs/2509.04664v2 -> 2509.04664
    except ValueError:
        raise ItemRejected("entry id is not an arXiv id") from None
    title = clean_text(entry.findtext(f"{ATOM}title") or "", max_chars=MAX_TITLE_CHARS)
    if not title:
        raise ItemRejected("no title")
    abstract = clean_text(entry.findtext(f"{ATOM}summary") or "", max_chars=MAX_ABSTRACT_CHARS)
    if not abstract:
        raise ItemRejected("no abstract")
    authors = [
        clean_text(a.findtext(f"{ATOM}name") or "", max_chars=200)
        for a in entry.findall(f"{ATOM}author")[:MAX_AUTHORS]
    ]
    pdf = next(
        (
            link.get("href")
            for link in entry.findall(f"{ATOM}link")
            if link.get("title") == "pdf" and (link.get("href") or "").startswith("http")
        ),
        None,
    )
    return PaperIn(
        id=pid,
        title=title,
        abstract=abstract,
        authors=tuple(a for a in authors if a),
        published=_timestamp(entry.findtext(f"{ATOM}published"), pid),
        listed_on=listed_on,
        source="arxiv",
        url=f"https://arxiv.org/abs/{pid}",
        pdf_url=pdf and re.sub(r"v\d+$", "", pdf),
    )


def _timestamp(value: str | None, pid: str) -> datetime | None:
    if not value:
        return None
    try:
        return timestamp(value)
    except ValueError as exc:
        log.warning("arXiv %s: published ignored: %s", pid, exc)
        return None
