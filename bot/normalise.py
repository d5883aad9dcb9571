"""Cleaning paper text and ids before they are stored.

Titles and abstracts stay plain text: escaping belongs to each adapter, which
knows its own markup.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

# What a paper's dates and counts can be. arXiv began in 1991; a feed's clock may
# run ahead of ours, but not by a week. Outside these, a value is a feed's fault,
# and would fail at the database (Python dates stop at 9999, PostgreSQL's
# integer at 2**31 - 1) and abort the whole ingest.
EARLIEST = datetime(1991, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=7)
MAX_COUNT = 2**31 - 1

_ARXIV_NEW = re.compile(r"^(\d{4}\.\d{4,5})(v\d+)?$")
_ARXIV_OLD = re.compile(r"^([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?$")
_WS = re.compile(r"\s+")
# Zero-width and bidi-control characters carry no meaning in a title and are
# used to spoof text; they are dropped. Other control characters likewise.
_INVISIBLE = dict.fromkeys(
    [
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,
        0x202A,
        0x202B,
        0x202C,
        0x202D,
        0x202E,
        0x2066,
        0x2067,
        0x2068,
        0x2069,
        0x200E,
        0x200F,
    ]
)


def arxiv_id(raw: str) -> str:
    """Canonical arXiv id: strips a URL prefix and a version suffix.

    >>> arxiv_id("https://arxiv.org/abs/2509.04664v2")
    '2509.04664'
    """
    value = raw.strip()
    for prefix in ("http://", "https://"):
        if value.startswith(prefix):
            value = value.split("/abs/", 1)[-1].split("/pdf/", 1)[-1]
    value = value.removesuffix(".pdf")
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.match(value)
        if match:
            return match.group(1)
    raise ValueError(f"not an arXiv id: {raw[:80]!r}")


def clean_text(raw: str, *, max_chars: int | None = None) -> str:
    """Plain text on one line: invisible characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", raw)
    text = text.translate(_INVISIBLE)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _WS.sub(" ", text).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def abs_url(paper_id: str) -> str | None:
    try:
        return f"https://arxiv.org/abs/{arxiv_id(paper_id)}"
    except ValueError:
        return None


def pdf_url(paper_id: str) -> str | None:
    try:
        return f"https://arxiv.org/pdf/{arxiv_id(paper_id)}"
    except ValueError:
        return None


def timestamp(raw: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (`plausible_instant`).

    Raises ValueError if it is not one, or is no date a paper can have.
    """
    return plausible_instant(datetime.fromisoformat(raw.strip().replace("Z", "+00:00")))


def plausible_instant(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; a naive one is taken as UTC.

    Raises ValueError if it is no date a paper can have.
    """
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's end
        raise ValueError(f"{value.isoformat()!r} is out of range") from None
    if not plausible_day(utc.date()):
        raise ValueError(f"{value.isoformat()!r} is no date a paper can have")
    return utc


def plausible_day(day: date) -> bool:
    return EARLIEST.date() <= day <= (datetime.now(UTC) + FUTURE_SLACK).date()
