"""The arXiv source against a local fake of the API, and its rate limiter on a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from bot.normalise import arxiv_id
from bot.sources.arxiv import ArxivSource
from bot.sources.feed_http import FeedClient, FeedError
from bot.sources.hf import MAX_TITLE_CHARS
from bot.sources.rate_limit import RateLimiter
from tests.fakes.feed_server import ARXIV_PATH, Fault, FeedServer, atom_entry

DAY = date(2025, 10, 6)


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> Iterator[FeedClient]:
    with FeedClient(max_bytes=5_000_000, timeout=1.0, sleep=clock.sleep) as c:
        yield c


def source(feeds: FeedServer, client: FeedClient, clock: FakeClock, *cats: str) -> ArxivSource:
    limiter = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    return ArxivSource(client, feeds.arxiv_url, cats or ("cs.CL", "cs.LG"), DAY, limiter=limiter)


def test_versions_are_stripped_and_cross_lists_included_once(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    feeds.arxiv_entries = [
        atom_entry("2510.01234v3", "Primary in cs.CL", "About   language.", ["cs.CL", "cs.LG"]),
        atom_entry("2510.05678v1", "Cross-listed", "Primary cs.AI.", ["cs.AI", "cs.LG"]),
        atom_entry("2510.09999v1", "Vision only", "Not asked for.", ["cs.CV"]),
    ]
    papers = list(source(feeds, client, clock).fetch())
    assert [p.id for p in papers] == ["2510.01234", "2510.05678"]
    first = papers[0]
    assert (first.abstract, first.source, first.listed_on) == ("About language.", "arxiv", DAY)
    assert first.url == "https://arxiv.org/abs/2510.01234"
    assert first.pdf_url == "http://arxiv.org/pdf/2510.01234"
    assert first.authors == ("Grace Hopper", "Edsger Dijkstra")
    assert first.published == datetime(2025, 10, 6, 17, 59, 59, tzinfo=UTC)
    (_, query), *_ = feeds.requests
    assert query["search_query"] == ["cat:cs.CL OR cat:cs.LG"]
    assert query["sortBy"] == ["submittedDate"] and query["sortOrder"] == ["descending"]


def test_titles_and_abstracts_are_stored_composed_on_one_line(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    # Decomposed accents (e + U+0301) look the same but would match no word typed composed.
    feeds.arxiv_entries = [
        atom_entry(
            "2510.01234v1", "Mode\u0300les\u200b de\n  langue", "Re\u0301sume\u0301.", ["cs.CL"]
        )
    ]
    (paper,) = source(feeds, client, clock).fetch()
    assert (paper.title, paper.abstract) == ("Mod\u00e8les de langue", "R\u00e9sum\u00e9.")


def test_an_overlong_title_is_cut_to_the_limit_with_an_ellipsis(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    fits = "k" * MAX_TITLE_CHARS
    feeds.arxiv_entries = [
        atom_entry("2510.01234v1", "abcdefghij" * 100, "Abstract.", ["cs.CL"]),
        atom_entry("2510.05678v1", fits, "Abstract.", ["cs.CL"]),
    ]
    cut, whole = source(feeds, client, clock).fetch()
    assert cut.title == ("abcdefghij" * 100)[: MAX_TITLE_CHARS - 1] + "…"
    assert whole.title == fits


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("1412.6980v9", "1412.6980"),  # four digits after the dot, before 2015
        ("https://arxiv.org/abs/2509.04664v2", "2509.04664"),
        ("https://arxiv.org/pdf/2509.04664v1.pdf", "2509.04664"),
        ("hep-th/9711200v3", "hep-th/9711200"),
        ("math.GT/0309136", "math.GT/0309136"),  # an old id with its subject class
    ],
)
def test_arxiv_ids_of_every_era_are_made_canonical(raw: str, canonical: str) -> None:
    assert arxiv_id(raw) == canonical


def test_pages_are_three_seconds_apart_on_the_limiters_clock(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    feeds.arxiv_entries = [
        atom_entry(f"2510.{i:05d}v1", f"Paper {i}", "Abstract.", ["cs.CL"]) for i in range(230)
    ]
    papers = list(source(feeds, client, clock).fetch())
    assert len(papers) == 230 and len({p.id for p in papers}) == 230
    assert [q["start"] for _, q in feeds.requests] == [["0"], ["100"], ["200"]]
    assert clock.sleeps == [3.0, 3.0]  # no request within 3 s of the previous one


def test_stops_at_entries_older_than_the_window(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    feeds.arxiv_entries = [
        atom_entry("2510.00001v1", "New", "Fresh.", ["cs.CL"], published="2025-10-06T10:00:00Z"),
        atom_entry("2509.00002v1", "Old", "Stale.", ["cs.CL"], published="2025-09-20T10:00:00Z"),
    ]
    assert [p.id for p in source(feeds, client, clock).fetch()] == ["2510.00001"]


def test_a_bad_entry_is_rejected_and_the_rest_kept(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    feeds.arxiv_entries = [
        atom_entry("2510.00001v1", "Good", "Fine.", ["cs.CL"]),
        atom_entry("not-an-id", "Bad id", "x", ["cs.CL"]),
        atom_entry("2510.00003v1", "", "No title.", ["cs.CL"]),
    ]
    src = source(feeds, client, clock)
    assert [p.id for p in src.fetch()] == ["2510.00001"]
    assert src.rejected == {"entry id is not an arXiv id": 1, "no title": 1}


def test_an_api_error_feed_is_reported(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    error = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
        b"<id>http://arxiv.org/api/errors#incorrect_id_format</id><title>Error</title>"
        b"<summary>incorrect id format</summary></entry></feed>"
    )
    feeds.fail_next(ARXIV_PATH, Fault(body=error, headers={"Content-Type": "application/xml"}))
    with pytest.raises(FeedError, match="arXiv API error: incorrect id format"):
        list(source(feeds, client, clock).fetch())


def test_an_html_error_page_is_not_xml(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    feeds.fail_next(ARXIV_PATH, Fault(body=b"<html><body>Bad gateway<br></body>"))
    with pytest.raises(FeedError, match="not well-formed XML"):
        list(source(feeds, client, clock).fetch())


def test_invalid_categories_are_refused_before_any_request(
    feeds: FeedServer, client: FeedClient, clock: FakeClock
) -> None:
    with pytest.raises(FeedError, match="not arXiv categories"):
        source(feeds, client, clock, "cs.CL", "cat:cs.LG) OR (all:x")
    assert feeds.requests == []


def test_the_limiter_allows_one_request_at_a_time(clock: FakeClock) -> None:
    limiter = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def request() -> None:
        nonlocal inside, most_inside
        with limiter.slot():
            with guard:
                inside += 1
                most_inside = max(most_inside, inside)
            clock.now += 0.5  # the request itself takes a while
            with guard:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most_inside == 1
    assert clock.sleeps == [3.0] * 4  # the gap counts from the end of the previous request


def test_the_limiter_does_not_wait_when_enough_time_passed(clock: FakeClock) -> None:
    limiter = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    with limiter.slot():
        pass
    clock.now += 10
    with limiter.slot():
        pass
    assert clock.sleeps == []
