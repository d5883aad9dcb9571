"""A local stand-in for the Hugging Face Daily Papers API and the arXiv API.

    with FeedServer() as feeds:
        feeds.days["2025-10-06"] = [daily_item("2510.00001", "Title", "Abstract")]
        feeds.arxiv_entries = [atom_entry("2510.00002v2", "Title", "Abstract", ["cs.CL"])]
        feeds.fail_next("/api/daily_papers", Fault(status=429, headers={"Retry-After": "7"}))
        ...  # point PAPERBOT_HF_API_URL at feeds.hf_url, PAPERBOT_ARXIV_API_URL at feeds.arxiv_url

It serves responses of the real shapes on 127.0.0.1 (a free port):

- `GET /api/daily_papers?date=YYYY-MM-DD&limit=N&p=P`: the day's items, `limit`
  per page, `[]` past the end and for a day without papers (a weekend);
  400 with a JSON error for a malformed date, as the real API does.
- `GET /api/query?search_query=cat:A OR cat:B&start=S&max_results=N`: an Atom
  feed of the entries in any of those categories (primary or cross-listed).

Faults queued with `fail_next(path, *faults)` are served first, one per
request: a status with headers (429 + Retry-After, 500), a stall longer than
the client's timeout, a body cut short of its Content-Length, a huge streamed
body, a body sent a byte at a time (each byte within the read timeout, the
whole never), or any raw body (non-JSON, an XML bomb, a gzip bomb). `requests` records
every request as (path, query) for assertions.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

HF_PATH = "/api/daily_papers"
ARXIV_PATH = "/api/query"


@dataclass
class Fault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall: float = 0.0  # seconds to wait before answering (longer than the client timeout)
    truncate: bool = False  # declare Content-Length, send half, close
    stream_bytes: int = 0  # stream this many bytes of filler (a huge body)
    trickle: float = (
        0.0  # send `body` a byte at a time, this many seconds apart (a feed that hangs)
    )


def daily_item(
    pid: str,
    title: str,
    abstract: str,
    *,
    day: str = "2025-10-06",
    upvotes: int = 12,
    github: str | None = "https://github.com/example/repo",
    **paper_extra: Any,
) -> dict[str, Any]:
    """One Daily Papers item, shaped like the real API's."""
    paper = {
        "id": pid,
        "authors": [
            {"_id": "68e1", "name": "Ada Lovelace", "hidden": False},
            {"_id": "68e2", "name": "Alan Turing", "hidden": False, "user": {"user": "alan"}},
        ],
        "publishedAt": f"{day}T13:45:12.000Z",
        "submittedOnDailyAt": f"{day}T03:12:00.000Z",
        "title": title,
        "summary": abstract,
        "upvotes": upvotes,
        "discussionId": "68e3",
        "ai_summary": f"{title} in one sentence.",
        "ai_keywords": ["large language models", "benchmarks"],
    }
    if github:
        paper |= {"githubRepo": github, "githubStars": 41}
    paper |= paper_extra
    return {
        "paper": paper,
        "publishedAt": f"{day}T13:45:12.000Z",
        "title": title,
        "summary": abstract,
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{pid}.png",
        "numComments": 2,
        "submittedBy": {"_id": "5f1", "name": "akhaliq", "fullname": "AK", "type": "user"},
        "organization": {"_id": "6a1", "name": "example-lab", "fullname": "Example Lab"},
        "isAuthorParticipating": False,
    }


def atom_entry(
    versioned_id: str,
    title: str,
    abstract: str,
    categories: list[str],
    *,
    published: str = "2025-10-06T17:59:59Z",
) -> dict[str, Any]:
    """One arXiv entry; `categories[0]` is the primary, the rest are cross-lists."""
    return {
        "id": versioned_id,
        "title": title,
        "abstract": abstract,
        "categories": categories,
        "published": published,
    }


def atom_feed(entries: list[dict[str, Any]], total: int, start: int) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        "<title>arXiv Query</title><id>http://arxiv.org/api/q</id>"
        f"<updated>2025-10-07T00:00:00-04:00</updated>"
        f"<opensearch:totalResults>{total}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>"
    ]
    for e in entries:
        cats = "".join(
            f'<category term="{escape(c)}" scheme="http://arxiv.org/schemas/atom"/>'
            for c in e["categories"]
        )
        parts.append(
            "<entry>"
            f"<id>http://arxiv.org/abs/{escape(e['id'])}</id>"
            f"<updated>{e['published']}</updated><published>{e['published']}</published>"
            f"<title>{escape(e['title'])}</title>"
            f"<summary>  {escape(e['abstract'])}\n  </summary>"
            "<author><name>Grace Hopper</name></author><author><name>Edsger Dijkstra</name></author>"
            f'<link href="http://arxiv.org/abs/{escape(e["id"])}" rel="alternate" type="text/html"/>'
            f'<link title="pdf" href="http://arxiv.org/pdf/{escape(e["id"])}" rel="related" '
            'type="application/pdf"/>'
            f'<arxiv:primary_category term="{escape(e["categories"][0])}" '
            'scheme="http://arxiv.org/schemas/atom"/>'
            f"{cats}</entry>"
        )
    parts.append("</feed>")
    return "".join(parts).encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up early is what half the faults provoke; anything else is a bug.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FeedServer:
    def __init__(self) -> None:
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.arxiv_entries: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hf_url(self) -> str:
        return self.base_url + HF_PATH

    @property
    def arxiv_url(self) -> str:
        return self.base_url + ARXIV_PATH

    def fail_next(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[path].extend(faults)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ serving
    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def _daily_papers(self, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        day = query.get("date", [""])[0]
        try:
            date.fromisoformat(day)
        except ValueError:
            return 400, json.dumps({"error": "Invalid date"}).encode(), "application/json"
        limit = int(query.get("limit", ["50"])[0])
        page = int(query.get("p", ["0"])[0])
        items = self.days.get(day, [])[page * limit : (page + 1) * limit]
        return 200, json.dumps(items).encode(), "application/json; charset=utf-8"

    def _arxiv(self, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        wanted = {
            term.strip().removeprefix("cat:")
            for term in query.get("search_query", [""])[0].split(" OR ")
        }
        start = int(query.get("start", ["0"])[0])
        size = int(query.get("max_results", ["10"])[0])
        hits = [e for e in self.arxiv_entries if wanted & set(e["categories"])]
        hits.sort(key=lambda e: e["published"], reverse=True)
        body = atom_feed(hits[start : start + size], len(hits), start)
        return 200, body, "application/atom+xml; charset=utf-8"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                with feeds._lock:
                    feeds.requests.append((url.path, query))
                fault = feeds._next_fault(url.path)
                if fault is not None:
                    self._serve_fault(fault)
                elif url.path == HF_PATH:
                    self._send(*feeds._daily_papers(query))
                elif url.path == ARXIV_PATH:
                    self._send(*feeds._arxiv(query))
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(
                self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _serve_fault(self, fault: Fault) -> None:
                if fault.stall:
                    time.sleep(fault.stall)
                if fault.truncate:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(fault.body) * 2))
                    self.end_headers()
                    self.wfile.write(fault.body)
                    self.close_connection = True
                    return
                if fault.trickle:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(fault.body)))
                    self.end_headers()
                    try:
                        for byte in fault.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(fault.trickle)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    self.close_connection = True
                    return
                if fault.stream_bytes:
                    # No Content-Length: the client must count as it reads.
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"[" + b" " * 65_534 + b"\n"
                    sent = 0
                    try:
                        while sent < fault.stream_bytes:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client stopped reading, as it should
                    self.close_connection = True
                    return
                self._send(
                    fault.status,
                    fault.body,
                    fault.headers.get("Content-Type", "application/json"),
                    {k: v for k, v in fault.headers.items() if k != "Content-Type"},
                )

        return Handler
