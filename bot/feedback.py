"""Feedback: 👍/👎/🔖 on papers, from reactions, buttons or commands, stored exactly once."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.database import dialect_insert, rowcount
from bot.domain import UserRef
from bot.errors import InvalidInput, UnknownPaper
from bot.models import Paper, ProcessedEvent, Reaction, User, is_paper_id, utcnow

log = logging.getLogger(__name__)

# Emoji as each platform names them: Discord sends the character, Slack a short name.
_SIGNALS = {
    "👍": 1,
    "+1": 1,
    "thumbsup": 1,
    "thumbs_up": 1,
    "👎": -1,
    "-1": -1,
    "thumbsdown": -1,
    "thumbs_down": -1,
}
# After an outage, adapters read the reactions on posts this recent again
# (`bot.missed_reactions`); a `/papers forget` is remembered as long (`bot.privacy`).
READ_BACK_WINDOW = timedelta(days=3)
SAVE_EMOJI = {"🔖", "bookmark"}


def is_feedback_emoji(name: str) -> bool:
    """👍, 👎 or 🔖 in any of the spellings the platforms use."""
    return signal_for_emoji(name) is not None or name in SAVE_EMOJI


def signal_for_emoji(name: str) -> int | None:
    """+1, -1, or None for emoji that are not feedback. Skin tones count as the base emoji."""
    base = name.split("::", 1)[0].strip(":")  # Slack: "+1::skin-tone-3"
    base = "".join(ch for ch in base if not _is_modifier(ch))
    return _SIGNALS.get(base)


def _is_modifier(ch: str) -> bool:
    # Skin-tone modifiers (U+1F3FB..U+1F3FF) and variation selectors (U+FE0E/F).
    return (
        "\U0001f3fb" <= ch <= "\U0001f3ff"
        or unicodedata.category(ch) == "Mn"
        or ch in "\ufe0e\ufe0f"
    )


@dataclass(frozen=True)
class ReactionEvent:
    """A platform reaction on a message, before it is resolved to a paper."""

    platform: str
    workspace: str
    channel: str
    message_id: str
    user: str
    emoji: str
    active: bool  # False when the reaction was removed
    event_id: str | None = None
    # Read again from a recent post after an outage (`bot.missed_reactions`), not
    # delivered live: it may be older than a `/papers forget`.
    read_back: bool = False


def insert_ignore(session: Session, model: type, values: dict[str, object]) -> bool:
    """INSERT that does nothing on a key conflict. Returns True when a row was inserted."""
    # RETURNING, not rowcount: drivers disagree on rowcount for DO NOTHING.
    statement = (
        dialect_insert(session)(model)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(sa.literal(1))
    )
    return session.execute(statement).first() is not None


def insert_ignore_many(session: Session, model: type, rows: list[dict[str, object]]) -> None:
    """One multi-row INSERT that skips rows whose key already exists."""
    if rows:
        session.execute(dialect_insert(session)(model).values(rows).on_conflict_do_nothing())


def ensure_user(session: Session, user: UserRef) -> None:
    insert_ignore(
        session,
        User,
        {
            "platform": user.platform,
            "workspace": user.workspace,
            "user_id": user.user,
            "created_at": utcnow(),
        },
    )


# How long a handled event id is remembered. Slack retries an event within minutes,
# a resumed Discord session replays what it missed while away: a week is far
# beyond either, and the table no longer grows with every reaction ever made.
EVENT_MEMORY = timedelta(days=7)


def forget_old_events(session: Session, now: datetime) -> int:
    """Delete the event ids handled before `EVENT_MEMORY` ago. Returns how many."""
    old = sa.delete(ProcessedEvent).where(col(ProcessedEvent.received_at) < now - EVENT_MEMORY)
    return rowcount(session.execute(old))


def first_time(session: Session, platform: str, workspace: str, event_id: str) -> bool:
    """Record a platform event id; False when it was already handled (a retry or replay)."""
    return insert_ignore(
        session,
        ProcessedEvent,
        {
            "platform": platform,
            "workspace": workspace,
            "event_id": event_id[:128],
            "received_at": utcnow(),
        },
    )


def _overtaken(column: Any) -> sa.ColumnElement[bool]:
    """A thumb that no longer counts: the other one was set after it."""
    other = {"up_at": col(Reaction.down_at), "down_at": col(Reaction.up_at)}.get(column.key)
    return sa.false() if other is None else other > column


def apply(
    session: Session,
    user: UserRef,
    paper_id: str,
    *,
    signal: int = 0,
    save: bool = False,
    active: bool = True,
    channel: str | None = None,
    renew: bool = False,
) -> bool:
    """Set or take back one piece of feedback. Returns True when anything changed.

    Setting what is already set, or taking back what is not there, changes
    nothing - so replays and out-of-order removals are harmless. With `renew`
    (a button pressed: a choice made now), a thumb already set but older than
    the other one is set again, so that it is the one that counts.
    """
    if signal not in (-1, 0, 1) or (signal == 0) == (not save):
        raise InvalidInput("Feedback is 👍 (+1), 👎 (-1) or 🔖 (save).")
    if (
        not is_paper_id(paper_id)
        or session.scalar(sa.select(col(Paper.id)).where(col(Paper.id) == paper_id)) is None
    ):
        raise UnknownPaper(paper_id)
    name = "saved_at" if save else ("up_at" if signal > 0 else "down_at")
    column = col(getattr(Reaction, name))
    now = utcnow()
    changes: dict[str, object] = {name: now if active else None, "updated_at": now}
    # Guarded by the current value: setting what is set, or clearing what is
    # clear, matches no row and changes nothing.
    row = (
        col(Reaction.platform) == user.platform,
        col(Reaction.workspace) == user.workspace,
        col(Reaction.user_id) == user.user,
        col(Reaction.paper_id) == paper_id,
    )
    if not active:
        statement = (
            sa.update(Reaction)
            .where(*row, column.is_not(None))
            .values(changes)
            .returning(sa.literal(1))
        )
        if session.execute(statement).first() is None:
            return False
        # Taking back the last piece of feedback removes the row, so the paper is
        # as if never rated: shown again, a skipped pick again, and its channel
        # no longer counts this person as one who reacts there.
        session.execute(
            sa.delete(Reaction).where(
                *row,
                col(Reaction.up_at).is_(None),
                col(Reaction.down_at).is_(None),
                col(Reaction.saved_at).is_(None),
            )
        )
        return True
    ensure_user(session, user)
    if channel:
        changes["channel_id"] = channel
    statement = (
        dialect_insert(session)(Reaction)
        .values(
            platform=user.platform,
            workspace=user.workspace,
            user_id=user.user,
            paper_id=paper_id,
            **changes,
        )
        .on_conflict_do_update(
            index_elements=["platform", "workspace", "user_id", "paper_id"],
            set_=changes,
            where=column.is_(None) | _overtaken(column) if renew else column.is_(None),
        )
        .returning(sa.literal(1))
    )
    changed = session.execute(statement).first() is not None
    # No model to invalidate here: interest models are cached under a stamp of
    # the feedback itself (see PaperBot._interest_model), so the next read sees this.
    return changed
