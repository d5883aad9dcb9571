"""Hostile feed bodies (issue 9): each is refused with a specific log line, nothing else is lost.

Every scenario serves a valid first page and a hostile second page from the
local fake feed server, runs the real source through `fetch_all` and stores
the result: the first page's papers are kept whole, the hostile page is
refused with a log line naming why. Memory is bounded with tracemalloc (peak
of Python allocations during the fetch), not with a clock: wall time on a
shared CI machine proves nothing.
"""

from __future__ import annotations

import gzip
import logging
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from bot.ingest import fetch_all
from bot.paperbot import PaperBot
from bot.sources import Source
from bot.sources.arxiv import PAGE_SIZE as ARXIV_PAGE
from bot.sources.arxiv import ArxivSource
from bot.sources.feed_http import FeedClient
from bot.sources.hf import PAGE_SIZE as HF_PAGE
from bot.sources.hf import HfDailySource
from bot.sources.rate_limit import RateLimiter
from tests.fakes.feed_server import ARXIV_PATH, HF_PATH, Fault, FeedServer, atom_entry, daily_item
from tests.helpers import DAY

pytestmark = pytest.mark.reliability

DEFAULT_MAX_BYTES = 20_000_000  # PAPERBOT_FEED_MAX_BYTES's default
EXTRA_MEMORY = 100 * 1024 * 1024

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&lol9;</title></entry></feed>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2510.00001v1</id>
<title>&xxe;</title><summary>leak</summary></entry></feed>"""


def gzip_bomb(expanded: int = 200 * 1024 * 1024) -> bytes:
    """~200 KB that inflates to `expanded` bytes of zeros (gzip members back to back)."""
    member = gzip.compress(b"\0" * (1024 * 1024), compresslevel=9)
    return member * (expanded // (1024 * 1024))


@pytest.fixture
def client() -> Iterator[FeedClient]:
    with FeedClient(max_bytes=DEFAULT_MAX_BYTES, timeout=5.0, sleep=lambda _: None) as c:
        yield c


def hf_day(feeds: FeedServer, client: FeedClient) -> tuple[Source, str, int]:
    feeds.days[DAY.isoformat()] = [
        daily_item(f"2510.{i:05d}", f"Paper {i}", f"Abstract {i}.") for i in range(HF_PAGE * 2)
    ]
    return HfDailySource(client, feeds.hf_url, DAY), HF_PATH, HF_PAGE


def arxiv_feed(feeds: FeedServer, client: FeedClient) -> tuple[Source, str, int]:
    feeds.arxiv_entries = [
        atom_entry(f"2510.{i:05d}v1", f"Paper {i}", f"Abstract {i}.", ["cs.CL"])
        for i in range(ARXIV_PAGE * 2)
    ]
    source = ArxivSource(client, feeds.arxiv_url, ["cs.CL"], DAY, limiter=RateLimiter(0.0))
    return source, ARXIV_PATH, ARXIV_PAGE


TOO_LARGE = "response from 127.0.0.1/api/daily_papers is larger than 20000000 bytes"
REFUSED_XML = "arXiv page 1: refused XML (DTDForbidden)"


@pytest.mark.parametrize(
    ("feed", "fault", "log_line"),
    [
        (arxiv_feed, Fault(body=BILLION_LAUGHS), REFUSED_XML),
        (arxiv_feed, Fault(body=EXTERNAL_ENTITY), REFUSED_XML),
        (hf_day, Fault(stream_bytes=50 * 1024 * 1024), TOO_LARGE),
        (hf_day, Fault(body=gzip_bomb(), headers={"Content-Encoding": "gzip"}), TOO_LARGE),
        (
            hf_day,
            Fault(body=b"[" * 100_000 + b"]" * 100_000),
            "Daily Papers 2025-10-06 page 1: JSON nested too deeply",
        ),
    ],
    ids=["billion-laughs", "external-entity", "50MB-body", "gzip-bomb", "json-100000-deep"],
)
def test_a_hostile_page_is_refused_and_the_page_before_it_kept(
    core: PaperBot,
    feeds: FeedServer,
    client: FeedClient,
    caplog: pytest.LogCaptureFixture,
    feed: Callable[[FeedServer, FeedClient], tuple[Source, str, int]],
    fault: Fault,
    log_line: str,
) -> None:
    source, path, page_size = feed(feeds, client)

    def after_first_page(count: int) -> None:
        if count == page_size:  # page 0 was fine; page 1 is the hostile one
            feeds.fail_next(path, fault)

    tracemalloc.start()
    try:
        with caplog.at_level(logging.ERROR, "bot.ingest"):
            papers, failure = fetch_all(source, on_paper=after_first_page)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert failure is not None and log_line in str(failure) and log_line in caplog.text
    assert peak < EXTRA_MEMORY, f"{peak / 2**20:.0f} MiB"
    assert core.ingest(papers).new == page_size
    assert all("root:" not in p.title for p in papers)  # /etc/passwd was never read


REQUIRED_WRONG = {
    "paper": (["not", "an", "object"], "missing 'paper' object"),
    "id": (2510.00001, "paper.id missing or not a string"),
    "title": ({"text": "x"}, "no title"),
    "summary": (["An abstract"], "no abstract"),
}
OPTIONAL_WRONG = {
    "authors": "a single string",
    "publishedAt": 1_759_757_112,
    "submittedOnDailyAt": ["2025-10-06"],
    "upvotes": "12",
    "ai_summary": 42,
    "ai_keywords": "llm, agents",
    "githubRepo": {"url": "https://github.com/x/y"},
    "projectPage": True,
}


def test_wrong_types_in_every_field(
    core: PaperBot, feeds: FeedServer, client: FeedClient, caplog: pytest.LogCaptureFixture
) -> None:
    items = []
    for n, (field, (value, _)) in enumerate(REQUIRED_WRONG.items()):
        item = daily_item(f"2510.{n:05d}", f"Broken {field}", "Abstract.")
        if field == "paper":
            item["paper"] = value
            item["title"] = item["summary"] = value  # the top-level copies are no help either
        else:
            item["paper"][field] = value
            item[field] = value
        items.append(item)
    for n, (field, value) in enumerate(OPTIONAL_WRONG.items(), start=100):
        item = daily_item(f"2510.{n:05d}", f"Odd {field}", "Abstract.")
        item["paper"][field] = value
        items.append(item)
    item = daily_item("2510.00200", "Odd thumbnail", "Abstract.")
    item["thumbnail"] = 7
    items.append(item)
    items.append(daily_item("2510.00300", "Fine", "A perfectly good paper."))
    feeds.days[DAY.isoformat()] = items

    source = HfDailySource(client, feeds.hf_url, DAY)
    with caplog.at_level(logging.WARNING):
        papers, failure = fetch_all(source)
    assert failure is None
    assert source.rejected == {reason: 1 for _, reason in REQUIRED_WRONG.values()}
    for n, (_, reason) in enumerate(REQUIRED_WRONG.values()):
        assert f"item {n} rejected: {reason}" in caplog.text
    for n, (field, value) in enumerate(OPTIONAL_WRONG.items(), start=100):
        line = f"paper 2510.{n:05d}: field {field} is {type(value).__name__}, ignored"
        assert line in caplog.text
    assert "paper 2510.00200: field thumbnail is int, ignored" in caplog.text
    # Papers with a bad optional field are kept, without that field.
    kept = {p.id: p for p in papers}
    assert len(kept) == len(OPTIONAL_WRONG) + 2
    assert kept["2510.00103"].upvotes == 0 and kept["2510.00106"].github is None
    assert kept["2510.00300"].upvotes == 12
    assert core.ingest(papers, rejected=dict(source.rejected)).new == len(kept)
