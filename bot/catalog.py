"""The in-memory catalogue of papers and their vectors, the matrix ranking works on.

Loading thousands of vectors per request would dominate `today()`, so the
catalogue is loaded once per process and reloaded only when the papers table
changes (its row count or newest update moved).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date

import numpy as np
import sqlalchemy as sa

from bot.database import Database
from bot.models import Paper, PaperEmbedding


@dataclass(frozen=True)
class Catalog:
    ids: list[str]
    index: dict[str, int]
    vectors: np.ndarray  # (n, dim) float32, L2-normalised; zero rows for papers not yet embedded
    listed_on: np.ndarray  # (n,) datetime64[D]
    upvotes: np.ndarray  # (n,) int
    titles: list[str]

    def rows_on_or_after(self, first: date, last: date) -> np.ndarray:
        lo, hi = np.datetime64(first, "D"), np.datetime64(last, "D")
        return np.flatnonzero((self.listed_on >= lo) & (self.listed_on <= hi))

    @property
    def latest_day(self) -> date | None:
        if not self.ids:
            return None
        return self.listed_on.max().astype(object)


class CatalogCache:
    def __init__(self, db: Database, model: str, dim: int) -> None:
        self._db = db
        self._model = model
        self._dim = dim
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._catalog: Catalog | None = None

    def get(self) -> Catalog:
        with self._db.read() as session:
            stamp = tuple(
                session.execute(
                    sa.select(
                        sa.func.count(Paper.id),
                        sa.func.max(Paper.updated_at),
                        sa.select(sa.func.count())
                        .select_from(PaperEmbedding)
                        .where(PaperEmbedding.model == self._model)
                        .scalar_subquery(),
                    )
                ).one()
            )
        with self._lock:
            if self._catalog is None or stamp != self._stamp:
                self._catalog = self._load()
                self._stamp = stamp
            return self._catalog

    def _load(self) -> Catalog:
        with self._db.read() as session:
            rows = session.execute(
                sa.select(
                    Paper.id, Paper.title, Paper.listed_on, Paper.upvotes, PaperEmbedding.vector
                )
                .outerjoin(
                    PaperEmbedding,
                    sa.and_(
                        PaperEmbedding.paper_id == Paper.id, PaperEmbedding.model == self._model
                    ),
                )
                .order_by(Paper.listed_on, Paper.id)
            ).all()
        vectors = np.zeros((len(rows), self._dim), dtype=np.float32)
        for i, row in enumerate(rows):
            if row.vector is not None:
                vectors[i] = np.frombuffer(row.vector, dtype=np.float32, count=self._dim)
        ids = [r.id for r in rows]
        return Catalog(
            ids=ids,
            index={pid: i for i, pid in enumerate(ids)},
            vectors=vectors,
            listed_on=np.array([r.listed_on for r in rows], dtype="datetime64[D]"),
            upvotes=np.array([r.upvotes for r in rows], dtype=np.int64),
            titles=[r.title for r in rows],
        )
