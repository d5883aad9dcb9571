"""Paper sources. Each is a small class whose `fetch()` yields `PaperIn`.

A source reports items it had to reject through its `rejected` counter
(reason -> count) and logs each one, so an ingest run can show why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from bot.domain import PaperIn


class Source(Protocol):
    name: str
    rejected: Counter[str]

    def fetch(self) -> Iterator[PaperIn]: ...
