"""The Daily Papers source against a local fake of the API (tests/fakes/feed_server.py)."""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from bot.sources.feed_http import BodyTooLarge, FeedClient, FeedError, retry_after
from bot.sources.hf import HfDailySource, HfFileSource
from bot.sources.public_url import PublicUrlGuard, UnsafeUrl, is_public_address
from tests.fakes.feed_server import HF_PATH, Fault, FeedServer, daily_item

DAY = date(2025, 10, 6)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> Iterator[FeedClient]:
    # The injected sleep records the backoff instead of waiting it out.
    with FeedClient(max_bytes=1_000_000, timeout=0.5, sleep=sleeps.append) as c:
        yield c


def items(n: int, day: str = "2025-10-06") -> list[dict]:
    return [daily_item(f"2510.{i:05d}", f"Paper {i}", f"Abstract {i}.", day=day) for i in range(n)]


def fetch(feeds: FeedServer, client: FeedClient, day: date = DAY) -> tuple[list, HfDailySource]:
    source = HfDailySource(client, feeds.hf_url, day)
    return list(source.fetch()), source


def test_pages_until_an_empty_page(feeds: FeedServer, client: FeedClient) -> None:
    feeds.days["2025-10-06"] = items(250)
    papers, _ = fetch(feeds, client)
    assert [p.id for p in papers] == [f"2510.{i:05d}" for i in range(250)]
    pages = [(q["date"], q["limit"], q["p"]) for path, q in feeds.requests if path == HF_PATH]
    assert pages == [(["2025-10-06"], ["100"], [str(p)]) for p in range(4)]


def test_keeps_the_fields_posts_show(feeds: FeedServer, client: FeedClient) -> None:
    item = daily_item(
        "2510.04664v2",
        "  A   title\nover lines ",
        "An\u200b abstract.",
        upvotes=33,
        projectPage="https://example.org/p",
    )
    feeds.days["2025-10-06"] = [item]
    (paper,), _ = fetch(feeds, client)
    assert paper.id == "2510.04664"  # version stripped
    assert (paper.title, paper.abstract) == ("A title over lines", "An abstract.")
    assert paper.authors == ("Ada Lovelace", "Alan Turing")
    assert (paper.upvotes, paper.github) == (33, "https://github.com/example/repo")
    assert paper.ai_summary == "A title over lines in one sentence."
    assert paper.keywords == ("large language models", "benchmarks")
    assert paper.thumbnail and paper.thumbnail.endswith("2510.04664v2.png")
    assert paper.project_page == "https://example.org/p"
    assert paper.listed_on == DAY and paper.published == datetime(
        2025, 10, 6, 13, 45, 12, tzinfo=UTC
    )


def test_a_time_with_an_offset_is_stored_as_that_instant_in_utc(
    feeds: FeedServer, client: FeedClient
) -> None:
    feeds.days["2025-10-06"] = [
        daily_item("2510.00001", "East", "A.", publishedAt="2025-10-06T01:30:00+09:00"),
        daily_item("2510.00002", "Naive", "A.", publishedAt="2025-10-06T01:30:00"),
    ]
    east, naive = fetch(feeds, client)[0]
    assert east.published == datetime(2025, 10, 5, 16, 30, tzinfo=UTC)
    assert naive.published == datetime(2025, 10, 6, 1, 30, tzinfo=UTC)  # taken as UTC


def test_tolerates_missing_optional_fields(feeds: FeedServer, client: FeedClient) -> None:
    bare = {"paper": {"id": "2510.00007", "title": "Bare", "summary": "Only the essentials."}}
    feeds.days["2025-10-06"] = [bare]
    (paper,), source = fetch(feeds, client)
    assert (paper.id, paper.upvotes, paper.github, paper.thumbnail, paper.ai_summary) == (
        "2510.00007",
        0,
        None,
        None,
        None,
    )
    assert paper.authors == () and paper.keywords == () and not source.rejected


def test_values_no_paper_can_have_drop_the_field_and_keep_the_paper(
    feeds: FeedServer, client: FeedClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Each passed a type check and then failed at the database, aborting the ingest.
    feeds.days["2025-10-06"] = [
        daily_item("2510.00001", "Huge count", "A.", upvotes=10**20),
        daily_item("2510.00002", "Year one", "A.", publishedAt="0001-01-01T01:00:00+05:00"),
        daily_item("2510.00003", "Year 9999", "A.", publishedAt="9999-12-31T23:00:00-05:00"),
        daily_item("2510.00004", "Far future", "A.", publishedAt="2200-01-01T00:00:00Z"),
    ]
    with caplog.at_level(logging.WARNING, "bot.sources.hf"):
        papers, source = fetch(feeds, client)
    # The item's own publishedAt, beside the paper's, is the fallback.
    fallback = datetime(2025, 10, 6, 13, 45, 12, tzinfo=UTC)
    assert [(p.id, p.upvotes, p.published) for p in papers] == [
        ("2510.00001", 0, fallback),
        ("2510.00002", 12, fallback),
        ("2510.00003", 12, fallback),
        ("2510.00004", 12, fallback),
    ]
    assert not source.rejected
    assert "paper 2510.00001: field upvotes is 100000000000000000000, too large" in caplog.text
    assert "paper 2510.00004: field publishedAt ignored" in caplog.text


def test_an_empty_weekend_yields_nothing(feeds: FeedServer, client: FeedClient) -> None:
    feeds.days["2025-10-03"] = items(3, "2025-10-03")
    papers, _ = fetch(feeds, client, date(2025, 10, 4))
    assert papers == [] and len(feeds.requests) == 1


def test_malformed_items_are_rejected_with_reasons_and_good_ones_kept(
    feeds: FeedServer, client: FeedClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = items(2)
    feeds.days["2025-10-06"] = [
        good[0],
        "not an object",
        {"title": "no paper object"},
        {"paper": {"id": 2510.1, "title": "t", "summary": "s"}},
        {"paper": {"id": "../../etc/passwd", "title": "t", "summary": "s"}},
        {"paper": {"id": "2510.00009", "title": "   ", "summary": "s"}},
        {"paper": {"id": "2510.00010", "title": "t"}},
        good[1],
    ]
    with caplog.at_level(logging.WARNING, "bot.sources.hf"):
        papers, source = fetch(feeds, client)
    assert [p.id for p in papers] == ["2510.00000", "2510.00001"]
    assert source.rejected == {
        "item is str, not an object": 1,
        "missing 'paper' object": 1,
        "paper.id missing or not a string": 1,
        "paper.id is not an arXiv id": 1,
        "no title": 1,
        "no abstract": 1,
    }
    assert "page 0 item 4 rejected: paper.id is not an arXiv id" in caplog.text


def test_429_waits_as_long_as_retry_after_says(
    feeds: FeedServer, client: FeedClient, sleeps: list[float]
) -> None:
    feeds.days["2025-10-06"] = items(1)
    feeds.fail_next(HF_PATH, Fault(status=429, headers={"Retry-After": "7"}))
    papers, _ = fetch(feeds, client)
    assert len(papers) == 1 and sleeps == [7.0]


def test_500_then_success_backs_off_and_recovers(
    feeds: FeedServer, client: FeedClient, sleeps: list[float]
) -> None:
    feeds.days["2025-10-06"] = items(1)
    feeds.fail_next(HF_PATH, Fault(status=500), Fault(status=503))
    papers, _ = fetch(feeds, client)
    assert len(papers) == 1 and sleeps == [1.0, 2.0]  # exponential backoff


def test_a_server_that_stays_down_fails_with_one_line(
    feeds: FeedServer, client: FeedClient, sleeps: list[float]
) -> None:
    feeds.fail_next(HF_PATH, *[Fault(status=502)] * 3)
    with pytest.raises(FeedError, match=r"^HTTP 502 from 127\.0\.0\.1/api/daily_papers") as err:
        fetch(feeds, client)
    assert "gave up after 3 attempts" in str(err.value) and "\n" not in str(err.value)
    assert len(sleeps) == 2


def test_too_long_a_retry_after_gives_up_at_once(feeds: FeedServer, client: FeedClient) -> None:
    feeds.fail_next(HF_PATH, Fault(status=429, headers={"Retry-After": "86400"}))
    with pytest.raises(FeedError, match="Retry-After 86400 s is too long"):
        fetch(feeds, client)


def test_400_is_not_retried(feeds: FeedServer, client: FeedClient, sleeps: list[float]) -> None:
    feeds.fail_next(HF_PATH, Fault(status=400, body=b'{"error":"Invalid date"}'))
    with pytest.raises(FeedError, match="HTTP 400"):
        fetch(feeds, client)
    assert sleeps == [] and len(feeds.requests) == 1


def test_the_real_400_for_a_bad_date(feeds: FeedServer, client: FeedClient) -> None:
    with pytest.raises(FeedError, match="HTTP 400"):
        client.get(feeds.hf_url, {"date": "2025-13-45", "limit": 100, "p": 0})


def test_a_timeout_is_retried(feeds: FeedServer, client: FeedClient, sleeps: list[float]) -> None:
    feeds.days["2025-10-06"] = items(1)
    feeds.fail_next(HF_PATH, Fault(stall=1.5, body=b"[]"))
    papers, _ = fetch(feeds, client)
    assert len(papers) == 1 and sleeps == [1.0]


def test_a_feed_sending_a_byte_at_a_time_times_out_within_the_request_timeout(
    feeds: FeedServer, client: FeedClient, sleeps: list[float]
) -> None:
    # Every byte comes within the read timeout (0.5 s), the whole body in 20 s:
    # PAPERBOT_FEED_TIMEOUT bounds the request, or the daily ingest never ends.
    feeds.days["2025-10-06"] = items(1)
    feeds.fail_next(HF_PATH, Fault(trickle=0.1, body=b"[" + b" " * 198 + b"]"))
    start = time.monotonic()
    papers, _ = fetch(feeds, client)
    assert time.monotonic() - start < 5
    assert len(papers) == 1 and sleeps == [1.0]


def test_a_truncated_body_is_retried_then_reported(
    feeds: FeedServer, client: FeedClient, sleeps: list[float]
) -> None:
    body = json.dumps(items(5)).encode()
    feeds.fail_next(HF_PATH, *[Fault(truncate=True, body=body)] * 3)
    with pytest.raises(FeedError, match="broke off mid-response"):
        fetch(feeds, client)
    assert len(sleeps) == 2


def test_an_oversized_body_is_cut_off(feeds: FeedServer, client: FeedClient) -> None:
    feeds.fail_next(HF_PATH, Fault(stream_bytes=5_000_000))
    with pytest.raises(BodyTooLarge, match="larger than 1000000 bytes"):
        fetch(feeds, client)


def test_a_declared_oversized_body_is_not_read(feeds: FeedServer, client: FeedClient) -> None:
    feeds.fail_next(HF_PATH, Fault(body=b"[" + b" " * 1_500_000 + b"]"))
    with pytest.raises(BodyTooLarge):
        fetch(feeds, client)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>Service Unavailable</html>", "not JSON"),
        (b'{"error": "rate limited"}', "expected a JSON array, got dict"),
        (b"\xff\xfe[]", "not JSON"),
    ],
)
def test_a_body_that_is_not_a_json_array_is_rejected(
    feeds: FeedServer, client: FeedClient, body: bytes, reason: str
) -> None:
    feeds.fail_next(HF_PATH, Fault(body=body))
    with pytest.raises(FeedError, match=reason):
        fetch(feeds, client)


def test_a_saved_response_file_is_read_with_each_items_own_day(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "daily.json"
    path.write_text(json.dumps([*items(2, "2025-10-09"), {"paper": None}]))
    source = HfFileSource(path)
    papers = list(source.fetch())
    assert [p.listed_on for p in papers] == [date(2025, 10, 9)] * 2
    assert source.rejected == {"missing 'paper' object": 1}


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 10, 6, 12, 0, 0, tzinfo=UTC)
    assert retry_after("30", now) == 30.0
    assert retry_after("Mon, 06 Oct 2025 12:00:45 GMT", now) == 45.0
    assert retry_after("Mon, 06 Oct 2025 11:00:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None


# ---------------------------------------------------------------- user-supplied URLs
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.5",
        "172.16.9.9",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


def test_the_guard_allows_only_public_http_hosts() -> None:
    guard = PublicUrlGuard(
        resolve=lambda host: {"feeds.example": ["93.184.216.34"], "sneaky.example": ["10.0.0.7"]}[
            host
        ]
    )
    guard(httpx.URL("https://feeds.example/daily.json"))
    for url, reason in [
        ("file:///etc/passwd", "only http"),
        ("ftp://feeds.example/x", "only http"),
        ("http://localhost:8080/", "not public"),
        ("http://metadata.google.internal/computeMetadata/v1/", "not public"),
        ("http://169.254.169.254/latest/meta-data/", "non-public 169.254.169.254"),
        ("http://[::1]/", "non-public ::1"),
        ("http://sneaky.example/feed", "non-public 10.0.0.7"),
    ]:
        with pytest.raises(UnsafeUrl, match=reason):
            guard(httpx.URL(url))


class _LocalDns(httpx.HTTPTransport):
    """Stands in for DNS: 'feeds.example' is served by the fake on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "feeds.example":
            request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return super().handle_request(request)


def test_a_redirect_to_a_private_address_is_refused(feeds: FeedServer) -> None:
    port = int(feeds.base_url.rsplit(":", 1)[1])
    feeds.fail_next(
        "/daily.json",
        Fault(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
    )
    guard = PublicUrlGuard(resolve=lambda host: ["93.184.216.34"])
    with FeedClient(max_bytes=10_000, timeout=1, guard=guard, transport=_LocalDns(port)) as c:
        with pytest.raises(UnsafeUrl, match=r"non-public 169\.254\.169\.254"):
            c.get("http://feeds.example/daily.json")
    assert [path for path, _ in feeds.requests] == ["/daily.json"]  # metadata never asked


def test_a_gzip_body_of_several_members_is_read_whole(
    feeds: FeedServer, client: FeedClient
) -> None:
    body = json.dumps(items(3)).encode()
    split = len(body) // 2
    gzipped = gzip.compress(body[:split]) + gzip.compress(body[split:])
    feeds.fail_next(HF_PATH, Fault(body=gzipped, headers={"Content-Encoding": "gzip"}))
    papers, _ = fetch(feeds, client)
    assert [p.id for p in papers] == ["2510.00000", "2510.00001", "2510.00002"]


def test_a_corrupt_gzip_body_is_reported(feeds: FeedServer, client: FeedClient) -> None:
    feeds.fail_next(HF_PATH, Fault(body=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(FeedError, match="corrupt gzip body"):
        fetch(feeds, client)
