"""The in-memory catalogue of papers: vectors, terms and metadata ranking works on.

Loading thousands of vectors per request would dominate `today()`, so the
catalogue is loaded once per process and reloaded only when the papers table
changes (its row count or newest update moved). Checking that costs a query,
so it is done at most every `RECHECK_SECONDS`; `invalidate()` (called after an
ingest in this process) forces the next check. It holds the papers that have a
vector for the configured model: a paper joins once it is embedded.
"""

from __future__ import annotations

import bisect
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa
from sqlmodel import col

from bot.database import Database
from bot.embedding import paper_text, unit_rows
from bot.models import Paper, PaperEmbedding

RECHECK_SECONDS = 2.0
MAX_TERMS = 50_000
MAX_BLOCKS = 16
MAX_CACHED_TEXTS = 10_000
DENSITY_ANCHORS = 256
DENSITY_NEIGHBOURS = 5
# Which words a person takes for a topic's name (`Catalog.nameable`): not shorter
# than this ("rl", "vb" say little), and not in more than this share of the papers
# unless in only a few (a small catalogue has every word in a large share).
MIN_NAMEABLE_CHARS = 3
NAMEABLE_MAX_SHARE = 0.2
NAMEABLE_FEW_PAPERS = 10
REFERENCE_PAPERS = 256  # papers sampled to measure how alike papers here look
CLOSE_PERCENTILE = 95.0  # "close": closer than this percentage of pairs of papers
# A term's prior chance of naming someone's topic grows with document frequency
# ** this: a word several papers share is likelier to name a topic than one only
# one paper uses (which names none), with diminishing returns, so "model" does
# not win by being everywhere. Chosen a priori (sqrt); measured in
# docs/recommender-log.md.
KEYWORD_FREQUENCY_POWER = 0.5
# A hyphenated compound ("multi-agent", "graph-based") is one term and also each of
# its parts: the papers of a reader of agents say "multi-agent" as often as "agents".
# Shorter parts are mostly prefixes ("pre", "non", "self", "end") and name nothing.
# Measured 3 to 6 letters (docs/recommender-log.md): shorter parts let in prefixes
# and cost the default topics a little; six loses "agent" and "graph", and with
# them most of the gain.
MIN_COMPOUND_PART_CHARS = 5
# A followed word also counts in the other forms the papers write it in: a follow
# of "mathematics" also means "math" and "mathematical", and papers on it say those.
# A form begins as the followed word does (its first `MIN_NAMEABLE_CHARS` letters)
# and the embedder places it as close to the word as a word is to its own plural
# (`word_form_scale`, measured on up to `WORD_FORM_PAIRS` of the vocabulary's
# plurals). A relative that merely shares the stem stays out: with the bundled
# model, "optimizer" is 0.92 from "optimizers", "optimization" 0.75, the scale 0.89.
# Measured (docs/recommender-log.md): the forms lift follow-seeded day 1 on a topic
# set whose names are not the papers' words from 1.5x to 2.6x random.
WORD_FORM_PAIRS = 256


@dataclass(frozen=True)
class Block:
    """Candidate papers: catalogue rows start .. start + len(popularity)."""

    start: int
    vectors: np.ndarray
    presence: sp.csr_matrix  # which terms each paper contains, 0/1
    popularity: np.ndarray  # log upvotes, scaled to at most 1 within each listing day
    recency: np.ndarray  # 0 for the oldest day in the block, 1 for the newest
    density: np.ndarray  # how typical of a theme of the day a paper is, 0..1

    def __len__(self) -> int:
        return len(self.popularity)

    def rows(self) -> np.ndarray:
        return np.arange(self.start, self.start + len(self), dtype=np.int64)

    @functools.cached_property
    def reference(self) -> np.ndarray:
        """A fixed sample of these papers' vectors, to measure how near one is to something
        compared with the rest."""
        return _sample(self.vectors)


@dataclass(frozen=True)
class Catalog:
    ids: list[str]
    index: dict[str, int]
    vectors: np.ndarray  # (n, dim) float32, L2-normalised; zero rows for papers not yet embedded
    listed_on: np.ndarray  # (n,) datetime64[D], ascending
    upvotes: np.ndarray  # (n,) int
    titles: list[str]
    terms: sp.csr_matrix  # (n, vocabulary) tf-idf, L2-normalised rows
    presence: sp.csr_matrix  # (n, vocabulary) 1 where a paper contains the term
    keyword_prior: np.ndarray  # (vocabulary,) how likely each term is to name a topic
    term_vectors: np.ndarray  # (vocabulary, dim) where a term's papers point, L2-normalised
    # `presence` weighted by `topicality`, for every paper: every model build reads
    # the rows of the person's liked papers, and computing them there was half of
    # the build for someone with a year of likes (bench/history.py).
    topical: sp.csr_matrix
    vocabulary: list[str]
    # What the catalogue was loaded from (the papers table's row count, newest update
    # and embedding count): equal across processes and restarts for the same papers,
    # so stored summaries keyed by it stay valid exactly as long as the papers do.
    fingerprint: str
    _vectorizer: object = None
    _blocks: dict[tuple[date, date], Block] = field(default_factory=dict, compare=False)
    _texts: dict[str, sp.csr_matrix] = field(default_factory=dict, compare=False)
    _forms: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)
    _form_scale: list[float | None] = field(default_factory=list, compare=False)  # once known

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def block(self, first: date, last: date) -> Block:
        """The papers listed from `first` to `last`, with what ranking needs precomputed.

        Rows are sorted by day, so a day range is a contiguous slice: vectors are
        a view, not a copy. Every user asks about the same day, so blocks are kept.
        """
        key = (first, last)
        cached = self._blocks.get(key)
        if cached is not None:
            return cached
        lo, hi = self.span(first, last)
        block = Block(
            start=lo,
            vectors=self.vectors[lo:hi],
            presence=self.presence[lo:hi],
            popularity=_popularity(self.upvotes[lo:hi], self.listed_on[lo:hi]),
            recency=_recency(self.listed_on[lo:hi]),
            density=_density(self.vectors[lo:hi]),
        )
        if len(self._blocks) >= MAX_BLOCKS:
            self._blocks.clear()
        self._blocks[key] = block
        return block

    def span(self, first: date, last: date) -> tuple[int, int]:
        """The rows lo .. hi of the papers listed from `first` to `last`."""
        lo = int(np.searchsorted(self.listed_on, np.datetime64(first, "D"), side="left"))
        hi = max(lo, int(np.searchsorted(self.listed_on, np.datetime64(last, "D"), side="right")))
        return lo, hi

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        """Catalogue rows of the given paper ids that are in the catalogue."""
        found = [self.index[p] for p in ids if p in self.index]
        return np.array(found, dtype=np.int64)

    def topicality(self, presence: sp.csr_matrix, vectors: np.ndarray) -> sp.csr_matrix:
        """`presence` rows (papers or followed topics) weighted by how much each term is
        what that text is about: the cosine between the text's vector and the term's
        (the mean of the papers containing it), at least 0.

        "reasoning" and "improvements" may both be in a paper about reasoning, but the
        papers that say "reasoning" are about it and those that say "improvements"
        are about anything. A text whose vector is zero (nothing in it to embed)
        keeps its plain presence: no word of it is preferred. Every paper's rows
        are computed once per catalogue (`topical`); this is for other texts.
        """
        return _topicality(presence, vectors, self.term_vectors)

    def presence_of(self, texts: list[str]) -> sp.csr_matrix:
        """`presence` rows for free text (followed topics), in this catalogue's vocabulary."""
        if self._vectorizer is None or not texts:
            return sp.csr_matrix((len(texts), self.terms.shape[1]), dtype=np.float32)
        found = {t: self._texts.get(t) for t in texts}
        missing = [t for t, row in found.items() if row is None]
        if missing:  # the same few follows come up in every model build
            rows = _presence(self._vectorizer.transform(missing).tocsr())  # type: ignore[attr-defined]
            fresh = {t: rows[i] for i, t in enumerate(missing)}
            found.update(fresh)
            if len(self._texts) > MAX_CACHED_TEXTS:
                self._texts.clear()
            self._texts.update(fresh)
        return sp.vstack([found[t] for t in texts]).tocsr()

    def word_forms(self, text: str, embed: Callable[[list[str]], np.ndarray]) -> tuple[int, ...]:
        """Terms that are another form of one of `text`'s words (a followed topic): they
        begin with its first `MIN_NAMEABLE_CHARS` letters, `embed` (single words, as
        `WordVectors.embed`) puts them at least `word_form_scale` close to it, and they
        could name a topic (`nameable`, in more than one paper). "mathematics":
        "math", "mathematical", "mathematics".

        Nothing when the embedder does not tell a word's forms from other words (a
        hashing stand-in). The vocabulary is sorted (as tf-idf keeps it), so the
        words that begin alike are one slice of it.
        """
        found = self._forms.get(text)
        if found is not None:  # the same few follows come up in every model build
            return found
        scale = self.word_form_scale(embed)
        words = _nameable_words(text)
        forms: set[int] = set()
        if scale is not None and words:
            eligible = (self.keyword_prior > 0) & self.nameable
            near = embed(words)
            for word, vector in zip(words, near, strict=True):
                stem = word[:MIN_NAMEABLE_CHARS]
                lo = bisect.bisect_left(self.vocabulary, stem)
                hi = bisect.bisect_left(self.vocabulary, stem + "\U0010ffff")
                candidates = [t for t in range(lo, hi) if eligible[t]]
                if not candidates:
                    continue
                names = [self.vocabulary[t] for t in candidates]
                sims = embed(names) @ vector
                forms.update(t for t, sim in zip(candidates, sims, strict=True) if sim >= scale)
        found = tuple(sorted(forms))
        if len(self._forms) > MAX_CACHED_TEXTS:
            self._forms.clear()
        self._forms[text] = found
        return found

    def word_form_scale(self, embed: Callable[[list[str]], np.ndarray]) -> float | None:
        """How close `embed` puts a word and its plural: the median cosine over up to
        `WORD_FORM_PAIRS` pairs of the vocabulary ("agent", "agents"). None if that is
        no closer than unrelated words are (the same words paired with the next
        pair's plural, their 95th percentile): the embedder does not know words."""
        if self._form_scale:
            return self._form_scale[0]
        known = set(self.vocabulary)
        pairs = [(w, w + "s") for w in self.vocabulary if w + "s" in known]
        scale = None
        if len(pairs) >= 2:
            spaced = np.linspace(0, len(pairs) - 1, min(WORD_FORM_PAIRS, len(pairs)))
            pairs = [pairs[i] for i in spaced.astype(int)]
            words = embed([p[0] for p in pairs])
            plurals = embed([p[1] for p in pairs])
            same = float(np.median((words * plurals).sum(axis=1)))
            other = (words * np.roll(plurals, 1, axis=0)).sum(axis=1)
            if same > float(np.percentile(other, CLOSE_PERCENTILE)):
                scale = same
        self._form_scale[:] = [scale]
        return scale

    @functools.cached_property
    def similarity_scale(self) -> tuple[float, float]:
        """(typical, close): the median cosine between two papers of this catalogue,
        and the cosine above which two papers are closer than 95% of pairs.

        How alike unrelated papers look depends on the embedder and on the corpus
        (in a feed of ML papers, most pairs share a field), so a fixed cut-off
        would call unrelated papers close.
        """
        sample = _sample(self.vectors)
        if len(sample) < 2:
            return 1.0, 1.0  # nothing to measure against: claim nothing
        pairs = (sample @ sample.T)[np.triu_indices(len(sample), 1)]
        typical, close = np.percentile(pairs, [50.0, CLOSE_PERCENTILE])
        return float(typical), float(close)

    @functools.cached_property
    def term_share(self) -> np.ndarray:
        """Per term, the share of the catalogue's papers that contain it."""
        counts = np.bincount(self.presence.indices, minlength=self.presence.shape[1])
        return (counts / max(len(self.ids), 1)).astype(np.float32)

    @functools.cached_property
    def nameable(self) -> np.ndarray:
        """Per term, whether a person would take it for the name of a topic: long enough
        to read, and not common: in at most `NAMEABLE_MAX_SHARE` of the papers ("models"
        is in nearly all), or in a few papers at most (in a small catalogue, every
        word is in a large share). What reasons, profiles and search show or match on."""
        chars = np.fromiter(map(len, self.vocabulary), dtype=np.int32, count=len(self.vocabulary))
        papers = self.term_share * len(self.ids)
        common = (self.term_share > NAMEABLE_MAX_SHARE) & (papers > NAMEABLE_FEW_PAPERS)
        return (chars >= MIN_NAMEABLE_CHARS) & ~common

    def word_match(self, text: str, unknown: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Per paper, the share of `text`'s `nameable` words it contains, each weighted by
        its rarity (inverse document frequency): 0 to 1.

        `unknown` maps words of `text` beyond the vocabulary (`unknown_words`) to
        the catalogue rows that contain them; each weighs as a word of one paper.
        """
        words = self.presence_of([text]).indices
        words = words[self.nameable[words]]
        unknown = unknown or {}
        papers = len(self.ids)  # smoothed idf, as tf-idf's: above 0 even for a word in every paper
        rarity = np.log((1 + papers) / (1 + self.term_share[words] * papers)) + 1.0
        rarest = float(np.log((1 + papers) / 2) + 1.0)
        total = float(rarity.sum()) + rarest * len(unknown)
        if not total:
            return np.zeros(len(self.ids), dtype=np.float32)
        contained = np.asarray(self.presence[:, words] @ rarity, dtype=np.float32).ravel()
        for rows in unknown.values():
            contained[rows] += rarest
        return (contained / total).astype(np.float32)

    def unknown_words(self, text: str) -> list[str]:
        """`text`'s words of at least `MIN_NAMEABLE_CHARS` that the vocabulary lacks. Past
        `MAX_TERMS` the rarest words are left out of it, and with them the name of a
        method used by one paper: search looks those up in the papers' text."""
        if self._vectorizer is None:
            return []
        known = self._vectorizer.vocabulary_  # type: ignore[attr-defined]
        return sorted(w for w in _nameable_words(text) if w not in known)

    def listing_day(self, row: int) -> str:
        """How a pick's reason names the day it was listed: "today" for the newest day."""
        day = self.listed_on[row].astype(object)
        return "today" if day == self.latest_day else f"on {day:%b} {day.day}"

    @property
    def latest_day(self) -> date | None:
        if not self.ids:
            return None
        return self.listed_on[-1].astype(object)


class CatalogCache:
    def __init__(self, db: Database, model: str, dim: int) -> None:
        self._db = db
        self._model = model
        self._dim = dim
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._checked = 0.0
        self._invalidated = False
        self._catalog: Catalog | None = None

    def invalidate(self) -> None:
        """This process stored papers: the next `get` waits for them."""
        self._checked = 0.0
        self._invalidated = True

    def get(self) -> Catalog:
        catalog = self._catalog
        if catalog is not None and time.monotonic() - self._checked < RECHECK_SECONDS:
            return catalog
        # While one request checks (and, if another process stored papers, rebuilds:
        # a second or more for 10,000 papers), the others keep the catalogue they
        # have rather than queue behind it. Only the first load makes them wait.
        if not self._lock.acquire(blocking=catalog is None or self._invalidated):
            return catalog  # type: ignore[return-value]  # not None: with None, acquire blocks
        try:
            # Checked again under the lock: a request that waited for the first
            # load, or came just after a check, must not rebuild once more.
            if self._catalog is not None and time.monotonic() - self._checked < RECHECK_SECONDS:
                return self._catalog
            self._invalidated = False
            stamp = self._read_stamp()
            if self._catalog is None or stamp != self._stamp:
                self._catalog = self._load(repr(stamp))
                self._stamp = stamp
            self._checked = time.monotonic()
            return self._catalog
        finally:
            self._lock.release()

    def _read_stamp(self) -> tuple[object, ...]:
        with self._db.read() as session:
            return tuple(
                session.execute(
                    sa.select(
                        sa.func.count(col(Paper.id)),
                        sa.func.max(col(Paper.updated_at)),
                        sa.select(sa.func.count())
                        .select_from(PaperEmbedding)
                        .where(col(PaperEmbedding.model) == self._model)
                        .scalar_subquery(),
                    )
                ).one()
            )

    def _load(self, fingerprint: str) -> Catalog:
        with self._db.read() as session:
            rows = session.execute(
                sa.select(
                    col(Paper.id),
                    col(Paper.title),
                    col(Paper.abstract),
                    col(Paper.listed_on),
                    col(Paper.upvotes),
                    col(PaperEmbedding.vector),
                )
                # Only papers with a vector: while an ingest (here or in another
                # process) is still embedding a new day, its papers would be ranked
                # without their meaning, shown, and never offered again.
                .join(
                    PaperEmbedding,
                    sa.and_(
                        col(PaperEmbedding.paper_id) == col(Paper.id),
                        col(PaperEmbedding.model) == self._model,
                    ),
                )
                .order_by(col(Paper.listed_on), col(Paper.id))
            ).all()
        vectors = np.zeros((len(rows), self._dim), dtype=np.float32)
        for i, row in enumerate(rows):
            vectors[i] = np.frombuffer(row.vector, dtype=np.float32, count=self._dim)
        ids = [r.id for r in rows]
        terms, vocabulary, vectorizer = _tfidf([paper_text(r.title, r.abstract) for r in rows])
        presence = _presence(terms)
        term_vectors = _term_vectors(presence, vectors)
        return Catalog(
            ids=ids,
            index={pid: i for i, pid in enumerate(ids)},
            vectors=vectors,
            listed_on=np.array([r.listed_on for r in rows], dtype="datetime64[D]"),
            upvotes=np.array([r.upvotes for r in rows], dtype=np.int64),
            titles=[r.title for r in rows],
            terms=terms,
            presence=presence,
            keyword_prior=_keyword_prior(terms),
            term_vectors=term_vectors,
            topical=_topicality(presence, vectors, term_vectors),
            vocabulary=vocabulary,
            fingerprint=fingerprint,
            _vectorizer=vectorizer,
        )


def _sample(vectors: np.ndarray) -> np.ndarray:
    """At most `REFERENCE_PAPERS` rows of `vectors`, evenly spaced."""
    count = min(REFERENCE_PAPERS, len(vectors))
    return vectors[np.linspace(0, len(vectors) - 1, count).astype(int)]


def _popularity(upvotes: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Log upvotes, scaled to at most 1 within each listing day (`days` ascending).

    Papers keep gathering votes after their day, so across a look-back an older
    day's papers would outvote the newest day's by age alone: a day's favourite
    weighs the same whichever day it is from.
    """
    scaled = np.log1p(np.maximum(upvotes, 0).astype(np.float32))
    if not len(days):  # a day with no papers
        return scaled
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    for lo, hi in zip(starts, [*starts[1:], len(days)], strict=True):
        top = float(scaled[lo:hi].max())
        if top > 0:
            scaled[lo:hi] /= top
    return scaled


def _recency(days: np.ndarray) -> np.ndarray:
    values = days.astype("int64").astype(np.float32)
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _presence(terms: sp.csr_matrix) -> sp.csr_matrix:
    """1 where `terms` has a term: the same sparsity structure, shared, with new values."""
    ones = np.ones(len(terms.data), dtype=np.float32)
    return sp.csr_matrix((ones, terms.indices, terms.indptr), shape=terms.shape)


def _keyword_prior(terms: sp.csr_matrix) -> np.ndarray:
    """Per term, document frequency ** `KEYWORD_FREQUENCY_POWER`; 0 for a word of one paper.

    Computed once per catalogue: every model build uses it.
    """
    frequency = np.bincount(terms.indices, minlength=terms.shape[1])
    prior = frequency.astype(np.float32) ** KEYWORD_FREQUENCY_POWER
    prior[frequency < 2] = 0.0
    return prior


def _term_vectors(presence: sp.csr_matrix, vectors: np.ndarray) -> np.ndarray:
    """Per term, the direction of the papers containing it: their summed vectors, L2-normalised.

    Computed once per catalogue, in one sparse product over every paper."""
    return unit_rows(np.asarray(presence.T @ vectors, dtype=np.float32))


def _topicality(
    presence: sp.csr_matrix, vectors: np.ndarray, term_vectors: np.ndarray
) -> sp.csr_matrix:
    """`Catalog.topicality`. One small product per text: faster than gathering a term
    vector for every (text, term) pair at once, and a few kilobytes at a time. The
    result shares `presence`'s structure (for the catalogue, the tf-idf's too)."""
    weights = presence.data.astype(np.float32)  # a copy: only these values change
    out = sp.csr_matrix((weights, presence.indices, presence.indptr), shape=presence.shape)
    for r, vector in enumerate(vectors):
        lo, hi = out.indptr[r], out.indptr[r + 1]
        if vector.any():
            out.data[lo:hi] = np.maximum(term_vectors[out.indices[lo:hi]] @ vector, 0.0)
    return out


def _density(vectors: np.ndarray) -> np.ndarray:
    """Local density: mean similarity to a paper's nearest neighbours among the block.

    A paper in a big cluster (a theme many papers share that day) scores high,
    an outlier low. Unlike closeness to the mean, this keeps several themes.
    Neighbours are looked for among a fixed sample of anchors, so a 10,000
    paper day costs one (n x 256) product, once per day.
    """
    n = len(vectors)
    if n < 2:
        return np.ones(n, dtype=np.float32)
    anchors = np.random.default_rng(0).choice(n, min(DENSITY_ANCHORS, n), replace=False)
    sims = vectors @ vectors[anchors].T
    sims[anchors, np.arange(len(anchors))] = -np.inf  # a paper is not its own neighbour
    k = max(1, min(DENSITY_NEIGHBOURS, len(anchors) - 1))
    nearest = -np.partition(-sims, k - 1, axis=1)[:, :k]
    density = nearest.mean(axis=1)
    span = float(density.max() - density.min())
    return ((density - density.min()) / span if span > 0 else np.zeros(n)).astype(np.float32)


def _tfidf(texts: list[str]) -> tuple[sp.csr_matrix, list[str], object]:
    """Word tf-idf over the catalogue (sublinear tf, English stop words removed)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        analyzer=_analyser(),
        sublinear_tf=True,
        max_features=MAX_TERMS,
        dtype=np.float32,
    )
    try:
        terms = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # no papers, or no words at all
        return sp.csr_matrix((len(texts), 0), dtype=np.float32), [], None
    return terms, vectorizer.get_feature_names_out().tolist(), vectorizer


def _nameable_words(text: str) -> list[str]:
    """`text`'s terms long enough to name a topic (`MIN_NAMEABLE_CHARS`), each once, in order."""
    return [w for w in dict.fromkeys(_analyser()(text)) if len(w) >= MIN_NAMEABLE_CHARS]


@functools.cache
def _analyser() -> Callable[[str], list[str]]:
    """The terms of a text: its words (accents stripped, lower case, English stop
    words out), each hyphenated compound also as its parts."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    words = TfidfVectorizer(
        strip_accents="unicode",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9\-]+\b",  # noqa: S106  (a regex, no secret)
    ).build_analyzer()

    def terms(text: str) -> list[str]:
        out = []
        for word in words(text):
            out.append(word)
            if "-" in word:
                out.extend(
                    part
                    for part in word.split("-")
                    if len(part) >= MIN_COMPOUND_PART_CHARS and part not in ENGLISH_STOP_WORDS
                )
        return out

    return terms
