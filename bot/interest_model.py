"""A user's interests, built from their reactions and follows.

Two views of the same feedback, each standardised over the candidates, then added:

- Keywords: which words name the user's interests. A like says "one of this
  paper's words is what I read", so each liked paper (and each follow) spreads
  its weight over its words; a dislike says "none of these", so it damps every
  word it contains. A candidate scores the weight of the words it contains.
  Words of one interest add up over its likes, and "RL" and "medical imaging"
  each keep their own words: several interests stay apart. Chosen by
  measurement over a per-user LinearSVC on tf-idf, arxiv-sanity-lite's model,
  which it replaced (`paperbot eval`, docs/recommender-log.md).
- Semantic: exemplar nearest-neighbour on the sentence embeddings. Every liked
  paper and followed topic is an exemplar, so the explanation of a pick is a
  real paper ("close to 'X' that you liked"), paraphrases without shared words
  still match, and a dislike pushes its neighbours down.

Older feedback weighs less (half-life `HALF_LIFE_DAYS`). The model is a pure
function of the current feedback, follows, catalogue and time: a reaction
followed by its removal leaves it exactly as it was.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date

import numpy as np
import scipy.sparse as sp

from bot.catalog import Catalog

HALF_LIFE_DAYS = 60.0
DISLIKE_WEIGHT = 0.5  # how hard the nearest dislike pushes a candidate down
SAVE_WEIGHT = 0.5  # a bookmark is interest, but weaker than a 👍
# How much of a word's keyword weight survives each dislike of a paper that
# contains it. Not 0: people also 👎 a weak paper on their own topic, and one
# such 👎 must not silence the topic's name for good. Chosen a priori; measured
# (docs/recommender-log.md) 0 to 0.5 all beat the classifier this model replaced
# on both topic sets.
DISLIKE_KEEPS = 0.3
# Passes of "which word is each like about?" (see `_keyword_weights`): the second
# lets likes that share a word pool their weight on it. Run to convergence, the
# passes pour every like onto one word the likes share, however generic, and
# lose (measured, docs/recommender-log.md).
KEYWORD_PASSES = 2
_NORMAL = float(np.finfo(np.float32).tiny)  # the smallest normal float32
SHORTLIST = 1_000  # candidates given the full score; a day rarely has more
# Built models kept per process. A new user's model is ~0.2 MB (mostly its keyword
# weights, one per word of the vocabulary), one with a year of daily likes ~3 MB
# (bench/history.py): thousands of the first, a hundred of the second.
MODEL_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Exemplar:
    label: str  # a paper title or a followed topic
    kind: str  # "liked" | "saved" | "follow"
    row: int  # catalogue row, -1 for a follow
    forms: tuple[int, ...] = ()  # a follow's `Follow.forms`


@dataclass(frozen=True)
class Feedback:
    """Feedback on papers, one entry per paper, as columns: a first call of the day
    reads up to 2,000 entries (1,000 reactions, as many skipped picks), and an
    object per entry was a third of building the model (bench/history.py)."""

    rows: np.ndarray  # (n,) int64: catalogue rows of the papers
    signals: np.ndarray  # (n,) int8: +1 like, -1 dislike, 0 saved only
    saved: np.ndarray  # (n,) bool
    days: np.ndarray  # (n,) int64: `date.toordinal()` of the day it was given
    # (n,) float64: less than 1 for weaker evidence than a reaction (a skipped pick)
    weights: np.ndarray

    @classmethod
    def of(cls, items: Sequence[tuple[int, int, bool, int, float]]) -> Feedback:
        """From (row, signal, saved, day ordinal, weight) tuples."""
        rows, signals, saved, days, weights = zip(*items, strict=True) if items else ((),) * 5
        return cls(
            np.array(rows, dtype=np.int64),
            np.array(signals, dtype=np.int8),
            np.array(saved, dtype=bool),
            np.array(days, dtype=np.int64),
            np.array(weights, dtype=np.float64),
        )

    @classmethod
    def concat(cls, parts: Sequence[Feedback]) -> Feedback:
        """Several people's feedback as one (a channel's members)."""
        if not parts:
            return cls.of(())
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


@dataclass(frozen=True)
class Follow:
    topic: str
    vector: np.ndarray  # semantic embedding of the topic text
    # Terms that are other forms of the topic's words (`Catalog.word_forms`): they
    # count as its words in the keyword view.
    forms: tuple[int, ...] = ()


@dataclass(frozen=True)
class InterestModel:
    positives: np.ndarray  # (p, dim) semantic exemplars
    weights: np.ndarray  # (p,)
    exemplars: tuple[Exemplar, ...]
    negatives: np.ndarray  # (q, dim)
    negative_weights: np.ndarray  # (q,)
    keywords: np.ndarray | None  # (terms,) how strongly each term names an interest

    @functools.cached_property
    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """Likes and dislikes as one (p + q, dim) matrix with their weights: scoring
        10,000 candidates is memory-bound, so one pass over them instead of two. The
        exploration slot reads the same matrix (`ranking._exploration`): a copy of
        its own cost a year-long user 0.5 ms a call."""
        matrix = np.vstack([self.positives, self.negatives])
        weights = np.r_[self.weights, self.negative_weights].astype(np.float32)
        return matrix, weights

    @property
    def empty(self) -> bool:
        return not self.exemplars

    @functools.cached_property
    def nbytes(self) -> int:
        """Memory held, counting the stacked copy of the vectors that scoring makes."""
        vectors = self.positives.nbytes + self.negatives.nbytes
        keywords = 0 if self.keywords is None else self.keywords.nbytes
        return 2 * vectors + self.weights.nbytes + self.negative_weights.nbytes + keywords

    @functools.cached_property
    def liked_weight(self) -> float:
        """How much the person has liked or saved, older and saved papers counting less."""
        return float(
            sum(w for w, e in zip(self.weights, self.exemplars, strict=True) if e.row >= 0)
        )

    @functools.cached_property
    def _direction(self) -> np.ndarray:
        """All likes minus dislikes as one vector: a cheap first look at many candidates."""
        direction = self.weights @ self.positives
        if len(self.negatives):
            direction = direction - DISLIKE_WEIGHT * (self.negative_weights @ self.negatives)
        return direction.astype(np.float32)

    def score(self, vectors: np.ndarray, presence: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Relevance of candidates (their vectors and `presence` rows), and the exemplar behind each.

        Beyond `SHORTLIST` candidates, scoring is two-stage: the keyword score
        and one summary direction pick the `SHORTLIST` best in one cheap pass,
        and only those get the full score; the rest rank below all of them.
        """
        n = vectors.shape[0]
        if self.empty:
            return np.zeros(n, dtype=np.float32), np.full(n, -1)
        lexical = presence @ self.keywords if self.keywords is not None else None
        if n <= SHORTLIST:
            return self._full_score(vectors, lexical)
        coarse = standardised(vectors @ self._direction)
        if lexical is not None:
            coarse = coarse + standardised(lexical)
        keep = np.argpartition(-coarse, SHORTLIST - 1)[:SHORTLIST]
        fine, fine_best = self._full_score(
            vectors[keep], None if lexical is None else lexical[keep]
        )
        scores = np.full(n, float(fine.min()) - 1.0, dtype=np.float32)
        best = np.zeros(n, dtype=np.int64)
        scores[keep], best[keep] = fine, fine_best
        return scores, best

    def _full_score(
        self, vectors: np.ndarray, lexical: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = vectors.shape[0]
        matrix, weights = self.stacked
        sims = vectors @ matrix.T  # BLAS reads the transpose in place: no copy
        sims *= weights
        p = len(self.positives)
        best = sims[:, :p].argmax(axis=1)
        scores = sims[np.arange(n), best]
        if p < sims.shape[1]:
            penalty = sims[:, p:].max(axis=1)
            scores = scores - DISLIKE_WEIGHT * np.maximum(penalty, 0.0)
        if lexical is not None:
            # The two views are on different scales (a cosine, a sum of word
            # weights), which depend on the embedder and the corpus: standardise
            # each over the candidates and weigh them alike. Measured
            # (docs/recommender-log.md): either view alone is well below the two
            # together.
            scores = standardised(scores) + standardised(lexical)
        return scores.astype(np.float32), best


def standardised(x: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Zero mean and unit spread, measured over the entries `where` is true (default: all).

    Scores on different scales (cosines, sums of word weights) become comparable; the
    entries outside `where` (hidden candidates at -inf) do not distort it.
    """
    values = x if where is None else x[where]
    if not len(values):
        return x - 0.0
    spread = float(values.std())
    return (x - values.mean()) / (spread if spread > 0 else 1.0)


def decay(days: np.ndarray, today: date) -> np.ndarray:
    """Weights of feedback given on `days` (date ordinals), seen on `today`.

    Age is counted in whole days, so the model changes with the calendar, not
    every second: within a day, a reaction and its removal restore it exactly.
    The power is Python's, once per distinct age (a year of feedback has at most
    365): numpy's vectorised `power` need not round the same in the last bit.
    """
    ages, inverse = np.unique(np.maximum(today.toordinal() - days, 0), return_inverse=True)
    factors = np.array([0.5 ** (int(age) / HALF_LIFE_DAYS) for age in ages], dtype=np.float64)
    return factors[inverse].reshape(days.shape)


def build(
    catalog: Catalog, feedback: Feedback, follows: list[Follow], today: date
) -> InterestModel:
    order = np.argsort(feedback.rows, kind="stable")  # order-free: a pure function
    rows, signals = feedback.rows[order], feedback.signals[order]
    weights = feedback.weights[order] * decay(feedback.days[order], today)
    liked = signals > 0
    positive = liked | ((signals == 0) & feedback.saved[order])
    pos_rows = rows[positive]
    pos_weights = np.where(liked, weights, SAVE_WEIGHT * weights)[positive]
    negative = signals < 0
    neg_rows, neg_weights = rows[negative], weights[negative]
    exemplars = [Exemplar(f.topic, "follow", -1, f.forms) for f in follows]
    exemplars += [
        Exemplar(catalog.titles[row], "liked" if like else "saved", row)
        for row, like in zip(pos_rows.tolist(), liked[positive].tolist(), strict=True)
    ]
    follow_vectors = np.array([f.vector for f in follows], dtype=np.float32).reshape(
        len(follows), catalog.dim
    )
    all_weights = np.concatenate([np.ones(len(follows)), pos_weights])
    empty = np.zeros((0, catalog.dim), dtype=np.float32)
    return InterestModel(
        positives=np.vstack([follow_vectors, catalog.vectors[pos_rows]]) if exemplars else empty,
        weights=all_weights.astype(np.float32),
        exemplars=tuple(exemplars),
        negatives=catalog.vectors[neg_rows] if len(neg_rows) else empty,
        negative_weights=neg_weights.astype(np.float32),
        keywords=_keyword_weights(
            catalog, exemplars, follow_vectors, all_weights, neg_rows, neg_weights
        ),
    )


def _keyword_weights(
    catalog: Catalog,
    exemplars: list[Exemplar],
    follow_vectors: np.ndarray,
    weights: np.ndarray,
    neg_rows: np.ndarray,
    neg_weights: np.ndarray,
) -> np.ndarray | None:
    """How strongly each term names one of the user's interests.

    Each liked or saved paper and each follow is there because of one of its
    words, and which one is unknown. So each hands out its weight over the
    words it contains, in proportion to how likely each word is the one:
    first the catalogue's `keyword_prior`, times how much the paper (or the
    followed text) is about the word (`Catalog.topicality`: its vector against
    the word's), times what the dislikes left of it (`DISLIKE_KEEPS` per
    dislike, decayed like the dislike); then, in a second
    pass, the weight each word got from all likes in the first. That is EM on
    "each like is explained by one of its words", stopped after
    `KEYWORD_PASSES`: a word several likes share draws their weight together,
    while a like of another interest still spreads only over its own words
    and keeps its weight. A word the dislikes also contain keeps little,
    whatever it got: "model" is in liked and disliked papers alike,
    "diffusion" only in the liked ones.
    """
    if not exemplars or catalog.presence.shape[1] == 0:
        return None
    follows = len(follow_vectors)  # the first exemplars, then the papers
    contains = sp.vstack(
        [
            catalog.topicality(followed_terms(catalog, exemplars[:follows]), follow_vectors),
            catalog.topical[[e.row for e in exemplars[follows:]]],
        ],
        format="csr",
    )
    prior = catalog.keyword_prior  # shared by every model: never changed in place
    if len(neg_rows):
        disliked = catalog.presence[neg_rows].T @ neg_weights.astype(np.float32)
        prior = prior * np.float32(DISLIKE_KEEPS) ** disliked
    given = weights.astype(np.float32)
    belief = prior
    for _ in range(KEYWORD_PASSES):
        # Each row: its words' share of that exemplar. Scaled in place of
        # `contains.multiply(belief)`, whose re-sorting of the result was most of a
        # model build for someone with hundreds of likes.
        shares = sp.csr_matrix(
            (contains.data * belief[contains.indices], contains.indices, contains.indptr),
            shape=contains.shape,
        )
        totals = np.asarray(shares.sum(axis=1)).ravel()
        # A like whose every word dozens of dislikes damped (`DISLIKE_KEEPS` ** 80)
        # has a total below float32's normal range: its weight over that would
        # overflow to inf, and the model's scores to NaN. It names no word.
        per_word = np.divide(given, totals, out=np.zeros_like(given), where=totals > _NORMAL)
        belief = np.asarray(shares.T @ per_word).ravel().astype(np.float32)
    return belief


def followed_terms(catalog: Catalog, follows: list[Exemplar]) -> sp.csr_matrix:
    """One `presence` row per followed topic: the words of its text, and their other
    forms in the papers (`Catalog.word_forms`). A follow is there because of one of
    its words, in whichever form the papers write it: "mathematics" names the papers
    that say "math" too."""
    literal = catalog.presence_of([f.label for f in follows])
    rows = np.repeat(np.arange(len(follows)), [len(f.forms) for f in follows])
    if not len(rows):
        return literal
    cols = np.fromiter((t for f in follows for t in f.forms), dtype=np.int64, count=len(rows))
    forms = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=literal.shape)
    return literal.maximum(forms).tocsr()


def describe(
    catalog: Catalog, model: InterestModel, top: int = 5
) -> list[tuple[tuple[str, ...], float, tuple[str, ...]]]:
    """The top interests: clusters of liked papers and follows, as keywords with examples.

    Exemplars are grouped greedily (heaviest first) with those alike to the group's
    first, by `Catalog.similarity_scale`. A group is named by its follows and by its
    papers' strongest tf-idf words among `Catalog.nameable` words of more than one
    paper; its examples are its papers, those that contain its first keyword first.
    """
    # Halfway between a typical pair of papers here and a close one: papers of one
    # topic, not merely of one field.
    alike = sum(catalog.similarity_scale) / 2
    order = np.argsort(-model.weights, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        for group in groups:
            if float(model.positives[group[0]] @ model.positives[i]) >= alike:
                group.append(int(i))
                break
        else:
            groups.append([int(i)])
    total = float(model.weights.sum()) or 1.0
    out = []
    for group in groups:
        members = [model.exemplars[i] for i in group]
        rows = [e.row for e in members if e.row >= 0]
        follows = [e.label for e in members if e.row < 0]
        keywords = _keywords(catalog, rows, follows)
        titles = [e.label for e in members if e.kind != "follow"]
        if keywords and rows:
            named = catalog.presence_of([keywords[0]]).indices
            has = [bool(set(named) & set(catalog.presence[r].indices)) for r in rows]
            titles = [t for _, t in sorted(zip(has, titles, strict=True), key=lambda x: not x[0])]
        weight = float(model.weights[group].sum()) / total
        out.append((keywords, weight, tuple(titles[:2])))
    out.sort(key=lambda item: -item[1])
    return out[:top]


_WORD = re.compile(r"[a-z][a-z0-9\-]+")


def distinctive_terms(catalog: Catalog, rows: list[int], n: int) -> np.ndarray:
    """The (at most) `n` terms that set these papers apart most, strongest first: their
    summed tf-idf, among `Catalog.nameable` words of more than one paper (a word of
    one paper, a name or a stray "i-1" from LaTeX, names no topic). What names an
    interest in a profile, and what a pick's reason may call a key word.

    Ties go to the earlier term, as a stable sort of all would give, but only the
    terms at or above the n-th weight are sorted: the reasons ask for these on the
    path of `today()`, over a vocabulary of up to `catalog.MAX_TERMS`.
    """
    weights = np.asarray(catalog.terms[rows].sum(axis=0)).ravel()
    weights[~(catalog.nameable & (catalog.keyword_prior > 0))] = 0.0
    k = min(n, len(weights))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    nth = np.partition(weights, len(weights) - k)[len(weights) - k]
    candidates = np.flatnonzero(weights >= nth)
    best = candidates[np.argsort(-weights[candidates], kind="stable")][:k]
    return best[weights[best] > 0]


def _keywords(catalog: Catalog, rows: list[int], follows: list[str], n: int = 3) -> tuple[str, ...]:
    words: list[str] = [f.lower() for f in follows]
    if rows:
        words += [catalog.vocabulary[t] for t in distinctive_terms(catalog, rows, n)]
    if not words and rows:
        words = _WORD.findall(catalog.titles[rows[0]].lower())[:n]
    return tuple(dict.fromkeys(words))[:n]


class ModelCache:
    """Built models per user, each tagged with a stamp of the inputs it was built from.

    Bounded by memory, not by count (least recently used goes first): a model
    holds a vector per paper its user rated, so one with a year of feedback is
    fifteen times the size of a new user's, and a count that suits new users
    would let a year's worth of them outgrow the machine (10,000 x 3 MB).
    Thread-safe, as the facade is.

    A stamp covers the catalogue and the day, so every model built before the
    daily ingest (or midnight) can never be asked for again. Those go as soon as
    a model of the new `generation` comes in: kept until the budget pushed them
    out, they filled it with models nobody could use, a little more each day
    of a long run, up to the whole budget.
    """

    def __init__(self, budget: int = MODEL_CACHE_BYTES) -> None:
        self._budget = budget
        self._items: OrderedDict[tuple[str, ...], tuple[str, InterestModel]] = OrderedDict()
        self._bytes = 0
        self._generation: str | None = None
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], stamp: str) -> InterestModel | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != stamp:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[str, ...], stamp: str, model: InterestModel, generation: str) -> None:
        """Keep `model`; `generation` names the catalogue and day its stamp covers."""
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._bytes = 0
                self._generation = generation
            self._pop(key)
            self._items[key] = (stamp, model)
            self._bytes += model.nbytes
            while self._bytes > self._budget and len(self._items) > 1:
                self._pop(next(iter(self._items)))

    def forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._pop(key)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _pop(self, key: tuple[str, ...]) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1].nbytes
