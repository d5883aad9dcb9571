"""Which picks count as skipped: the rule itself, on plain rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.skipped_picks import skipped_picks

MORNING = datetime(2025, 10, 6, 8, 0, tzinfo=UTC)  # one batch of picks
EVENING = MORNING + timedelta(hours=10)  # the next batch
LATER = MORNING + timedelta(hours=1)


def like(paper_id: str, at: datetime = LATER) -> tuple[object, ...]:
    return (paper_id, at, None, None)


def dislike(paper_id: str, at: datetime = LATER) -> tuple[object, ...]:
    return (paper_id, None, at, None)


def save(paper_id: str, at: datetime = LATER) -> tuple[object, ...]:
    return (paper_id, None, None, at)


SHOWN = [("a1", MORNING), ("a2", MORNING), ("a3", MORNING), ("b1", EVENING), ("b2", EVENING)]


def batches_of(paper_ids: list[str]) -> list[tuple[str, datetime]]:
    """As the database answers: the impressions of the batches that showed one of these."""
    batches = {at for paper_id, at in SHOWN if paper_id in paper_ids}
    return [(paper_id, at) for paper_id, at in SHOWN if at in batches]


def test_the_picks_left_in_a_batch_with_a_like_are_skipped() -> None:
    assert skipped_picks([like("a1")], batches_of) == [("a3", MORNING), ("a2", MORNING)]


def test_a_batch_left_alone_says_nothing() -> None:
    """The evening batch has no answer: it may never have been read."""
    skipped = skipped_picks([like("a1")], batches_of)
    assert not {paper for paper, _ in skipped} & {"b1", "b2"}
    assert skipped_picks([], batches_of) == []


def test_a_bookmark_also_shows_the_batch_was_read() -> None:
    assert skipped_picks([save("b2", EVENING)], batches_of) == [("b1", EVENING)]


def test_answered_picks_are_not_skipped() -> None:
    assert skipped_picks([like("a1"), save("a2")], batches_of) == [("a3", MORNING)]


def test_nothing_is_skipped_for_someone_with_a_dislike_and_the_impressions_are_not_read() -> None:
    def unread(liked: list[str]) -> list[tuple[str, datetime]]:
        raise AssertionError("impressions read for someone who dislikes")

    assert skipped_picks([like("a1"), dislike("b1", EVENING)], unread) == []
    assert skipped_picks([], unread) == []  # no like either: nothing can be skipped


def test_a_like_given_before_its_paper_was_shown_says_nothing_of_the_batch() -> None:
    """Liked on a channel post first, then shown in picks once nothing else was left."""
    assert skipped_picks([like("b1", MORNING)], batches_of) == []


def test_a_like_given_before_its_paper_was_shown_counts_from_the_like_not_a_later_save() -> None:
    """The 👍 that stands dates the answer; a 🔖 added after the paper was shown does not."""
    liked_then_saved = ("b1", MORNING, None, EVENING + timedelta(hours=1))
    assert skipped_picks([liked_then_saved], batches_of) == []
