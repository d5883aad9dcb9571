"""Choosing picks from candidate papers: relevance, cold-start prior, diversity, reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.catalog import Catalog
from bot.interest_model import InterestModel

MMR_LAMBDA = 0.7  # relevance vs. novelty among the picks
MMR_POOL = 50  # diversify among the most relevant candidates only; the rest cannot win anyway
# With no signal from the person, the workspace prior, the day's centre and
# popularity are weighed alike (each is scaled to at most 1).
PRIOR_WEIGHT = 0.5
CENTRALITY_WEIGHT = 0.5
COLD_POPULARITY_WEIGHT = 0.5
# With a model, popularity and recency only break near-ties.
POPULARITY_WEIGHT = 0.15
RECENCY_WEIGHT = 0.1
PERSONAL_REASON_MIN = 0.2  # below this similarity, "close to X" would not be true
PRIOR_REASON_MIN = 0.3
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
    prior_reason: str = "liked by people in your workspace",
    explore: bool = True,
) -> list[Ranked]:
    """Rank candidate `rows` of the catalogue for one user (or channel) and pick `limit`.

    Relevance is the interest model's score, or with no signal at all the
    workspace/channel prior; popularity and recency add a little to both. The
    picks are diversified with MMR, and the last one is an exploration slot.
    """
    if limit <= 0 or len(rows) == 0:
        return []
    vectors = catalog.vectors[rows]
    personal, best = model.score(vectors, catalog.terms[rows])
    semantic = _nearest_exemplar_similarity(model, vectors, best)
    prior_scores = vectors @ prior if prior is not None else np.zeros(len(rows), np.float32)
    popularity = _popularity(catalog.upvotes[rows])
    if model.empty:
        relevance = (
            PRIOR_WEIGHT * prior_scores
            + CENTRALITY_WEIGHT * _centrality(vectors)
            + COLD_POPULARITY_WEIGHT * popularity
        )
    else:
        relevance = personal + POPULARITY_WEIGHT * popularity
    relevance = relevance + RECENCY_WEIGHT * _recency(catalog, rows)
    explore = explore and limit > 1 and len(rows) > limit
    pool = np.argsort(-relevance, kind="stable")[:MMR_POOL]
    import os

    if os.environ.get("MMR") == "off":
        chosen = [int(i) for i in pool[: limit - int(explore)]]
    elif os.environ.get("MMR") == "norm":
        r = relevance[pool]
        span = float(r.max() - r.min())
        r = (r - r.min()) / span if span > 0 else np.zeros_like(r)
        chosen = [int(pool[i]) for i in _mmr(vectors[pool], r, limit - int(explore))]
    else:
        chosen = [int(pool[i]) for i in _mmr(vectors[pool], relevance[pool], limit - int(explore))]
    if explore:
        chosen.append(_exploration(vectors, relevance, chosen))
    out = []
    for position, i in enumerate(chosen):
        exploring = explore and position == len(chosen) - 1
        reason = _reason(
            catalog, int(rows[i]), model, int(best[i]), float(semantic[i]),
            float(prior_scores[i]), prior_reason, exploring,
        )  # fmt: skip
        out.append(Ranked(row=int(rows[i]), score=float(relevance[i]), reason=reason))
    return out


def _nearest_exemplar_similarity(
    model: InterestModel, vectors: np.ndarray, best: np.ndarray
) -> np.ndarray:
    if model.empty:
        return np.zeros(len(vectors), dtype=np.float32)
    return np.einsum("ij,ij->i", vectors, model.positives[best])


def _centrality(vectors: np.ndarray) -> np.ndarray:
    """Closeness to the day's centre: with nothing known about a person, typical papers
    of the day are likelier to interest them than outliers."""
    centre = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centre))
    return vectors @ (centre / norm) if norm > 0 else np.zeros(len(vectors), np.float32)


def _popularity(upvotes: np.ndarray) -> np.ndarray:
    scaled = np.log1p(np.maximum(upvotes, 0).astype(np.float32))
    top = scaled.max() if len(scaled) else 0.0
    return scaled / top if top > 0 else scaled


def _recency(catalog: Catalog, rows: np.ndarray) -> np.ndarray:
    days = catalog.listed_on[rows].astype("int64").astype(np.float32)
    span = days.max() - days.min() if len(days) else 0.0
    return (days - days.min()) / span if span > 0 else np.zeros_like(days)


def _mmr(vectors: np.ndarray, relevance: np.ndarray, k: int) -> list[int]:
    """Maximal marginal relevance: each pick trades relevance against closeness to earlier picks."""
    chosen: list[int] = []
    remaining = np.ones(len(relevance), dtype=bool)
    max_sim = np.zeros(len(relevance), dtype=np.float32)
    for _ in range(min(k, len(relevance))):
        mmr = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * max_sim
        pick = int(np.where(remaining, mmr, -np.inf).argmax())
        chosen.append(pick)
        remaining[pick] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[pick])
    return chosen


def _exploration(vectors: np.ndarray, relevance: np.ndarray, chosen: list[int]) -> int:
    """The exploration slot: the most relevant paper among the third least like the picks.

    It keeps the model from collapsing onto one topic, and its feedback teaches the most.
    """
    closeness = (vectors @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(vectors))
    closeness[chosen] = np.inf
    order = np.argsort(closeness, kind="stable")
    pool = order[: max(1, (len(vectors) - len(chosen)) // 3)]
    return int(pool[np.argmax(relevance[pool])])


def _reason(
    catalog: Catalog,
    row: int,
    model: InterestModel,
    exemplar: int,
    similarity: float,
    prior: float,
    prior_reason: str,
    exploring: bool,
) -> str:
    if exploring and not model.empty:
        return "something different, to learn what else you like"
    if exemplar >= 0 and similarity > PERSONAL_REASON_MIN:
        ex = model.exemplars[exemplar]
        label = _short(ex.label)
        if ex.kind == "follow":
            return f"matches your follow: {label}"
        verb = "liked" if ex.kind == "liked" else "saved"
        return f"close to '{label}' that you {verb}"
    if model.empty and prior > PRIOR_REASON_MIN:
        return prior_reason
    upvotes = int(catalog.upvotes[row])
    if upvotes > 0:
        return f"popular today ({upvotes} upvote{'s' if upvotes != 1 else ''})"
    if exploring or model.empty:
        return "new today, to learn what you like"
    return "fits what you reacted to"


def _short(text: str) -> str:
    return text if len(text) <= REASON_TITLE_CHARS else text[: REASON_TITLE_CHARS - 1] + "…"
