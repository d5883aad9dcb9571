"""Picks a person skipped: the only "no" from people who never 👎.

Many people answer the picks they like with 👍 and leave the rest. Without
dislikes the interest model has nothing to tell the words that name their
interest from the words every paper uses, and it ranks far worse
(docs/recommender-log.md: readers who never 👎). But silence alone says
nothing: someone who reacts to nothing may not have read the picks at all.
So, as search engines read a result skipped above a click, a pick counts as
skipped only when the person 👍 (or 🔖) another pick of the same batch, the
picks one `today()` call showed: they read that batch and left this one. It
then weighs as a weak 👎 (`SKIPPED_WEIGHT`), until the person reacts to it.

People who 👎 say "no" themselves; for them silence is only not reacting, and
counting it as well cost precision (measured, docs/recommender-log.md). So
nothing is skipped for anyone with a 👎 standing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bot.models import reaction_signal

# A skipped pick weighs half a 👎: chosen before measuring (docs/recommender-log.md).
SKIPPED_WEIGHT = 0.5


def skipped_picks(
    reactions: list[tuple[Any, ...]],
    batches_of: Callable[[list[str]], Iterable[tuple[str, datetime]]],
) -> list[tuple[str, datetime]]:
    """The picks skipped, with when each was shown, newest first.

    `reactions` are the person's (paper_id, up_at, down_at, saved_at) rows
    the model reads; `batches_of(paper_ids)` reads the impressions
    (paper_id, shown_at; one row per paper, at the time it was first shown)
    of the batches that showed any of those papers. It is only called when the
    answer can be non-empty: for anyone with a 👎 or without a like, their
    model's inputs are read without their impressions.
    """
    liked: dict[str, datetime] = {}
    for paper_id, up_at, down_at, saved_at in reactions:
        signal = reaction_signal(up_at, down_at)
        if signal < 0:
            return []
        if signal > 0 or saved_at is not None:
            liked[paper_id] = up_at if signal > 0 else saved_at
    if not liked:
        return []
    batches: dict[datetime, list[str]] = {}
    for paper_id, shown_at in batches_of(list(liked)):
        batches.setdefault(shown_at, []).append(paper_id)
    reacted = {r[0] for r in reactions}
    skipped = [
        (paper_id, shown_at)
        for shown_at, batch in batches.items()
        # Answered after it was shown: a paper liked first (on a channel post) and
        # shown later, when nothing else was left, says nothing about its batch.
        if any(p in liked and liked[p] >= shown_at for p in batch)
        for paper_id in batch
        if paper_id not in reacted
    ]
    return sorted(skipped, key=lambda item: (item[1], item[0]), reverse=True)
