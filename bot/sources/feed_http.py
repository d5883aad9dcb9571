"""Fetching one feed response: bounded in size and time, retried when the server asks.

Every feed request goes through `FeedClient.get`, which

- streams the body and stops reading past `max_bytes`, counting bytes AFTER
  decompression (it decompresses itself, in bounded steps, so a gzip bomb
  never expands in memory);
- gives each request `timeout` seconds in all, not per read: a server sending
  a byte now and then never hits a read timeout, and would hold the daily
  ingest for ever;
- retries 429, 5xx, timeouts and dropped connections with exponential
  backoff, honouring `Retry-After` (seconds or an HTTP date) up to a cap;
- follows redirects itself, so a `guard` (see `public_url.py`) can vet every
  hop of a URL a chat user supplied;
- raises `FeedError` with one short line saying what went wrong.

`sleep` and `clock` are injectable so tests drive retries without waiting.
"""

from __future__ import annotations

import email.utils
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import httpx

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
BACKOFF_BASE = 1.0  # seconds; doubles per attempt
MAX_RETRY_AFTER = 120.0  # a server asking for longer is treated as down for this run
MAX_REDIRECTS = 5
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_DECOMPRESS_STEP = 64 * 1024  # max bytes inflated per zlib call
USER_AGENT = "paperbot/0.1 (+https://github.com/paperbot/paperbot)"

Guard = Callable[[httpx.URL], None]


class FeedError(Exception):
    """A feed could not be read. `str()` is one line, fit for a log or a terminal."""


class BodyTooLarge(FeedError):
    pass


class FeedClient:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float,
        guard: Guard | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.guard = guard
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, params: Mapping[str, str | int] | None = None) -> bytes:
        """The body of a 200 response, retried as needed. Raises `FeedError`."""
        request_url = httpx.URL(url, params=params)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                status, headers, body = self._fetch(request_url)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = _transport_reason(exc, request_url)
                wait = None
            else:
                if status == 200:
                    return body
                reason = f"HTTP {status} from {_where(request_url)}"
                if status not in _RETRY_STATUS:
                    raise FeedError(reason)
                wait = retry_after(headers.get("retry-after"))
                if wait is not None and wait > MAX_RETRY_AFTER:
                    raise FeedError(f"{reason}, Retry-After {wait:.0f} s is too long")
            if attempt == MAX_ATTEMPTS:
                raise FeedError(f"{reason} (gave up after {MAX_ATTEMPTS} attempts)")
            delay = wait if wait is not None else BACKOFF_BASE * 2 ** (attempt - 1)
            log.warning("%s; retrying in %.1f s (attempt %d)", reason, delay, attempt)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, url: httpx.URL) -> tuple[int, httpx.Headers, bytes]:
        # httpx's timeout bounds each connect and read; this bounds the whole body
        # (to the timeout plus at most one read's).
        deadline = time.monotonic() + self.timeout
        for _ in range(MAX_REDIRECTS + 1):
            if self.guard is not None:
                self.guard(url)
            with self._http.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    url = url.join(response.headers["location"])
                    continue
                if response.status_code != 200:
                    return response.status_code, response.headers, b""
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise BodyTooLarge(self._too_large(url))
                body = self._read_bounded(response, url, deadline)
                return 200, response.headers, body
        raise FeedError(f"more than {MAX_REDIRECTS} redirects from {_where(url)}")

    def _read_bounded(self, response: httpx.Response, url: httpx.URL, deadline: float) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        chunks: list[bytes] = []
        size = 0
        for chunk in _decoded(response.iter_raw(), encoding, url):
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge(self._too_large(url))
            if time.monotonic() > deadline:
                # A timeout like httpx's own: retried, then reported as one.
                raise httpx.ReadTimeout(
                    "the whole response took too long", request=response.request
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: httpx.URL) -> str:
        return f"response from {_where(url)} is larger than {self.max_bytes} bytes"


def _decoded(raw: Iterator[bytes], encoding: str, url: httpx.URL) -> Iterator[bytes]:
    """Inflate gzip/deflate in steps of at most `_DECOMPRESS_STEP` output bytes."""
    if encoding in ("identity", ""):
        yield from raw
        return
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise FeedError(f"unsupported Content-Encoding {encoding[:20]!r} from {_where(url)}")
    # wbits 47 accepts gzip and zlib headers.
    inflater = zlib.decompressobj(47)
    try:
        for chunk in raw:
            data = chunk
            while data:
                yield inflater.decompress(data, _DECOMPRESS_STEP)
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    # gzip allows several members back to back: go on with the next one.
                    # (At the end of a member, unused_data holds all input after it.)
                    data, inflater = inflater.unused_data, zlib.decompressobj(47)
        # All input went through decompress() above, so this holds at most a few bytes.
        yield inflater.flush()
    except zlib.error as exc:
        raise FeedError(f"corrupt {encoding} body from {_where(url)}: {exc}") from None
    if not inflater.eof:
        raise FeedError(f"truncated {encoding} body from {_where(url)}")


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _where(url: httpx.URL) -> str:
    # Host and path only: query strings can carry tokens on other feeds.
    return f"{url.host}{url.path}"


def _transport_reason(exc: Exception, url: httpx.URL) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out reading {_where(url)}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection to {url.host} broke off mid-response ({exc})"
    return f"cannot reach {url.host} ({type(exc).__name__}: {exc})"
