"""The bundled sample feed: papers from saved Daily Papers pages, available offline."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import quote_plus

from bot.domain import PaperIn

log = logging.getLogger(__name__)


def sample_path() -> Path:
    return Path(str(resources.files("bot") / "data" / "sample_papers.jsonl"))


class SampleSource:
    name = "sample"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or sample_path()
        self.rejected: Counter[str] = Counter()

    def fetch(self) -> Iterator[PaperIn]:
        with self.path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                try:
                    row = json.loads(line)
                    yield PaperIn(
                        id=row["id"],
                        title=row["title"],
                        abstract=row["abstract"],
                        authors=tuple(row.get("authors") or ()),
                        published=(
                            datetime.combine(
                                date.fromisoformat(row["published"]), datetime.min.time(), UTC
                            )
                            if row.get("published")
                            else None
                        ),
                        listed_on=date.fromisoformat(row["listed_on"]),
                        source=self.name,
                        upvotes=int(row.get("upvotes") or 0),
                        # No arXiv id on the seed pages: link to the title on Hugging Face.
                        url="https://huggingface.co/papers?q=" + quote_plus(row["title"]),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("sample feed line %d rejected: %s", line_no, exc)
                    self.rejected["malformed sample line"] += 1
