"""Choosing picks from candidate papers: relevance, cold-start prior, diversity, reasons."""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from bot.catalog import Block, Catalog
from bot.interest_model import InterestModel, distinctive_terms, followed_terms, standardised

MMR_LAMBDA = 0.7  # relevance vs. novelty among the picks
# Before the first 👍, the cold start bets on the day's popular, typical themes,
# where most people's topics are. Someone who has 👎 more papers than a day's picks
# hold (5 by default) and liked none has seen that bet miss for over a day: their
# topic is likelier one of the smaller themes, so their picks spread wider (MMR with
# less weight on relevance). Not from the first 👎: a reader of a common topic may
# miss it once or twice and still find it among the popular papers. Measured
# (docs/recommender-log.md): from 6 to 8 dislikes the gain is the same, and the
# cost smallest.
COLD_SPREAD_AFTER_DISLIKES = 6.0
COLD_SPREAD_LAMBDA = 0.3
MMR_POOL = 50  # diversify among the most relevant candidates only; the rest cannot win anyway
EXPLORE_POOL = 500  # explore among the candidates that are at least somewhat relevant
# With no signal from the person: popularity (people's votes) and the workspace
# prior (colleagues' likes) are direct evidence of interest and weigh most;
# how typical a paper is of one of the day's themes is a weaker proxy. Each is
# scaled to at most 1. MMR then spreads the picks over the themes, so the first
# reactions say the most. (Without density, MMR over flat scores picks the
# day's outliers, which interest almost no one.)
PRIOR_WEIGHT = 1.0
COLD_POPULARITY_WEIGHT = 1.0
COLD_DENSITY_WEIGHT = 0.5
# With a model, popularity only breaks near-ties.
POPULARITY_WEIGHT = 0.15
# Recency matters only when the look-back widened a thin day (one day's papers all
# have the same): the newest day's papers come first, and older ones fill in. As
# much as density, so that a day's favourite from the newest day outranks an
# older day's (popularity is scaled per day), whichever theme it is on.
RECENCY_WEIGHT = 0.5
REASON_TITLE_CHARS = 60
# A cut text ends after its last whole word when that keeps at least this share of it.
WORD_CUT_SHARE = 0.6
# Left before an ellipsis, these would dangle: "Prior …", "Survey: …", "(…".
_DANGLING = " \t,;:-–—/([{'\"“‘\u200d"
# A reason names the words a pick shares with someone's interests only if each
# carries at least this share of their strongest word's weight: every liked
# paper gives some weight to all its words, "method" and "results" included.
KEY_WORD_SHARE = 0.25
REASON_WORDS = 2
# Of the words the papers someone liked share, only those among this many that set
# their likes apart most may be named (`_key_terms`). Measured on the bundled sample
# (simulated readers as `paperbot eval`'s, 4 seeds): with no such bound 133 of the 186
# "shares key words" reasons named a word such as "com" (of github.com), "optimal"
# or "improvements"; with 5, 19 of 82 did (the rest now say "popular" or "new").
# With 10 most of them stayed.
KEY_WORDS = 5
NEARER_PERCENTILE = 90.0  # "most", with a wide margin


@dataclass(frozen=True)
class Audience:
    """Who the picks are for, in the words their reasons use."""

    liked: str  # "close to 'X' that {liked}"
    saved: str
    follow: str  # "matches {follow}: X"
    prior: str  # the workspace prior, when nothing else speaks


PERSON = Audience(
    liked="you liked",
    saved="you saved",
    follow="your follow",
    prior="close to what people in your workspace liked",
)
# A channel's model is its members' feedback: "you" would be false there.
CHANNEL = Audience(
    liked="someone here liked",
    saved="someone here saved",
    follow="a follow here",
    prior="close to what people in this workspace liked",
)


@dataclass(frozen=True)
class Ranked:
    row: int
    score: float
    reason: str


def rank(
    catalog: Catalog,
    block: Block,
    model: InterestModel,
    *,
    limit: int,
    hidden: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    audience: Audience = PERSON,
    explore: bool = True,
) -> list[Ranked]:
    """Pick `limit` papers of `block` for one user (or channel), best first.

    `hidden` marks candidates not to show (already rated or shown). Relevance
    is the interest model's score, or with no signal at all the workspace or
    channel prior and popularity; recency adds a little to both. The picks are
    diversified with MMR (more widely once dislikes show the cold start missing,
    `COLD_SPREAD_AFTER_DISLIKES`), and the last one is an exploration slot.
    """
    available = len(block) if hidden is None else int((~hidden).sum())
    if limit <= 0 or available == 0:
        return []
    with _single_threaded_blas():
        return _rank(catalog, block, model, limit, hidden, prior, audience, explore, available)


def _single_threaded_blas():  # type: ignore[no-untyped-def]
    """These products are small and memory-bound: BLAS threads only fight the other
    requests' threads for the cores (measured 5-20x slower on a busy 2-core host)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _rank(
    catalog: Catalog,
    block: Block,
    model: InterestModel,
    limit: int,
    hidden: np.ndarray | None,
    prior: np.ndarray | None,
    audience: Audience,
    explore: bool,
    available: int,
) -> list[Ranked]:
    vectors = block.vectors
    personal, best = model.score(vectors, block.presence)
    prior_scores = vectors @ prior if prior is not None else None
    if model.empty:
        relevance = COLD_POPULARITY_WEIGHT * block.popularity + COLD_DENSITY_WEIGHT * block.density
        if prior_scores is not None:
            relevance = relevance + PRIOR_WEIGHT * prior_scores
    else:
        relevance = personal + POPULARITY_WEIGHT * block.popularity
    relevance = (relevance + RECENCY_WEIGHT * block.recency).astype(np.float32)
    if hidden is not None:
        relevance[hidden] = -np.inf
    explore = explore and limit > 1 and available > limit
    pool = _top(relevance, min(MMR_POOL, available))
    missed = model.empty and float(model.negative_weights.sum()) >= COLD_SPREAD_AFTER_DISLIKES
    lambda_ = COLD_SPREAD_LAMBDA if missed else MMR_LAMBDA
    picks = _mmr(vectors[pool], relevance[pool], limit - int(explore), lambda_)
    chosen = [int(pool[i]) for i in picks]
    if explore:
        wide = _top(relevance, min(EXPLORE_POOL, available))
        picked = [int(np.flatnonzero(wide == c)[0]) for c in chosen]
        chosen.append(int(wide[_exploration(vectors[wide], relevance[wide], picked, model)]))
    out = []
    # Needed only by picks no closeness explains: computed at most once, if at all.
    key = functools.cache(lambda: _key_terms(catalog, model))
    # The workspace prior must be close and nearer than most: a mean of many likes
    # points at the middle of the catalogue, fairly close to everything.
    prior_bar = (
        max(catalog.similarity_scale[1], _nearer_than_most(block, prior))
        if model.empty and prior is not None
        else np.inf
    )
    for position, i in enumerate(chosen):
        exploring = explore and position == len(chosen) - 1
        prior_close = prior_scores is not None and float(prior_scores[i]) >= prior_bar
        reason = _reason(
            catalog, block, block.start + i, model, key, vectors[i], int(best[i]), prior_close,
            audience, exploring,
        )  # fmt: skip
        out.append(Ranked(row=block.start + i, score=float(relevance[i]), reason=reason))
    return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, in O(n)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def _mmr(vectors: np.ndarray, relevance: np.ndarray, k: int, lambda_: float) -> list[int]:
    """Maximal marginal relevance: each pick trades relevance (weight `lambda_`) against
    closeness to earlier picks (weight 1 - `lambda_`).

    MMR weighs relevance against cosine similarity, so relevance is first put on
    the same 0..1 scale (min-max over the pool); raw model scores could be far
    smaller or larger than similarities and silently switch diversity off or on.
    """
    span = float(relevance.max() - relevance.min())
    scaled = (relevance - relevance.min()) / span if span > 0 else np.zeros_like(relevance)
    chosen: list[int] = []
    remaining = np.ones(len(relevance), dtype=bool)
    max_sim = np.zeros(len(relevance), dtype=np.float32)
    for _ in range(min(k, len(relevance))):
        mmr = lambda_ * scaled - (1 - lambda_) * max_sim
        pick = int(np.where(remaining, mmr, -np.inf).argmax())
        chosen.append(pick)
        remaining[pick] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[pick])
    return chosen


def _exploration(
    vectors: np.ndarray, relevance: np.ndarray, chosen: list[int], model: InterestModel
) -> int:
    """The exploration slot: an upper confidence bound, relevance plus uncertainty.

    A paper's score is uncertain where the user has told us nothing: far from
    every paper they rated and every topic they follow (with no feedback at all,
    far from the other picks). Among the candidates not picked, the slot takes
    the highest relevance + novelty (novelty = 1 - the closest similarity to
    that known set), both standardised over the candidates so neither scale
    decides. Optimism under uncertainty: the slot still tends to be relevant,
    and its reaction teaches the model about a region it has not seen. Measured
    against the former slot (the most relevant among the third least like the
    picks), it raised precision on both topic sets (docs/recommender-log.md).

    From the second like on, the bonus shrinks as 1 / sqrt(likes), as a
    confidence bound narrows with the evidence behind it: the more a person
    has liked, the better the model knows what they read, and the less the
    slot should gamble on the rest. Likes count by their weight (older and
    saved ones less). Follows do not count (a follow is a guess at one's
    interests that no paper has borne out yet), nor do dislikes (they say
    only what a person does not read). Measured, docs/recommender-log.md.
    """
    open_ = np.isfinite(relevance)  # not hidden
    open_[chosen] = False
    known = model.stacked[0]  # the positives, then the negatives
    if not len(known):
        known = vectors[chosen]
    novelty = 1.0 - (vectors @ known.T).max(axis=1)
    bonus = standardised(novelty, open_) / math.sqrt(max(1.0, model.liked_weight))
    ucb = standardised(relevance, open_) + bonus
    return int(np.argmax(np.where(open_, ucb, -np.inf)))


def _reason(
    catalog: Catalog,
    block: Block,
    row: int,
    model: InterestModel,
    key: Callable[[], np.ndarray | None],
    vector: np.ndarray,
    exemplar: int,
    prior_close: bool,
    audience: Audience,
    exploring: bool,
) -> str:
    """The first true statement of: explored, close to a liked paper or follow, shares
    its key words, close to the workspace's likes, popular, new. Closeness is judged
    against how alike this catalogue's papers are (`Catalog.similarity_scale`)."""
    if exploring and not model.empty:
        return "something different, to learn what else you like"
    if exemplar >= 0:
        ex = model.exemplars[exemplar]
        closeness = _closeness(
            catalog, block, float(vector @ model.positives[exemplar]), model.positives[exemplar]
        )
        if closeness:
            if ex.kind == "follow":
                said = "matches" if closeness == "close to" else closeness
                return f"{said} {audience.follow}: {short(ex.label)}"
            verb = audience.liked if ex.kind == "liked" else audience.saved
            return f"{closeness} '{short(ex.label)}' that {verb}"
    key_terms = key()
    terms = _key_terms_of(catalog, row, key_terms) if key_terms is not None else []
    if terms:
        followed = _follow_with(catalog, model, terms[0])
        if followed is not None:
            word = catalog.vocabulary[terms[0]]
            return f'mentions "{word}" from {audience.follow} "{short(followed)}"'
        words = ", ".join(catalog.vocabulary[t] for t in terms)
        return f"shares key words with papers {audience.liked}: {words}"
    if prior_close:
        return audience.prior
    day = catalog.listing_day(row)
    upvotes = int(catalog.upvotes[row])
    if upvotes > 0:
        return f"popular {day} ({upvotes} upvote{'s' if upvotes != 1 else ''})"
    return f"new {day}, to learn what you like"


def _closeness(
    catalog: Catalog, block: Block, similarity: float, exemplar: np.ndarray
) -> str | None:
    """How a reason may describe a pick's similarity to a liked paper or follow, if at all.

    "close to" when the two are closer than 95% of pairs of papers here. "nearer
    than most new papers to" when the pick is more alike than a typical pair and
    nearer the exemplar than most candidates are (`_nearer_than_most`): a like's nearest
    papers on a small day are often not close, yet they rank first because of it.
    """
    typical, close = catalog.similarity_scale
    if similarity >= close:
        return "close to"
    if similarity >= typical and similarity >= _nearer_than_most(block, exemplar):
        return "nearer than most new papers to"
    return None


def _nearer_than_most(block: Block, direction: np.ndarray) -> float:
    """The similarity to `direction` above which a paper is nearer it than
    `NEARER_PERCENTILE`% of the candidates."""
    return float(np.percentile(block.reference @ direction, NEARER_PERCENTILE))


def _key_terms(catalog: Catalog, model: InterestModel) -> np.ndarray | None:
    """Per term, its keyword weight if it is a key word of the person's interests, else 0.

    A key word is in one of their follows (in any of its forms, `Catalog.word_forms`),
    or in at least two of the papers they liked or saved and among the `KEY_WORDS`
    that set those papers apart most (`distinctive_terms`, as a profile names
    interests): the words of a single like all get some weight, and which of them
    mattered is not known until another like shares one; and two likes share
    "optimal", "com" (of github.com) or "improvements" as often as their topic's
    name. Only `Catalog.nameable` words can be key.
    """
    if model.keywords is None or not len(model.keywords):
        return None
    rows = [e.row for e in model.exemplars if e.row >= 0]
    follows = [e for e in model.exemplars if e.kind == "follow"]
    shared = np.asarray(catalog.presence[rows].sum(axis=0)).ravel() >= 2
    distinctive = np.zeros(len(shared), dtype=bool)
    distinctive[distinctive_terms(catalog, rows, KEY_WORDS)] = True
    shared &= distinctive
    if follows:
        terms = followed_terms(catalog, follows)
        shared |= np.asarray(terms.sum(axis=0)).ravel() > 0
    key = np.where(shared & catalog.nameable, model.keywords, 0.0)
    return key if float(key.max()) > 0 else None


def _key_terms_of(catalog: Catalog, row: int, key: np.ndarray) -> list[int]:
    """The paper's key terms (`_key_terms`) that weigh most, strongest first."""
    terms = catalog.presence[row].indices
    weights = key[terms]
    order = np.argsort(-weights, kind="stable")
    strongest = float(key.max())
    return [int(terms[i]) for i in order if weights[i] >= KEY_WORD_SHARE * strongest][:REASON_WORDS]


def _follow_with(catalog: Catalog, model: InterestModel, term: int) -> str | None:
    """The first followed topic that contains the term, if any."""
    follows = [e for e in model.exemplars if e.kind == "follow"]
    if not follows:
        return None
    rows = followed_terms(catalog, follows)
    return next((f.label for r, f in enumerate(follows) if term in rows[r].indices), None)


def short(text: str, limit: int = REASON_TITLE_CHARS) -> str:
    """At most `limit` characters, an ellipsis marking a cut, made after a whole word
    when one ends in the last part of the limit: "Fine-Tuning for Impr…" reads as a typo.

    Text without a space there (one long word, a script written without spaces)
    is cut where the limit falls, but not between a character and what joins it
    (an accent, the rest of an emoji sequence)."""
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit)
    end = space if space >= WORD_CUT_SHARE * limit else limit - 1
    while end > 0 and _joins_previous(text[end]):
        end -= 1
    return text[:end].rstrip(_DANGLING) + "…"


def _joins_previous(ch: str) -> bool:
    """Combining marks, variation selectors, emoji modifiers and the zero-width joiner
    belong to the character before them."""
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == "\u200d"
        or "\U0001f3fb" <= ch <= "\U0001f3ff"
    )
