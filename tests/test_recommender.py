"""The recommender's behaviour through the facade, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

import bot.paperbot as paperbot_module
from bot import PaperBot, UnknownPaper, UserRef, commands, interest_model, ranking
from bot.catalog import Catalog
from bot.embedding import HashingEmbedder, SentenceTransformerEmbedder
from bot.feedback import ReactionEvent
from bot.models import InterestProfile, Reaction
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.helpers import DAY, TOPICS, channel, paper, topical_papers, user

TOPIC_OF = {f"25{t:02d}": name for t, name in enumerate(TOPICS)}


def topic(paper_id: str) -> str:
    return TOPIC_OF[paper_id[:4]]


def ids(core: PaperBot, who: UserRef, limit: int = 5) -> list[str]:
    return [p.paper_id for p in core.today(who, limit=limit)]


def user_model(core: PaperBot, who: UserRef) -> tuple[Catalog, interest_model.InterestModel]:
    """The catalogue and the user's interest model, as `today()` would build it."""
    catalog = core._catalog.get()
    with core.db.read() as session:
        model = core._interest_model(session, catalog, who)
    return catalog, model


def model_scores(core: PaperBot, who: UserRef) -> np.ndarray:
    """The user's model, seen as its scores over the whole catalogue."""
    catalog, model = user_model(core, who)
    return model.score(catalog.vectors, catalog.presence)[0]


def test_taking_a_reaction_back_restores_the_model_exactly(core: PaperBot) -> None:
    core.ingest(topical_papers())
    alice = user("alice")
    core.react(alice, "2500.00001", +1)
    before = model_scores(core, alice)
    profile_before = core.profile(alice)

    core.react(alice, "2502.00003", +1)
    core.react(alice, "2503.00002", -1)
    assert not np.array_equal(model_scores(core, alice), before)
    core.react(alice, "2502.00003", +1, active=False)
    core.react(alice, "2503.00002", -1, active=False)

    assert np.array_equal(model_scores(core, alice), before)
    assert core.profile(alice) == profile_before


def test_removing_one_of_two_platform_reactions_restores_the_other(core: PaperBot) -> None:
    core.ingest(topical_papers())
    bob = user("bob")
    core.react(bob, "2500.00001", +1)
    liked = model_scores(core, bob)
    core.react(bob, "2500.00001", -1)  # 👎 added later wins
    assert core.profile(bob).dislikes == 1
    core.react(bob, "2500.00001", -1, active=False)
    assert core.profile(bob).likes == 1
    assert np.array_equal(model_scores(core, bob), liked)


def test_a_reaction_taken_back_leaves_the_paper_as_if_never_rated(core: PaperBot) -> None:
    core.ingest(topical_papers())
    ann, bob = user("ann"), user("bob")
    first = ids(core, ann)
    assert ids(core, bob) == first
    for who in (ann, bob):
        core.react(who, first[0], +1)
    core.react(ann, first[1], +1)
    core.react(ann, first[1], +1, active=False)
    # ann's second pick is skipped again, beside her like, as bob's is ...
    assert user_model(core, ann)[1].negative_weights.tolist() == [0.5] * 4
    assert np.array_equal(model_scores(core, ann), model_scores(core, bob))
    assert core.feedback_states(ann) == core.feedback_states(bob)
    assert ids(core, ann) == ids(core, bob)
    # ... and a paper rated and taken back, never shown, can be shown.
    carol, dave = user("carol"), user("dave")
    core.react(carol, first[0], -1)
    core.react(carol, first[0], -1, active=False)
    assert first[0] in ids(core, carol) == ids(core, dave)


def test_other_feedback_added_and_taken_back_keeps_a_likes_age(core: PaperBot) -> None:
    core.ingest(topical_papers())
    hal = user("hal")
    core.react(hal, "2500.00001", +1)
    with core.db.write() as session:
        row = session.get(Reaction, ("slack", "T1", "hal", "2500.00001"))
        row.updated_at = row.up_at = datetime.now(UTC) - timedelta(days=90)
    aged = user_model(core, hal)[1].weights.tolist()
    assert aged == pytest.approx([0.5 ** (90 / interest_model.HALF_LIFE_DAYS)])
    core.save(hal, "2500.00001")
    core.save(hal, "2500.00001", active=False)
    core.react(hal, "2500.00001", -1)
    core.react(hal, "2500.00001", -1, active=False)
    assert user_model(core, hal)[1].weights.tolist() == aged


def test_taking_back_a_thumb_keeps_a_bookmark_on_the_same_paper(core: PaperBot) -> None:
    core.ingest(topical_papers())
    ivy = user("ivy")
    core.save(ivy, "2500.00001")
    saved = core.feedback_states(ivy)
    for signal in (+1, -1):
        core.react(ivy, "2500.00001", signal)
        core.react(ivy, "2500.00001", signal, active=False)
        assert core.feedback_states(ivy) == saved
        assert core.profile(ivy).saved == 1


def test_the_same_reaction_twice_changes_nothing(core: PaperBot) -> None:
    core.ingest(topical_papers())
    carol = user("carol")
    assert core.react(carol, "2501.00002", +1) is True
    once = model_scores(core, carol)
    assert core.react(carol, "2501.00002", +1) is False
    assert core.react(carol, "2504.00000", -1, active=False) is False  # nothing to take back
    assert np.array_equal(model_scores(core, carol), once)
    assert core.profile(carol).likes == 1


def test_taking_back_a_thumb_never_given_on_a_rated_paper_changes_nothing(
    core: PaperBot,
) -> None:
    core.ingest(topical_papers())
    fay = user("fay")
    core.react(fay, "2501.00002", +1)
    core.save(fay, "2501.00003")
    with core.db.read() as session:
        before = session.scalars(sa.select(Reaction).order_by(Reaction.paper_id)).all()
    assert core.react(fay, "2501.00002", -1, active=False) is False
    assert core.save(fay, "2501.00002", active=False) is False
    assert core.react(fay, "2501.00003", +1, active=False) is False
    with core.db.read() as session:
        after = session.scalars(sa.select(Reaction).order_by(Reaction.paper_id)).all()
    assert [r.model_dump() for r in after] == [r.model_dump() for r in before]


def test_a_reaction_stored_again_does_not_overtake_a_newer_thumb(core: PaperBot) -> None:
    # A read-back after an outage stores every emoji still on a post again: the
    # 👍 under a newer 👎 must stay overtaken. Only a button (renew) sets it anew.
    core.ingest(topical_papers())
    eve = user("eve")
    core.react(eve, "2501.00002", +1)
    core.react(eve, "2501.00002", -1)
    disliked = model_scores(core, eve)
    assert core.react(eve, "2501.00002", +1) is False
    assert core.profile(eve).dislikes == 1
    assert np.array_equal(model_scores(core, eve), disliked)
    assert core.react(eve, "2501.00002", +1, renew=True) is True
    assert core.profile(eve).likes == 1


def test_feedback_on_an_unknown_paper_is_rejected_and_stores_nothing(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    with pytest.raises(UnknownPaper, match="don't know the paper"):
        core.react(user("dan"), "9999.99999", +1)
    with core.db.read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Reaction)) == 0


def test_picks_follow_likes_and_explain_them(core: PaperBot) -> None:
    core.ingest(topical_papers())
    erin = user("erin")
    core.react(erin, "2500.00001", +1)
    core.react(erin, "2500.00002", +1)
    core.react(erin, "2502.00001", -1)
    picks = core.today(erin, limit=5)
    assert topic(picks[0].paper_id) == "diffusion"
    assert sum(topic(p.paper_id) == "diffusion" for p in picks) >= 3
    assert not any(topic(p.paper_id) == "rl" for p in picks[:-1])  # disliked topic stays down
    # The reason names what links the pick to the likes: a liked paper, or their shared words.
    assert re.fullmatch(
        r"(close to|nearer than most new papers to) 'diffusion study .*' that you liked"
        r"|shares key words with papers you liked: .*diffusion.*",
        picks[0].reason,
    )


def test_a_reason_claims_a_link_only_where_there_is_one(core: PaperBot) -> None:
    """Reasons are statements about the pick: each must hold for that pick."""
    older = [
        paper(
            f"2599.{i:05d}",
            f"old survey {i}",
            "An older overview.",
            day=DAY - timedelta(days=1),
            upvotes=50,
        )
        for i in range(3)
    ]
    core.ingest([*topical_papers(per_topic=4), *older])  # 20 papers today: a thin day for 8
    # A follow no paper speaks of: nothing may claim to match it.
    folder = user("folder")
    core.follow(folder, "protein folding")
    for pick in core.today(folder, limit=5):
        assert "protein folding" not in pick.reason
    # One like: only papers of its topic may be said to be near it.
    liker = user("liker")
    core.react(liker, "2500.00001", +1)
    named = [p for p in core.today(liker, limit=5) if "'diffusion study 1" in p.reason]
    assert named and all(topic(p.paper_id) == "diffusion" for p in named)
    # A colleague's likes: only papers like them are said to be close to them.
    for pid in ("2504.00001", "2504.00002"):
        core.react(user("veteran"), pid, +1)
    for pick in core.today(user("newcomer"), limit=8):
        if pick.reason == "close to what people in your workspace liked":
            assert topic(pick.paper_id) == "graphs"
    # Papers of an earlier day are not "today"'s.
    olds = core.today(user("late"), limit=3, day=DAY - timedelta(days=1))
    assert {p.paper_id for p in olds} == {o.id for o in older}
    assert {p.reason for p in olds} == {f"popular on Oct {DAY.day - 1} (50 upvotes)"}


def test_picks_are_diverse_with_one_exploration_slot(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=10))
    fay = user("fay")
    core.react(fay, "2500.00001", +1)
    picks = core.today(fay, limit=5)
    topics = [topic(p.paper_id) for p in picks]
    assert topics[0] == "diffusion"
    assert topics[-1] != "diffusion"  # the exploration slot looks elsewhere
    assert picks[-1].reason == "something different, to learn what else you like"


EXPLORATION_CANDIDATES = np.array(
    [
        [1.0, 0.0, 0.0],  # already picked
        [0.99, 0.14, 0.0],  # most relevant, but next to the likes: little to learn
        [0.6, 0.8, 0.0],  # relevant, in a region no feedback covers yet
        [0.0, 0.0, 1.0],  # unfamiliar and irrelevant
        [0.0, 1.0, 0.0],  # unfamiliar and irrelevant
        [0.0, -0.6, 0.8],  # hidden (already rated): never chosen
    ],
    dtype=np.float32,
)
EXPLORATION_RELEVANCE = np.array([1.0, 0.9, 0.6, -1.0, -0.9, -np.inf], dtype=np.float32)


def liked_model(likes: int, follows: int = 0) -> interest_model.InterestModel:
    """A model of `likes` liked papers and `follows` followed topics, all at the first axis."""
    exemplars = [interest_model.Exemplar(f"liked {i}", "liked", i) for i in range(likes)]
    exemplars += [interest_model.Exemplar(f"topic {i}", "follow", -1) for i in range(follows)]
    return interest_model.InterestModel(
        positives=np.tile(np.array([1.0, 0.0, 0.0], dtype=np.float32), (len(exemplars), 1)),
        weights=np.ones(len(exemplars), dtype=np.float32),
        exemplars=tuple(exemplars),
        negatives=np.zeros((0, 3), dtype=np.float32),
        negative_weights=np.zeros(0, dtype=np.float32),
        keywords=None,
    )


def test_the_model_cache_is_bounded_by_memory_not_by_count() -> None:
    """Models of long-standing users are large: the cache evicts the least recently
    used until what it holds fits its budget, however few models that leaves."""
    small, large = liked_model(1), liked_model(1_000)
    assert large.nbytes > 500 * small.nbytes
    cache = interest_model.ModelCache(budget=large.nbytes + 2 * small.nbytes + small.nbytes // 2)
    for name in ("a", "b", "c"):
        cache.put((name,), "stamp", small, "day")
    assert cache.get(("a",), "stamp") is small  # now the most recently used
    cache.put(("big",), "stamp", large, "day")
    assert cache.get(("b",), "stamp") is None  # evicted first: least recently used
    assert cache.get(("a",), "stamp") is cache.get(("c",), "stamp") is small
    assert cache.nbytes == large.nbytes + 2 * small.nbytes
    cache.put(("big",), "newer", large, "day")  # replacing an entry does not count it twice
    assert cache.nbytes == large.nbytes + 2 * small.nbytes
    cache.forget(("big",))
    assert cache.nbytes == 2 * small.nbytes
    # A single model larger than the budget is still kept: it is about to be used.
    tight = interest_model.ModelCache(budget=small.nbytes)
    tight.put(("a",), "stamp", small, "day")
    tight.put(("big",), "stamp", large, "day")
    assert tight.get(("big",), "stamp") is large and tight.get(("a",), "stamp") is None


def test_the_model_cache_drops_every_model_of_an_earlier_catalogue_or_day(
    core: PaperBot,
) -> None:
    """A model's stamp covers the catalogue and the day: after the daily ingest no
    model built before it can be used again, and the first model built after it
    makes room: kept, they filled the budget with models nobody could use."""
    core.ingest(topical_papers())
    ann, bob = user("ann"), user("bob")
    for who in (ann, bob):
        core.react(who, "2500.00001", +1)
        core.today(who)
    assert len(core._models._items) == 2
    core.ingest([paper("2509.00001", "Diffusion for speech", "Denoising audio.", day=DAY)])
    core.today(ann)
    assert list(core._models._items) == [("slack", "T1", "ann")]
    _, model = user_model(core, ann)
    assert core._models.nbytes == model.nbytes


@pytest.mark.parametrize(("likes", "follows", "explored"), [(1, 0, 2), (1, 14, 2), (15, 0, 1)])
def test_the_exploration_slot_weighs_relevance_against_what_feedback_has_not_covered(
    likes: int, follows: int, explored: int
) -> None:
    """Upper confidence bound: after one like, not the most relevant paper (its
    neighbourhood is known), not the most unfamiliar one (irrelevant), but a
    relevant paper far from all feedback. The bonus narrows as likes accumulate
    (after fifteen the slot takes the most relevant paper left), not as follows do."""
    model = liked_model(likes, follows)
    chosen = ranking._exploration(EXPLORATION_CANDIDATES, EXPLORATION_RELEVANCE, [0], model)
    assert chosen == explored


def keyword_weights(core: PaperBot, who: UserRef) -> dict[str, float]:
    catalog, model = user_model(core, who)
    assert model.keywords is not None
    return dict(zip(catalog.vocabulary, model.keywords.tolist(), strict=True))


def test_a_like_names_its_interest_by_the_words_its_dislikes_lack(core: PaperBot) -> None:
    """A like spreads its weight over its words; dislikes damp the words they share with
    it, so the weight moves to the words that name the interest."""
    core.ingest(topical_papers())
    ann = user("ann")
    core.react(ann, "2500.00001", +1)  # diffusion: "... Diffusion models ... denoising ..."
    liked = keyword_weights(core, ann)
    # The papers that say "denoising" are all about diffusion; those that say "models"
    # are about rl too, so the liked paper is less about that word.
    assert liked["denoising"] > liked["models"] > 0
    assert liked["speech"] == 0  # not in the liked paper

    core.react(ann, "2502.00001", -1)  # rl: "... reward models ..."
    core.react(ann, "2502.00002", -1)
    disliked = keyword_weights(core, ann)
    assert disliked["models"] < liked["models"] / 2
    assert disliked["denoising"] > liked["denoising"]
    assert sum(disliked.values()) == pytest.approx(sum(liked.values()))  # one like's weight


def test_a_like_whose_words_many_dislikes_share_keeps_the_scores_finite(core: PaperBot) -> None:
    """Eighty 👎 on papers saying every word of a 👍'd one damp those words to
    0.3 ** 80 of their prior, below float32's normal range (a soak of 200 people
    over two months met it). The like's weight over that overflowed to inf, the
    scores became NaN: today() repeated a pick with a score of -inf, and a channel
    of such a member got NaN scores, which PostgreSQL's JSON refused in the
    delivery ledger, so each tick of the day failed the channel's post again."""
    text = "Sparse attention kernels for decoding."
    core.ingest(
        [paper(f"2501.{i:05d}", f"Sparse kernels {i}", text) for i in range(1, 81)]
        + [paper("2502.00001", "Sparse kernels", text)]
    )
    ann, room = user("ann"), channel("C1")
    core.react(ann, "2502.00001", +1, channel=room.channel)
    for i in range(1, 81):
        core.react(ann, f"2501.{i:05d}", -1, channel=room.channel)
    _, model = user_model(core, ann)
    assert model.keywords is not None
    assert np.isfinite(model.keywords).all()
    picks = core.today(ann)
    assert len({p.paper_id for p in picks}) == len(picks) == 5
    assert all(np.isfinite(p.score) for p in picks)
    assert all(np.isfinite(p.score) for p in core.channel_picks(room))


def test_a_like_weighs_most_the_words_its_paper_is_about(core: PaperBot) -> None:
    """ "sampler" and "toolkit" are equally common, but only diffusion papers say
    "sampler": a liked diffusion paper is about that word, not about "toolkit"."""
    diffusion = TOPICS["diffusion"]
    core.ingest(
        [
            *topical_papers(),
            paper("2600.00001", "A sampler and a toolkit for diffusion", diffusion),
            paper("2600.00002", "A faster sampler for diffusion", diffusion),
            paper("2600.00003", "A toolkit for speech", TOPICS["speech"]),
        ]
    )
    ann = user("ann")
    core.react(ann, "2600.00001", +1)
    weights = keyword_weights(core, ann)
    assert weights["sampler"] > 1.2 * weights["toolkit"] > 0

    catalog = core._catalog.get()
    presence = catalog.presence[catalog.rows(["2600.00001"])]
    about = catalog.topicality(presence, catalog.vectors[catalog.rows(["2600.00001"])])
    assert np.array_equal(about.indices, presence.indices)
    assert 0 <= about.data.min() < about.data.max() <= 1.0 + 1e-6
    # A paper not embedded yet has no vector to tell its words apart: all count alike.
    unembedded = catalog.topicality(presence, np.zeros((1, catalog.dim), dtype=np.float32))
    assert np.array_equal(unembedded.toarray(), presence.toarray())


def test_likes_pool_their_weight_on_the_words_they_share(core: PaperBot) -> None:
    """Two likes about sparse attention give "sparse" more than the two give it apart,
    and a like of another interest keeps its whole weight on its own words."""
    core.ingest(
        [
            *topical_papers(),
            paper("2600.00001", "Sparse attention for long documents", "It reads long documents."),
            paper("2600.00002", "Sparse attention for video clips", "It watches video clips."),
            paper("2600.00003", "Summaries of long documents", "Long documents, summarised."),
            paper("2600.00004", "Captions for video clips", "Video clips, captioned."),
        ]
    )
    ann, bob, cat, dan = user("ann"), user("bob"), user("cat"), user("dan")
    core.react(ann, "2600.00001", +1)
    core.react(bob, "2600.00002", +1)
    for who in (cat, dan):
        core.react(who, "2600.00001", +1)
        core.react(who, "2600.00002", +1)
    core.react(dan, "2501.00001", +1)  # speech: no word in common with the two above
    alone = keyword_weights(core, ann), keyword_weights(core, bob)
    both = keyword_weights(core, cat)
    assert both["sparse"] > alone[0]["sparse"] + alone[1]["sparse"]
    assert both["documents"] < alone[0]["documents"]
    assert sum(both.values()) == pytest.approx(2.0)  # two likes' weight, moved, not made

    catalog, model = user_model(core, dan)
    assert model.keywords is not None
    speech_words = catalog.presence[catalog.rows(["2501.00001"])].indices
    assert model.keywords[speech_words].sum() == pytest.approx(1.0)


def test_a_hyphenated_compound_teaches_its_parts(core: PaperBot) -> None:
    """A like of a "multi-agent" paper is also about agents: a paper that says only
    "agent" shares that word with it. Short parts ("pre") and stop words stay out."""
    core.ingest(
        [
            *topical_papers(),
            paper("2600.00001", "Multi-agent debate", "Debaters argue, pre-training helps."),
            paper("2600.00002", "An agent that plans", "It plans tool calls."),
            paper("2600.00003", "Tool calls that plan", "It plans tool calls."),
        ]
    )
    ann = user("ann")
    core.react(ann, "2600.00001", +1)
    weights = keyword_weights(core, ann)
    assert weights["agent"] > 0
    assert "pre-training" in weights and "training" in weights and "pre" not in weights
    catalog, model = user_model(core, ann)
    assert model.keywords is not None
    agent, other = catalog.presence[catalog.rows(["2600.00002", "2600.00003"])] @ model.keywords
    assert agent > other == 0


def test_dislikes_push_the_rest_of_their_topic_below_topics_never_rated(core: PaperBot) -> None:
    core.ingest(topical_papers())
    ann = user("ann")
    core.react(ann, "2500.00001", +1)  # diffusion
    core.react(ann, "2502.00001", -1)  # rl
    core.react(ann, "2502.00002", -1)
    catalog = core._catalog.get()
    scores = model_scores(core, ann)
    rated = {"2500.00001", "2502.00001", "2502.00002"}
    unrated = [i for i, pid in enumerate(catalog.ids) if pid not in rated]
    disliked_topic = [scores[i] for i in unrated if topic(catalog.ids[i]) == "rl"]
    never_rated = [scores[i] for i in unrated if topic(catalog.ids[i]) not in ("rl", "diffusion")]
    assert len(disliked_topic) == 4 and len(never_rated) == 18
    assert max(disliked_topic) < min(never_rated)


def test_several_interests_are_kept_apart(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=8))
    gus = user("gus")
    for pid in ("2500.00001", "2500.00002", "2501.00001", "2501.00002"):
        core.react(gus, pid, +1)
    topics = [topic(pid) for pid in ids(core, gus, limit=5)[:4]]
    assert {"diffusion", "speech"} <= set(topics)
    interests = core.profile(gus).interests
    assert len(interests) >= 2
    named = {kw for i in interests[:2] for kw in i.keywords}
    assert "diffusion" in named and "speech" in named
    assert all(i.examples for i in interests[:2])


def test_older_feedback_weighs_less(core: PaperBot) -> None:
    core.ingest(topical_papers())
    hal = user("hal")
    core.react(hal, "2500.00001", +1)
    core.react(hal, "2501.00001", +1)
    with core.db.write() as session:  # the diffusion like is a year old
        row = session.get(Reaction, ("slack", "T1", "hal", "2500.00001"))
        row.updated_at = row.up_at = datetime.now(UTC) - timedelta(days=365)
    core.react(hal, "2504.00000", -1)  # any change of feedback rebuilds the model
    picks = ids(core, hal)
    assert topic(picks[0]) == "speech"


def test_picks_left_beside_a_like_count_against_people_who_never_dislike(core: PaperBot) -> None:
    core.ingest(topical_papers())
    ann, bob = user("ann"), user("bob")
    first = ids(core, ann)
    core.react(ann, first[0], +1)
    core.react(bob, first[0], +1)  # the same like, without having been shown the batch
    catalog, model = user_model(core, ann)
    _, like_alone = user_model(core, bob)
    assert model.negative_weights.tolist() == [0.5] * 4  # the other four: half a 👎 each
    skipped = catalog.rows(first[1:])
    # Both views count them against: each scores below where the like alone puts it
    # (the semantic view, before the two views are standardised and added) ...
    semantic = model._full_score(catalog.vectors[skipped], None)[0]
    assert (semantic < like_alone._full_score(catalog.vectors[skipped], None)[0]).all()
    # ... and, as with a dislike, the like's weight moves off the words they share with it.
    liked_words = set(catalog.presence[catalog.rows(first[:1])].indices)
    shared = sorted(liked_words & set(catalog.presence[skipped].indices))
    own = sorted(liked_words - set(shared))
    assert shared and own and model.keywords is not None and like_alone.keywords is not None
    assert model.keywords[shared].sum() < like_alone.keywords[shared].sum()
    assert model.keywords[own].sum() > like_alone.keywords[own].sum()
    before = model_scores(core, ann)

    second = ids(core, ann)  # a batch left alone: maybe never read, so no evidence
    assert user_model(core, ann)[1].negative_weights.tolist() == [0.5] * 4

    core.react(ann, second[0], -1)  # someone who 👎 says "no" themselves
    assert user_model(core, ann)[1].negative_weights.tolist() == [1.0]
    core.react(ann, second[0], -1, active=False)
    assert np.array_equal(model_scores(core, ann), before)


def set_feedback(core: PaperBot, who: UserRef, paper_id: str, **days_ago: int | None) -> None:
    """Give an existing reaction row these ages, in days (up, down, saved; None: unset)."""
    now = datetime.now(UTC)
    with core.db.write() as session:
        row = session.get(Reaction, (who.platform, who.workspace, who.user, paper_id))
        for name in ("up", "down", "saved"):
            ago = days_ago.get(name)
            setattr(row, f"{name}_at", None if ago is None else now - timedelta(days=ago))


def test_a_model_reads_only_the_newest_feedback_and_never_repeat_still_reads_all(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A year of history is not read on every today(): the model takes the newest
    `MODEL_FEEDBACK` reactions, ordered in the database as `feedback_time` orders
    them, while the never-repeat rule still hides every paper of the day rated."""
    monkeypatch.setattr(paperbot_module, "MODEL_FEEDBACK", 3)
    core.ingest(topical_papers())
    ann = user("ann")
    ages = {
        "2500.00001": {"up": 1},
        "2501.00001": {"up": 9, "down": 2},  # the 👎 overtook the 👍: it counts, at 2 days
        "2502.00001": {"saved": 3},
        "2503.00001": {"up": 4, "saved": 0},  # the 👍 stands: 4 days, not the fresh 🔖
        "2504.00001": {"up": 5},
    }
    for paper_id, days_ago in ages.items():
        core.react(ann, paper_id, +1)
        set_feedback(core, ann, paper_id, **days_ago)
    catalog, model = user_model(core, ann)
    assert {catalog.ids[e.row] for e in model.exemplars} == {"2500.00001", "2502.00001"}
    assert catalog.rows(["2501.00001"]).tolist() == [
        int(np.flatnonzero((catalog.vectors == model.negatives[0]).all(axis=1))[0])
    ]
    assert core.profile(ann).likes == 3  # the profile counts them all
    assert not set(ids(core, ann, limit=10)) & set(ages)


def test_an_answer_older_than_the_model_reads_is_not_a_skipped_pick(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skipped picks read only the batches of the likes the model reads; a pick of
    such a batch answered long ago is still answered, though its answer is not read."""
    monkeypatch.setattr(paperbot_module, "MODEL_FEEDBACK", 3)
    core.ingest(topical_papers())
    bo = user("bo")
    batch = ids(core, bo)
    core.react(bo, batch[1], +1)
    set_feedback(core, bo, batch[1], up=2)  # older than the three below
    unseen = [p.id for p in topical_papers() if p.id not in batch][:2]
    for paper_id in [*unseen, batch[0]]:
        core.react(bo, paper_id, +1)
    catalog, model = user_model(core, bo)
    assert {catalog.ids[e.row] for e in model.exemplars} == {*unseen, batch[0]}
    assert model.negative_weights.tolist() == [0.5] * 3  # batch[2:], not batch[1]
    skipped = {int(np.flatnonzero((catalog.vectors == v).all(axis=1))[0]) for v in model.negatives}
    assert skipped == set(catalog.rows(batch[2:]).tolist())


def test_a_dislike_older_than_the_model_reads_still_means_nothing_is_skipped(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipped picks are for people who never 👎: a 👎 that stands counts however old,
    though the model reads only the newest reactions (a channel member's share of
    `MODEL_FEEDBACK` can be five)."""
    monkeypatch.setattr(paperbot_module, "MODEL_FEEDBACK", 3)
    core.ingest(topical_papers())
    cy = user("cy")
    batch = ids(core, cy)
    unseen = [p.id for p in topical_papers() if p.id not in batch]
    core.react(cy, unseen[0], -1)
    set_feedback(core, cy, unseen[0], down=10)  # older than the three likes below
    for paper_id in [*unseen[1:3], batch[0]]:
        core.react(cy, paper_id, +1)
    catalog, model = user_model(core, cy)
    assert {catalog.ids[e.row] for e in model.exemplars} == {*unseen[1:3], batch[0]}
    assert len(model.negatives) == 0  # batch[1:] is not skipped: cy says no with 👎


def test_a_pasted_control_character_does_not_fail_a_follow(core: PaperBot) -> None:
    ann = user("ann")
    assert core.follow(ann, "diffusion\x00 models\u202e, graphs\x07") == [
        "diffusion models",
        "graphs",
    ]
    assert [i.keywords for i in core.profile(ann).interests if "graphs" in i.keywords]
    assert core.unfollow(ann, "graphs\x00")


def test_follow_seeds_interests_and_says_so(core: PaperBot) -> None:
    core.ingest(topical_papers())
    ivy = user("ivy")
    core.follow(ivy, "graph neural networks, link prediction")
    picks = core.today(ivy, limit=3)
    assert topic(picks[0].paper_id) == "graphs"
    assert re.fullmatch(
        r"(matches|nearer than most new papers to) your follow: graph neural networks"
        r'|mentions "(graph|neural|networks)" from your follow "graph neural networks"',
        picks[0].reason,
    )
    profile = core.profile(ivy)
    assert profile.follows == ("graph neural networks", "link prediction")
    assert any("graph neural networks" in i.keywords for i in profile.interests)


def test_a_follow_also_means_the_forms_the_papers_write_its_words_in(
    migrated_url: str, settings: Settings, real_embedder: SentenceTransformerEmbedder
) -> None:
    """Someone follows "mathematics"; the papers on it say "math" and "mathematical",
    and none says "mathematics". With the real model, those are forms of the followed
    word, and the keyword view ranks the papers by them. A word that only shares the
    stem is another word: "optimization" is not a form of "optimizers"."""
    core = PaperBot.open(migrated_url, embedder=real_embedder, settings=settings)
    try:
        core.ingest(
            [
                paper("2501.00001", "Math word problems for language models",
                      "We test a language model on grade-school math problems and "
                      "mathematical puzzles."),
                paper("2501.00002", "Verifying mathematical proofs step by step",
                      "A verifier checks each proof of a mathematical problem; math "
                      "accuracy improves."),
                paper("2501.00003", "Adaptive optimizers at scale",
                      "We compare the Adam optimizer with new optimizers for training."),
                paper("2501.00004", "A learned optimizer",
                      "An optimizer learned from data beats hand-written optimizers."),
                paper("2501.00005", "Bayesian optimization of hyperparameters",
                      "Bayesian optimization tunes hyperparameters with few trials."),
                paper("2501.00006", "Black-box optimization on a budget",
                      "Optimization of black-box functions, one trial at a time."),
                paper("2501.00007", "Denoising diffusion for images",
                      "Diffusion models generate images by denoising; each image is costly."),
                paper("2501.00008", "Latent diffusion for video",
                      "A diffusion model in a latent space generates images and video."),
            ]
        )  # fmt: skip
        catalog = core._catalog.get()
        forms = {
            text: {catalog.vocabulary[t] for t in catalog.word_forms(text, real_embedder.embed)}
            for text in ("mathematics", "optimizers")
        }
        assert {"math", "mathematical"} <= forms["mathematics"]
        assert "optimizer" in forms["optimizers"] and "optimization" not in forms["optimizers"]

        reader = user("mia")
        core.follow(reader, "mathematics")
        catalog, model = user_model(core, reader)
        assert model.keywords is not None
        lexical = dict(zip(catalog.ids, catalog.presence @ model.keywords, strict=True))
        math_papers = {"2501.00001", "2501.00002"}
        assert min(lexical[p] for p in math_papers) > 0
        assert all(lexical[p] == 0 for p in lexical if p not in math_papers)
        first = core.today(reader, limit=1, day=DAY)[0]
        assert first.paper_id in math_papers, first
        # A pick found through a form says so: 'mentions "math" from your follow ...'.
        math = catalog.vocabulary.index("math")
        assert ranking._follow_with(catalog, model, math) == "mathematics"
    finally:
        core.close()


# The never-repeat rule reads what someone has seen in two ways, by the size of the
# days ranked (`SEEN_LOOKUP_PAPERS`): every test of it runs both.
SEEN_LOOKUPS = pytest.mark.parametrize("seen_lookup", [500, 0], ids=["by-paper", "by-person"])


@SEEN_LOOKUPS
def test_no_repeats_until_nothing_else_is_left(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch, seen_lookup: int
) -> None:
    monkeypatch.setattr(paperbot_module, "SEEN_LOOKUP_PAPERS", seen_lookup)
    core.ingest(topical_papers(per_topic=2))  # 10 papers on one day
    jo = user("jo")
    core.react(jo, "2503.00000", +1)
    first = ids(core, jo)
    second = ids(core, jo)
    assert len(first) == 5 and len(second) == 4
    assert not set(first) & set(second) and "2503.00000" not in first + second
    third = ids(core, jo)  # everything was rated or shown: repeat rather than go silent
    assert len(third) == 5


def test_cold_start_is_never_empty_and_uses_the_workspace_prior(core: PaperBot) -> None:
    papers = [*topical_papers(), paper("2599.00001", "A popular survey", upvotes=134)]
    core.ingest(papers)
    newcomer = user("new", "T9")
    picks = core.today(newcomer, limit=5)
    assert len(picks) == 5 and all(p.reason for p in picks)
    assert any(p.reason == "popular today (134 upvotes)" for p in picks)

    for pid in ("2504.00001", "2504.00002", "2504.00003"):
        core.react(user("veteran", "T8"), pid, +1)
    fresh = core.today(user("newer", "T8"), limit=5)
    assert topic(fresh[0].paper_id) == "graphs"
    assert fresh[0].reason == "close to what people in your workspace liked"


def test_a_forgotten_persons_likes_leave_the_workspace_prior_at_once(core: PaperBot) -> None:
    core.ingest([*topical_papers(), paper("2599.00001", "A popular survey", upvotes=134)])
    veteran = user("veteran", "T8")
    for pid in ("2504.00001", "2504.00002", "2504.00003"):
        core.react(veteran, pid, +1)
    assert any("workspace" in p.reason for p in core.today(user("newer", "T8")))
    core.forget(veteran)  # within the prior's minute in the cache
    fresh = core.today(user("newest", "T8"))
    assert [p.paper_id for p in fresh] == ids(core, user("elsewhere", "T7"))
    assert all("workspace" not in p.reason for p in fresh)


def test_cold_picks_spread_wider_once_dislikes_outnumber_a_days_picks(core: PaperBot) -> None:
    """Before the first like, picks bet on the day's popular theme. Once someone has
    👎 more papers than a day's picks hold, that bet has missed: their picks spread
    over the day's smaller themes."""
    popular = [
        paper(f"2500.{i:05d}", f"diffusion study {i}: {TOPICS['diffusion']}", upvotes=100 + i)
        for i in range(12)
    ]
    others = [p for p in topical_papers(per_topic=3) if topic(p.id) != "diffusion"]
    core.ingest(popular + others)
    picks: dict[int, list[str]] = {}
    for dislikes in (0, 5, 6):
        who = user(f"new{dislikes}")
        shown = ids(core, who) + ids(core, who)  # each newcomer is shown the same ten
        for pid in shown[:dislikes]:
            core.react(who, pid, -1)
        picks[dislikes] = ids(core, who)[:4]  # the exploration slot aside
    assert [topic(p) for p in picks[0]].count("diffusion") >= 3
    assert picks[5] == picks[0]  # five 👎, one day's picks: still the popular bet
    spread = [topic(p) for p in picks[6]]
    assert spread.count("diffusion") <= 1 and len(set(spread)) >= 3


def test_empty_catalogue_gives_no_picks(core: PaperBot) -> None:
    assert core.today(user()) == [] and core.channel_picks(channel()) == []


def test_tenants_with_the_same_ids_never_mix(core: PaperBot) -> None:
    core.ingest(topical_papers())
    a, b = user("U1", "T1"), user("U1", "T2")
    c = UserRef("discord", "T1", "U1")
    for pid in ("2500.00001", "2500.00002"):
        core.react(a, pid, +1)
    seen_by_a = set(ids(core, a))
    assert core.profile(b).likes == 0 and core.profile(c).likes == 0
    for other in (b, c):
        picks = core.today(other, limit=5)
        assert not any("you liked" in p.reason for p in picks)
    assert set(ids(core, b, limit=10)) & seen_by_a  # a's impressions do not hide papers from b


def test_forget_removes_the_model_too(core: PaperBot) -> None:
    core.ingest(topical_papers())
    kim = user("kim")
    core.react(kim, "2500.00001", +1)
    assert any("you liked" in p.reason for p in core.today(kim))
    assert core.forget(kim) > 0
    profile = core.profile(kim)
    assert (profile.likes, profile.shown, profile.interests) == (0, 0, ())
    assert not any("you liked" in p.reason for p in core.today(kim))


def test_forget_drops_the_users_model_from_memory_too(core: PaperBot) -> None:
    # Its cache key (the feedback's stamp) would keep a stale model from being
    # used; but a forgotten person's model must not stay in the process either.
    core.ingest(topical_papers())
    kim = user("kim")
    core.react(kim, "2500.00001", +1)
    core.today(kim)
    assert core._models.nbytes > 0
    core.forget(kim)
    assert core._models.nbytes == 0


def test_channel_picks_learn_from_reactions_and_never_repeat_posts(core: PaperBot) -> None:
    core.ingest(topical_papers())
    room = channel("C7")
    first = core.channel_picks(room, limit=3)
    assert len(first) == 3
    core.record_posts(room, [(f"m{i}", p.paper_id) for i, p in enumerate(first)])
    core.record_posts(room, [("m-speech", "2501.00000")])
    event = ReactionEvent("slack", "T1", "C7", "m-speech", "lee", "+1", True, event_id="E1")
    assert core.handle_reaction(event) == "2501.00000"
    assert core.profile(user("lee")).likes == 1  # the person learns, not the channel

    second = core.channel_picks(room, limit=3)
    assert not {p.paper_id for p in second} & ({p.paper_id for p in first} | {"2501.00000"})
    assert topic(second[0].paper_id) == "speech"
    assert core.channel_picks(channel("C7", "T2"), limit=3)[0].paper_id != second[0].paper_id or (
        "you liked" not in core.channel_picks(channel("C7", "T2"), limit=3)[0].reason
    )


def test_a_busy_channel_is_modelled_on_its_most_recently_active_people(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the cap, those who reacted most recently make the channel's model, not
    # the first names in alphabetical order.
    monkeypatch.setattr(paperbot_module, "CHANNEL_MEMBERS", 2)
    core.ingest(topical_papers())
    for name in ("aa", "ab"):  # liked graph papers ten months ago
        core.react(user(name), "2504.00000", 1, channel="C9")
    long_ago = datetime.now(UTC) - timedelta(days=300)
    with core.db.write() as session:
        session.execute(sa.update(Reaction).values(up_at=long_ago, updated_at=long_ago))
    for paper_id in ("2501.00000", "2501.00001"):  # a newcomer likes speech today
        core.react(user("zz"), paper_id, 1, channel="C9")
    assert topic(core.channel_picks(channel("C9"), limit=3)[0].paper_id) == "speech"


def test_channel_picks_many_ranks_each_channel_as_channel_picks_does(core: PaperBot) -> None:
    core.ingest(topical_papers())
    learning, posted_to, cold = channel("C1"), channel("C2"), channel("C3", "T2")
    core.record_posts(learning, [("m1", "2501.00000")])
    core.handle_reaction(ReactionEvent("slack", "T1", "C1", "m1", "lee", "+1", True, "E1"))
    earlier = [p.paper_id for p in core.channel_picks(posted_to, limit=4)]
    core.record_posts(posted_to, [(f"p{i}", pid) for i, pid in enumerate(earlier)])
    rooms = [learning, posted_to, cold]

    batch = core.channel_picks_many(rooms, limit=4)

    # One batch, no leaks between channels: each equals its own channel_picks.
    assert batch == [core.channel_picks(room, limit=4) for room in rooms]
    assert topic(batch[0][0].paper_id) == "speech"  # C1 learned from its reactor
    assert "you liked" not in batch[2][0].reason  # the cold channel did not
    assert not {p.paper_id for p in batch[1]} & set(earlier)  # C2's posts are not repeated
    assert {p.paper_id for p in batch[2]} & set(earlier)  # ...but only in C2


def test_search_finds_by_meaning_with_a_reason(core: PaperBot) -> None:
    core.ingest(topical_papers())
    hits = core.search(user(), "graph neural networks link prediction", limit=3)
    assert [topic(h.paper_id) for h in hits] == ["graphs"] * 3
    assert hits[0].reason.startswith("matches your search: graph neural")


def test_lookback_widens_a_thin_day(core: PaperBot) -> None:
    # The newest day's one paper has fewer upvotes than the day before's favourites
    # (papers keep gathering votes): it still comes first, and older ones fill in.
    newest = paper(
        "2598.00001",
        "diffusion study: " + TOPICS["diffusion"],
        TOPICS["diffusion"],
        day=DAY + timedelta(days=1),
        upvotes=2,
    )
    earlier = [replace(p, upvotes=10 * p.upvotes) for p in topical_papers(per_topic=4)]
    core.ingest([*earlier, newest])
    picks = core.today(user("mo"), limit=5)
    assert len(picks) == 5 and picks[0].paper_id == "2598.00001"
    assert {p.listed_on for p in picks[1:]} == {DAY}


def test_a_day_without_papers_has_no_picks_not_an_error(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=2))
    for day in (DAY - timedelta(days=365), DAY + timedelta(days=365)):
        assert core.today(user("mo"), limit=5, day=day) == []
        assert core.channel_picks(channel("#c"), limit=5, day=day) == []
    assert len(core.today(user("mo"), limit=5, day=DAY)) == 5


@SEEN_LOOKUPS
def test_lookback_widens_a_day_the_person_has_seen_most_of(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch, seen_lookup: int
) -> None:
    monkeypatch.setattr(paperbot_module, "SEEN_LOOKUP_PAPERS", seen_lookup)
    texts = list(TOPICS.values()) * 3
    core.ingest(
        [
            paper(f"2510.{i:05d}", f"new {i}: {t}", t, day=DAY, upvotes=i)
            for i, t in enumerate(texts)
        ]
        + [
            paper(f"2509.{i:05d}", f"old {i}: {t}", t, day=DAY - timedelta(days=1), upvotes=i)
            for i, t in enumerate(texts)
        ]
    )
    mo = user("mo")
    shown = [paper_id for _ in range(6) for paper_id in ids(core, mo)]
    assert len(shown) == len(set(shown)) == 2 * len(texts)  # no repeat while any is unseen


def test_a_huge_day_is_scored_in_two_stages_without_losing_the_best(sqlite_core: PaperBot) -> None:
    sqlite_core.ingest(topical_papers(per_topic=220))  # 1,100 candidates, over the shortlist
    nia = user("nia")
    sqlite_core.react(nia, "2503.00001", +1)
    sqlite_core.react(nia, "2504.00001", -1)
    catalog, model = user_model(sqlite_core, nia)
    lexical = catalog.presence @ model.keywords
    exact, _ = model._full_score(catalog.vectors, lexical)
    staged, _ = model.score(catalog.vectors, catalog.presence)
    assert len(catalog.ids) > interest_model.SHORTLIST
    top = set(np.argsort(-exact)[:20])
    assert top == set(np.argsort(-staged)[:20])
    assert all(topic(p.paper_id) == "retrieval" for p in sqlite_core.today(nia, limit=4)[:3])


def test_profile_names_interests_by_topic_words_its_examples_contain(core: PaperBot) -> None:
    text = TOPICS["diffusion"]
    odd = paper("2599.00001", f"diffusion study 9: {text}", f"We study {text}, zyxglorp.")
    core.ingest([*topical_papers(), odd])
    ada = user("ada")
    for pid in ("2500.00001", "2599.00001", "2501.00001"):
        core.react(ada, pid, +1)
    interests = core.profile(ada).interests
    assert len(interests) == 2  # diffusion and speech stay apart
    words = [w for i in interests for w in i.keywords]
    assert "zyxglorp" not in words  # in one paper only: names no topic
    assert "models" not in words  # in diffusion's and RL's papers, over a fifth of all
    for interest in interests:
        assert interest.keywords[0] in interest.examples[0].lower()


def test_profile_is_kept_in_user_interest_profiles_and_read_back_while_current(
    migrated_url: str, settings: Settings
) -> None:
    first = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=settings)
    first.ingest(topical_papers())
    alice = user("alice")
    for pid in ("2500.00000", "2500.00001", "2502.00000"):
        first.react(alice, pid, +1)
    shown = first.profile(alice)
    assert shown.interests
    with first.db.read() as session:
        row = session.get(InterestProfile, ("slack", "T1", "alice"))
        assert row is not None and len(row.stamp) == 64
        assert [i["keywords"] for i in row.interests] == [list(i.keywords) for i in shown.interests]

    # Another process with the same inputs answers from the stored row, without building a model.
    second = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=settings)
    built: list[object] = []
    real_build = interest_model.build

    def counting_build(*args: object, **kwargs: object) -> interest_model.InterestModel:
        built.append(1)
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    interest_model.build = counting_build  # type: ignore[assignment]
    try:
        assert second.profile(alice).interests == shown.interests
        assert built == []
    finally:
        interest_model.build = real_build  # type: ignore[assignment]
    # New feedback makes the stored summary stale: it is rebuilt and rewritten.
    first.react(alice, "2503.00000", +1)
    with first.db.read() as session:
        before = session.get(InterestProfile, ("slack", "T1", "alice")).stamp  # type: ignore[union-attr]
    first.profile(alice)
    with first.db.read() as session:
        after = session.get(InterestProfile, ("slack", "T1", "alice")).stamp  # type: ignore[union-attr]
    assert before != after
    # So do new papers, even for a process that never saw the old catalogue: the
    # stamp names the papers, not how many times this process loaded them.
    first.ingest([paper("2599.00001", "graph study", "graph neural message passing")])
    third = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=settings)
    interest_model.build = counting_build  # type: ignore[assignment]
    try:
        third.profile(alice)
        assert built == [1]
    finally:
        interest_model.build = real_build  # type: ignore[assignment]
    with first.db.read() as session:
        assert session.get(InterestProfile, ("slack", "T1", "alice")).stamp != after  # type: ignore[union-attr]
    first.close()
    second.close()
    third.close()


def test_a_paper_listed_earlier_by_another_process_is_still_not_repeated(core: PaperBot) -> None:
    """The never-repeat rule asks which of the catalogue's papers of the ranked days
    were shown: by the papers the catalogue holds for those days, not by the listing
    day the database has now. Another process may move a paper to an earlier day
    (`ingest` keeps the first listing day) before this one's catalogue sees it."""
    papers = topical_papers()
    core.ingest(papers)
    other = PaperBot.open(core.db.url, embedder=HashingEmbedder(), settings=core.settings)
    try:
        dee = user("dee")
        first = ids(core, dee)
        moved = next(p for p in papers if p.id == first[0])
        other.ingest([replace(moved, listed_on=DAY - timedelta(days=30))])
        assert not set(ids(core, dee)) & set(first)
    finally:
        other.close()


LONG_TITLE = (
    "Bilingual Corpus Mining and Multistage Fine-Tuning for Improving Machine Translation "
    "of Lecture Transcripts"
)


def test_a_long_title_is_cut_after_a_whole_word_in_reasons_and_profiles(core: PaperBot) -> None:
    text = "Machine translation of lecture transcripts with bilingual corpus mining."
    core.ingest(
        [
            *topical_papers(per_topic=4),
            paper("2510.00001", LONG_TITLE, text),
            paper("2510.00002", "Lecture transcripts, translated", text),
        ]
    )
    liker = user("liker")
    core.react(liker, "2510.00001", +1)
    reasons = [p.reason for p in core.today(liker, limit=5)]
    cut = "'Bilingual Corpus Mining and Multistage Fine-Tuning for…' that you liked"
    assert any(r.endswith(" to " + cut) for r in reasons), reasons
    assert "(e.g. “Bilingual Corpus Mining and Multistage Fine-Tuning for Improving…”)" in (
        commands.describe_profile(core, liker)
    )
    # The search's answer repeats a long query the same way.
    found = commands.run_text(core, commands.Invocation(liker, None), f"search {LONG_TITLE}")
    assert found.text == (
        "Papers matching “Bilingual Corpus Mining and Multistage Fine-Tuning for Improving Machine…”:"
    )


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        # No space in the last part: cut where the limit falls.
        ("Supercalifragilistic" * 4, ("Supercalifragilistic" * 4)[:59] + "…"),
        ("扩散模型的快速采样方法研究" * 6, ("扩散模型的快速采样方法研究" * 6)[:59] + "…"),
        # Not between a letter and its accent, nor inside an emoji sequence.
        ("x" * 58 + "e\u0301" + "tude", "x" * 58 + "…"),
        ("x" * 57 + "👩\u200d💻 and more", "x" * 57 + "👩…"),
        # Nothing dangles before the ellipsis.
        (
            "A Survey of Surveys of Surveys of Everything Under the Sun: (and more)",
            ("A Survey of Surveys of Surveys of Everything Under the Sun…"),
        ),
        ("Short enough", "Short enough"),
    ],
)
def test_short_cuts_cleanly(text: str, cut: str) -> None:
    assert ranking.short(text) == cut
    assert len(cut) <= ranking.REASON_TITLE_CHARS


def test_a_reason_names_only_the_words_that_set_the_likes_apart(
    migrated_url: str, settings: Settings, real_embedder: SentenceTransformerEmbedder
) -> None:
    """Two liked diffusion papers (bundled sample) share "diffusion", and also "speed",
    "achieved" and "high-quality": a pick that shares only those is not said to share
    key words with them."""
    core = PaperBot.open(migrated_url, embedder=real_embedder, settings=settings)
    try:
        core.ingest(SampleSource().fetch())
        reader = user("reader")
        for pid in ("sample:063b01d38417", "sample:0aae2fe6b838"):
            core.react(reader, pid, +1)
        catalog, model = user_model(core, reader)
    finally:
        core.close()
    day = catalog.latest_day
    block = catalog.block(day, day)

    def reason(paper_id: str) -> str:
        hidden = np.ones(len(block), dtype=bool)
        hidden[catalog.index[paper_id] - block.start] = False
        return ranking.rank(catalog, block, model, limit=1, hidden=hidden, explore=False)[0].reason

    assert reason("sample:1477f8333ad0") == "shares key words with papers you liked: diffusion"
    for paper_id in ("sample:4bedc886c747", "sample:a046ca701458", "sample:80d8552b3816"):
        assert not reason(paper_id).startswith("shares key words"), reason(paper_id)
