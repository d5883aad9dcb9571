"""A user's interests, built from their reactions and follows.

Several interests per user: every liked paper and every followed topic is an
exemplar, so "RL" and "medical imaging" stay two peaks instead of one blurred
mean. Dislikes push candidates down. Older feedback weighs less.

The model is a pure function of the current feedback, which is what makes a
reaction followed by its removal leave the model exactly as it was.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np

HALF_LIFE_DAYS = 60.0
DISLIKE_WEIGHT = 0.5
SAVE_WEIGHT = 0.5


@dataclass(frozen=True)
class Exemplar:
    label: str  # a paper title or a followed topic
    kind: str  # "liked" | "saved" | "follow"


@dataclass(frozen=True)
class InterestModel:
    positives: np.ndarray  # (p, dim)
    weights: np.ndarray  # (p,)
    exemplars: tuple[Exemplar, ...]
    negatives: np.ndarray  # (q, dim)
    negative_weights: np.ndarray  # (q,)

    @property
    def empty(self) -> bool:
        return len(self.exemplars) == 0

    def score(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores for candidate vectors, and the exemplar behind each score."""
        n = candidates.shape[0]
        if self.empty:
            return np.zeros(n, dtype=np.float32), np.full(n, -1)
        sims = candidates @ self.positives.T * self.weights
        best = sims.argmax(axis=1)
        scores = sims[np.arange(n), best]
        if len(self.negatives):
            penalty = (candidates @ self.negatives.T * self.negative_weights).max(axis=1)
            scores = scores - DISLIKE_WEIGHT * np.maximum(penalty, 0.0)
        return scores.astype(np.float32), best

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            positives=self.positives,
            weights=self.weights,
            negatives=self.negatives,
            negative_weights=self.negative_weights,
            labels=np.array([e.label for e in self.exemplars], dtype=object),
            kinds=np.array([e.kind for e in self.exemplars], dtype=object),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> InterestModel:
        data = np.load(io.BytesIO(blob), allow_pickle=True)  # our own bytes, never user input
        return cls(
            positives=data["positives"],
            weights=data["weights"],
            exemplars=tuple(
                Exemplar(str(lbl), str(k))
                for lbl, k in zip(data["labels"], data["kinds"], strict=True)
            ),
            negatives=data["negatives"],
            negative_weights=data["negative_weights"],
        )


@dataclass(frozen=True)
class Feedback:
    vector: np.ndarray
    title: str
    signal: int  # +1 like, -1 dislike, 0 saved only
    saved: bool
    at: datetime


def decay(at: datetime, now: datetime) -> float:
    age_days = max((now - at).total_seconds() / 86400.0, 0.0)
    return float(0.5 ** (age_days / HALF_LIFE_DAYS))


def build(
    feedback: list[Feedback],
    follows: list[tuple[str, np.ndarray]],
    now: datetime,
    dim: int,
) -> InterestModel:
    pos: list[np.ndarray] = []
    weights: list[float] = []
    exemplars: list[Exemplar] = []
    neg: list[np.ndarray] = []
    neg_weights: list[float] = []
    for topic, vector in follows:
        pos.append(vector)
        weights.append(1.0)
        exemplars.append(Exemplar(topic, "follow"))
    for item in feedback:
        w = decay(item.at, now)
        if item.signal > 0:
            pos.append(item.vector)
            weights.append(w)
            exemplars.append(Exemplar(item.title, "liked"))
        elif item.signal < 0:
            neg.append(item.vector)
            neg_weights.append(w)
        elif item.saved:
            pos.append(item.vector)
            weights.append(SAVE_WEIGHT * w)
            exemplars.append(Exemplar(item.title, "saved"))
    empty = np.zeros((0, dim), dtype=np.float32)
    return InterestModel(
        positives=np.array(pos, dtype=np.float32) if pos else empty,
        weights=np.array(weights, dtype=np.float32),
        exemplars=tuple(exemplars),
        negatives=np.array(neg, dtype=np.float32) if neg else empty,
        negative_weights=np.array(neg_weights, dtype=np.float32),
    )


_WORD = __import__("re").compile(r"[A-Za-z][A-Za-z0-9\-]{2,}")
_STOP = frozenset(
    "the and for with from that this are via using towards toward into over under not its our "
    "their can large model models learning based study paper approach method methods new neural "
    "deep data efficient fast via all you need".split()
)


def describe(
    titles: list[str], top: int = 5
) -> list[tuple[tuple[str, ...], float, tuple[str, ...]]]:
    """Top interests as keywords with example titles, from liked papers' titles."""
    counts: dict[str, list[str]] = {}
    for title in titles:
        for word in {w.lower() for w in _WORD.findall(title)} - _STOP:
            counts.setdefault(word, []).append(title)
    ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    total = max(len(titles), 1)
    return [((word,), len(ex) / total, tuple(ex[:2])) for word, ex in ranked]
