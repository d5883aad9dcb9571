"""The 2-D paper map: a projection that keeps neighbours together, with the user's marks."""

from __future__ import annotations

import numpy as np

from bot.paperbot import PaperBot
from tests.helpers import DAY, TOPICS, paper, topical_papers, user


def _distance(a, b) -> float:  # type: ignore[no-untyped-def]
    return float(np.hypot(a.x - b.x, a.y - b.y))


def test_map_places_topics_apart_and_marks_likes_picks_and_follows(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=4))
    alice = user("alice")
    liked = "2500.00001"  # a diffusion paper
    core.react(alice, liked, 1)
    shown = {p.paper_id for p in core.today(alice, limit=3)}
    core.follow(alice, TOPICS["speech"])

    paper_map = core.paper_map(alice)

    assert len(paper_map.papers) == 5 * 4
    assert all(-1 <= p.x <= 1 and -1 <= p.y <= 1 for p in paper_map.papers)
    assert 0 < paper_map.explained[1] <= paper_map.explained[0] <= 1
    by_id = {p.paper_id: p for p in paper_map.papers}
    assert [p.paper_id for p in paper_map.papers if p.liked] == [liked]
    assert {p.paper_id for p in paper_map.papers if p.picked} == shown
    # Same-topic papers sit closer together than papers of different topics.
    same = _distance(by_id["2500.00001"], by_id["2500.00002"])
    other = _distance(by_id["2500.00001"], by_id["2501.00001"])
    assert same < other
    # The followed topic lands among its papers.
    (speech,) = paper_map.follows
    nearest = min(paper_map.papers, key=lambda p: _distance(p, speech))
    assert nearest.paper_id is not None and nearest.paper_id.startswith("2501.")


def test_map_is_stable_and_includes_older_liked_papers(core: PaperBot) -> None:
    from datetime import timedelta

    core.ingest(topical_papers(per_topic=4))
    old = paper("2400.00001", "An old favourite", "Graph networks.", day=DAY - timedelta(days=30))
    core.ingest([old])
    bob = user("bob")
    core.react(bob, old.id, 1)
    first, second = core.paper_map(bob), core.paper_map(bob)
    assert first == second  # no random signs or orders: the picture does not jump
    (older,) = [p for p in first.papers if p.paper_id == old.id]
    assert older.liked and not older.today


def test_map_of_an_empty_catalogue_is_empty(core: PaperBot) -> None:
    empty = core.paper_map(user("carol"))
    assert empty.papers == () and empty.follows == ()
