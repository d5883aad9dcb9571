"""Choosing picks from candidate papers: relevance, cold-start prior, diversity, reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.catalog import Catalog
from bot.interest_model import InterestModel

MMR_LAMBDA = 0.7  # relevance vs. novelty among the picks
PRIOR_WEIGHT = 0.5
POPULARITY_WEIGHT = 0.15
RECENCY_WEIGHT = 0.05
REASON_TITLE_CHARS = 60


@dataclass(frozen=True)
class Ranked:
    row: int
    score: float
    reason: str


def rank(
    catalog: Catalog,
    rows: np.ndarray,
    model: InterestModel,
    *,
    limit: int,
    prior: np.ndarray | None = None,
    explore: bool = True,
) -> list[Ranked]:
    """Rank candidate `rows` of the catalogue for one user (or channel) and pick `limit`."""
    if limit <= 0 or len(rows) == 0:
        return []
    vectors = catalog.vectors[rows]
    personal, best = model.score(vectors)
    popularity = _popularity(catalog.upvotes[rows])
    recency = _recency(catalog, rows)
    prior_scores = vectors @ prior if prior is not None else np.zeros(len(rows), np.float32)
    relevance = (
        personal
        + PRIOR_WEIGHT * prior_scores * (0.0 if not model.empty else 1.0)
        + POPULARITY_WEIGHT * popularity
        + RECENCY_WEIGHT * recency
    )
    chosen = _mmr(vectors, relevance, limit - 1 if explore and limit > 1 else limit)
    if explore and limit > 1 and len(rows) > len(chosen):
        chosen.append(_exploration(vectors, relevance, chosen))
    out = []
    for i in chosen:
        reason = _reason(catalog, rows[i], model, int(best[i]), personal[i], prior_scores[i])
        out.append(Ranked(row=int(rows[i]), score=float(relevance[i]), reason=reason))
    return out


def _popularity(upvotes: np.ndarray) -> np.ndarray:
    scaled = np.log1p(np.maximum(upvotes, 0).astype(np.float32))
    top = scaled.max() if len(scaled) else 0.0
    return scaled / top if top > 0 else scaled


def _recency(catalog: Catalog, rows: np.ndarray) -> np.ndarray:
    days = catalog.listed_on[rows].astype("int64").astype(np.float32)
    span = days.max() - days.min() if len(days) else 0.0
    return (days - days.min()) / span if span > 0 else np.zeros_like(days)


def _mmr(vectors: np.ndarray, relevance: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    remaining = np.ones(len(relevance), dtype=bool)
    max_sim = np.full(len(relevance), -1.0, dtype=np.float32)
    for _ in range(min(k, len(relevance))):
        novelty_penalty = max_sim if chosen else 0.0
        mmr = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * novelty_penalty
        mmr = np.where(remaining, mmr, -np.inf)
        pick = int(mmr.argmax())
        chosen.append(pick)
        remaining[pick] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[pick])
    return chosen


def _exploration(vectors: np.ndarray, relevance: np.ndarray, chosen: list[int]) -> int:
    """The exploration slot: the best-ranked paper among those least like the picks so far.

    It keeps the model from collapsing onto one topic, and its feedback teaches the most.
    """
    sims = vectors @ vectors[chosen].T if chosen else np.zeros((len(vectors), 1))
    closeness = sims.max(axis=1)
    candidates = [i for i in np.argsort(closeness) if i not in chosen]
    pool = candidates[: max(1, len(candidates) // 3)]
    return int(max(pool, key=lambda i: relevance[i]))


def _reason(
    catalog: Catalog, row: int, model: InterestModel, exemplar: int, personal: float, prior: float
) -> str:
    if exemplar >= 0 and personal > 0.2:
        ex = model.exemplars[exemplar]
        label = _short(ex.label)
        if ex.kind == "follow":
            return f"matches your follow: {label}"
        verb = "liked" if ex.kind == "liked" else "saved"
        return f"close to '{label}' that you {verb}"
    if prior > 0.3:
        return "popular with people in this channel"
    upvotes = int(catalog.upvotes[row])
    if upvotes > 0:
        return f"popular today ({upvotes} upvotes)"
    return "something different, to learn your taste"


def _short(text: str) -> str:
    return text if len(text) <= REASON_TITLE_CHARS else text[: REASON_TITLE_CHARS - 1] + "…"
