"""Turn saved text pages of Daily Papers listings into the bundled sample feed.

Run once when the seed pages change, and commit the result:

    python -m bot.sources.seed_pages ../shared/seeds bot/data/sample_papers.jsonl

A page is: a header, then per paper a title line, a blank line, the abstract,
and optionally a metadata block ("• 4 authors" or an organisation, "·", then a
date with an optional trailing upvote count).

The pages carry no arXiv ids and no listing days, so ids are derived from the
title ("sample:<hash>", stable across runs) and the papers are spread over
consecutive listing days, oldest publication first, like a daily feed; the
last listing day is the newest publication date on the pages.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bot.normalise import clean_text

PAPERS_PER_DAY = 30
_HEADER = {
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
}
_AUTHORS = re.compile(r"^\s*•\s*(\d+)\s+authors?\s*$")
_DATE = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})(?:,\s*(\d{4}))?(?:\s+(\d+))?$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_DEFAULT_YEAR = 2025  # a date shown without a year is in the page's own year


@dataclass
class SeedPaper:
    id: str
    title: str
    abstract: str
    authors_count: int | None
    published: date | None
    upvotes: int
    organization: str | None


def parse_page(text: str) -> Iterator[SeedPaper]:
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p.strip()]
    # Skip the header: fixed lines and the page's own date.
    while paragraphs and (paragraphs[0].strip() in _HEADER or _DATE.match(paragraphs[0].strip())):
        paragraphs.pop(0)
    i = 0
    while i + 1 < len(paragraphs):
        title, abstract = paragraphs[i].strip(), paragraphs[i + 1].strip()
        i += 2
        meta: list[str] = []
        if i < len(paragraphs) and _is_meta(paragraphs[i]):
            meta = [line.strip() for line in paragraphs[i].splitlines() if line.strip()]
            i += 1
        yield _paper(title, abstract, meta)


def _is_meta(paragraph: str) -> bool:
    lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
    return bool(lines) and (lines[-1] == "·" or _DATE.match(lines[-1]) is not None) and "·" in lines


def _paper(title: str, abstract: str, meta: list[str]) -> SeedPaper:
    authors = org = None
    published = None
    upvotes = 0
    for line in meta:
        if m := _AUTHORS.match(line):
            authors = int(m.group(1))
        elif m := _DATE.match(line):
            month, day, year, votes = m.groups()
            published = date(int(year or _DEFAULT_YEAR), _MONTHS[month], int(day))
            upvotes = int(votes or 0)
        elif line != "·":
            org = line
    clean_title = clean_text(title)
    digest = hashlib.sha1(clean_title.lower().encode(), usedforsecurity=False).hexdigest()[:12]
    return SeedPaper(
        id=f"sample:{digest}",
        title=clean_title,
        abstract=clean_text(abstract),
        authors_count=authors,
        published=published,
        upvotes=upvotes,
        organization=org,
    )


def build(seed_dir: Path) -> list[dict[str, object]]:
    papers: dict[str, SeedPaper] = {}
    for page in sorted(seed_dir.glob("*.txt")):
        for paper in parse_page(page.read_text(encoding="utf-8")):
            known = papers.get(paper.id)
            if known is None or (paper.published and not known.published):
                papers[paper.id] = paper
    ordered = sorted(papers.values(), key=lambda p: (p.published or date.min, p.id))
    days = -(-len(ordered) // PAPERS_PER_DAY)
    last_day = max(p.published for p in ordered if p.published)
    rows: list[dict[str, object]] = []
    for index, paper in enumerate(ordered):
        listed_on = last_day - timedelta(days=days - 1 - index // PAPERS_PER_DAY)
        rows.append(
            {
                "id": paper.id,
                "title": paper.title,
                "abstract": paper.abstract,
                "authors": [paper.organization] if paper.organization else [],
                "authors_count": paper.authors_count,
                "published": paper.published.isoformat() if paper.published else None,
                "listed_on": listed_on.isoformat(),
                "upvotes": paper.upvotes,
            }
        )
    return rows


def main(argv: list[str]) -> None:
    seed_dir, out = Path(argv[0]), Path(argv[1])
    rows = build(seed_dir)
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} papers to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
