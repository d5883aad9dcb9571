"""`PaperBot`: the one door into the core for adapters, the CLI, the scheduler and tests.

Methods are synchronous and thread-safe. Adapters call them off their event
loop (`await asyncio.to_thread(core.today, user)`), so database and CPU work
never block it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time as time_module
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from bot import feedback, interest_model, posted_messages, privacy, ranking
from bot.catalog import Block, Catalog, CatalogCache
from bot.database import Database, keys_in, rowcount, upsert
from bot.domain import (
    ChannelRef,
    FeedbackState,
    IngestReport,
    Interest,
    PaperIn,
    Pick,
    Profile,
    SubscriptionInfo,
    SubscriptionStatus,
    UserRef,
)
from bot.embedding import (
    Embedder,
    WordVectors,
    embedder_from_settings,
    from_bytes,
    to_bytes,
)
from bot.errors import InvalidInput
from bot.ingest import Progress, count_lacking_vector, store_papers
from bot.models import (
    Channel,
    Delivery,
    Follow,
    Impression,
    InterestProfile,
    Paper,
    PostedMessage,
    Reaction,
    Subscription,
    feedback_time,
    is_paper_id,
    reaction_signal,
    utcnow,
)
from bot.normalise import clean_text
from bot.paper_map import PaperMap, project_papers
from bot.settings import Settings, load_settings
from bot.skipped_picks import SKIPPED_WEIGHT, skipped_picks

log = logging.getLogger(__name__)

MAX_FOLLOW_TOPICS = 10
MAX_TOPIC_CHARS = 200
MAX_QUERY_CHARS = 500
# How much a paper containing every word of a search query gains over one containing
# none: enough to lift an exact name the model has no meaning for, while meaning
# still orders the papers that share the words.
SEARCH_WORD_WEIGHT = 0.25
SUMMARY_CHARS = 400
_TOPIC_SPLIT = re.compile(r"[,;\n]+")
_BULLETS = "•·‣◦-*–—>"  # list bullets people paste, dashes included
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "„": "“", "«": "»"}  # opening -> closing
MODEL_FEEDBACK = 1_000  # newest reactions per person that shape a model; older ones have decayed
# The never-repeat rule looks up the ranked days' papers one by one up to this many,
# beyond it reads the person's ids (`_seen`). Measured on SQLite for someone with a
# year of history (docs/performance-log.md): by paper 0.3 ms for a 30-paper day, 1.3 ms
# for 500, 2.3 ms for 1,000, against 1.7 ms to read their ids; 20 ms by paper for
# a 10,000-paper day.
SEEN_LOOKUP_PAPERS = 500
CHANNEL_MEMBERS = 200  # reacting people, the most recently active, who make a channel's model
PRIOR_LIKES = 2_000  # newest likes in a workspace that make its cold-start prior
# Papers a word beyond the catalogue's vocabulary is looked up in, for search: such
# a word is rare (the vocabulary keeps the most frequent), a name.
MAX_WORD_HITS = 100
PRIOR_TTL_SECONDS = 60.0  # a new like reaches other newcomers' cold start within a minute


class PaperBot:
    def __init__(self, db: Database, embedder: Embedder, settings: Settings) -> None:
        self.db = db
        self.embedder = embedder
        self.settings = settings
        self._catalog = CatalogCache(db, embedder.name, embedder.dim)
        self._words = WordVectors(embedder)
        self._models = interest_model.ModelCache()
        self._priors: dict[tuple[str, str], tuple[str, float, np.ndarray | None]] = {}
        self._prior_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
    ) -> PaperBot:
        """Open the core on a migrated database. None means: take it from the settings."""
        settings = settings or load_settings()
        db = Database(database_url or settings.database_url)
        embedder = embedder or embedder_from_settings(
            settings.embedding_model, fast=settings.embedding_quantize
        )
        return cls(db, embedder, settings)

    def close(self) -> None:
        self.db.dispose()

    # ------------------------------------------------------------------ papers
    def ingest(
        self,
        papers: Iterable[PaperIn],
        *,
        progress: Progress | None = None,
        rejected: dict[str, int] | None = None,
    ) -> IngestReport:
        from collections import Counter

        report = store_papers(
            self.db, self.embedder, papers, progress=progress, rejected=Counter(rejected or {})
        )
        self._catalog.invalidate()
        return report

    def latest_day(self) -> date | None:
        return self._catalog.get().latest_day

    def papers_lacking_vectors(self) -> int:
        """Stored papers with no vector for this embedder, which are never offered:
        after a change of PAPERBOT_EMBEDDING_MODEL, every paper. `ingest([])` embeds
        them."""
        return count_lacking_vector(self.db, self.embedder.name)

    def warm_up(self) -> None:
        """Load now what the first requests would otherwise load in a worker thread,
        mid-serving: the catalogue, and the embedding model with the scale that finds
        the forms of followed words (`Catalog.word_form_scale`), which a follower's
        first picks need."""
        catalog = self._catalog.get()
        if catalog.ids:
            catalog.word_form_scale(self._words.embed)

    # ------------------------------------------------------------------ feedback
    def react(
        self,
        user: UserRef,
        paper_id: str,
        signal: int,
        active: bool = True,
        *,
        channel: str | None = None,
        exclusive: bool = False,
        renew: bool = False,
    ) -> bool:
        """👍 (+1) or 👎 (-1) on a paper; `active=False` takes it back. True if anything changed.

        Chat reactions keep both thumbs, and the newer counts; taking it back then
        leaves the other counting, as the emoji still on the message say.
        `exclusive`: setting one thumb takes back the other, for buttons that show
        only the thumb that counts (the web page). `renew`: a chat button, a choice
        made now: a thumb already set but overtaken by the other counts again. (Not
        exclusive there: an emoji the other thumb took back would return with the
        next read-back of missed reactions.)
        """
        if signal not in (1, -1):
            raise InvalidInput("A reaction is +1 (👍) or -1 (👎).")

        def work(session: Session) -> bool:
            changed = feedback.apply(
                session, user, paper_id, signal=signal, active=active, channel=channel, renew=renew
            )
            if exclusive and active:
                # After setting this thumb, so the row is never empty and never deleted.
                changed |= feedback.apply(session, user, paper_id, signal=-signal, active=False)
            return changed

        return self.db.write_retrying(work, what="store reaction")

    def save(self, user: UserRef, paper_id: str, active: bool = True) -> bool:
        """🔖: keep a paper for later. Counts as a mild interest."""
        return self.db.write_retrying(
            lambda s: feedback.apply(s, user, paper_id, save=True, active=active),
            what="store bookmark",
        )

    def feedback_states(
        self, user: UserRef, paper_ids: Sequence[str] | None = None
    ) -> dict[str, FeedbackState]:
        """The user's 👍/👎/🔖 that count on these papers (None: all), for showing them as set.

        Of 👍 and 👎 only the one that counts is set (`reaction_signal`: the newer
        wins), so a page never shows both while the profile counts one. Papers
        without any feedback are left out.
        """
        query = sa.select(Reaction).where(*_user_filter(Reaction, user))
        if paper_ids is not None:
            query = query.where(
                col(Reaction.paper_id).in_([p for p in paper_ids if is_paper_id(p)])
            )
        with self.db.read() as session:
            return {
                r.paper_id: FeedbackState(
                    up=r.signal > 0, down=r.signal < 0, saved=r.saved_at is not None
                )
                for r in session.scalars(query)
            }

    def handle_reaction(self, event: feedback.ReactionEvent) -> str | None:
        """A platform reaction on a message. Returns the paper id it counted for, or None.

        Reactions on messages that are not paperbot's posts, and emoji that are
        not feedback, are ignored. A repeated `event_id` changes nothing. A
        reaction read back after an outage is ignored on a post from before its
        author asked to be forgotten.
        """
        signal = feedback.signal_for_emoji(event.emoji)
        is_save = event.emoji in feedback.SAVE_EMOJI
        if signal is None and not is_save:
            return None
        user = UserRef(event.platform, event.workspace, event.user)

        def work(session: Session) -> str | None:
            posted = session.get(
                PostedMessage, (event.platform, event.workspace, event.channel, event.message_id)
            )
            if posted is None:
                return None
            asked = privacy.forgotten_at(session, user) if event.read_back else None
            if asked is not None and posted.posted_at <= asked:
                return None  # an emoji left on a post from before they asked
            if event.event_id and not feedback.first_time(
                session, event.platform, event.workspace, event.event_id
            ):
                return None
            feedback.apply(
                session,
                user,
                posted.paper_id,
                signal=signal or 0,
                save=is_save,
                active=event.active,
                channel=event.channel,
            )
            return posted.paper_id

        return self.db.write_retrying(work, what="store reaction")

    def record_posts(
        self, channel: ChannelRef, posts: Sequence[tuple[str, str]], delivery_id: int | None = None
    ) -> None:
        """Remember which paper each posted message shows: [(message_id, paper_id)]."""
        self.db.write_retrying(
            lambda session: posted_messages.record(session, channel, posts, delivery_id),
            what="record posted messages",
        )

    def recent_posts(
        self, platform: str, since: datetime, limit: int = 200
    ) -> list[tuple[ChannelRef, str]]:
        """(channel, message id) of the bot's posts on `platform` since `since`, newest first.

        An adapter that was disconnected reads their reactions again, to
        record what it missed (see `adapters/discord/events.py`).
        """
        with self.db.read() as session:
            rows = session.execute(
                sa.select(
                    col(PostedMessage.workspace),
                    col(PostedMessage.channel_id),
                    col(PostedMessage.message_id),
                )
                .where(
                    col(PostedMessage.platform) == platform, col(PostedMessage.posted_at) >= since
                )
                .order_by(col(PostedMessage.posted_at).desc(), col(PostedMessage.message_id).desc())
                .limit(limit)
            ).all()
        return [(ChannelRef(platform, w, c), m) for w, c, m in rows]

    def posted_papers(self, channel: ChannelRef, since: datetime) -> dict[str, str]:
        """paper id -> message id of the bot's posts in `channel` since `since`.

        A port resuming a post that a crash interrupted finds here the picks it
        already sent: each message is recorded as it goes out (`record_at_once`).
        """
        with self.db.read() as session:
            rows = session.execute(
                sa.select(col(PostedMessage.paper_id), col(PostedMessage.message_id)).where(
                    col(PostedMessage.platform) == channel.platform,
                    col(PostedMessage.workspace) == channel.workspace,
                    col(PostedMessage.channel_id) == channel.channel,
                    col(PostedMessage.posted_at) >= since,
                )
            ).all()
        return {paper_id: message_id for paper_id, message_id in rows}

    def follow(self, user: UserRef, text: str) -> list[str]:
        """Seed interests from free text ("diffusion models, speculative decoding")."""
        topics = split_topics(text)
        if not topics:
            raise InvalidInput("Tell me what to follow, for example: diffusion models, RLHF.")
        if len(topics) > MAX_FOLLOW_TOPICS:
            raise InvalidInput(f"Follow at most {MAX_FOLLOW_TOPICS} topics at a time.")
        vectors = self.embedder.embed(topics)

        def work(session: Session) -> None:
            feedback.ensure_user(session, user)
            # "Diffusion" after "diffusion" is the same follow, kept as first written;
            # following it again refreshes its vector (after a change of embedder).
            stored = {t.casefold(): t for t in self._followed(session, user)}
            rows = [
                {
                    "platform": user.platform,
                    "workspace": user.workspace,
                    "user_id": user.user,
                    "topic": stored.get(topic.casefold(), topic),
                    "model": self.embedder.name,
                    "vector": to_bytes(vector),
                    "created_at": utcnow(),
                }
                for topic, vector in zip(topics, vectors, strict=True)
            ]
            upsert(session, Follow, rows, update=("model", "vector"))

        self.db.write_retrying(work, what="store follows")
        return topics

    def unfollow(self, user: UserRef, topic: str) -> bool:
        """Stop following `topic` (or each of a list written as for `follow`), whatever
        its case. True if anything was followed and is not any more."""
        wanted = {t.casefold() for t in split_topics(topic)}
        if not wanted:
            raise InvalidInput("Tell me what to unfollow, for example: diffusion models.")

        def work(session: Session) -> bool:
            # Matched here, not with SQL lower(): SQLite's folds ASCII letters only.
            matching = [t for t in self._followed(session, user) if t.casefold() in wanted]
            if matching:
                session.execute(
                    sa.delete(Follow).where(
                        *_user_filter(Follow, user), col(Follow.topic).in_(matching)
                    )
                )
            return bool(matching)

        return self.db.write_retrying(work, what="remove follow")

    @staticmethod
    def _followed(session: Session, user: UserRef) -> list[str]:
        """The user's followed topics, oldest first."""
        return list(
            session.scalars(
                sa.select(col(Follow.topic))
                .where(*_user_filter(Follow, user))
                .order_by(col(Follow.created_at), col(Follow.topic))
            )
        )

    def knows(self, user: UserRef) -> bool:
        """Whether this user has told paperbot anything here: a follow, or feedback
        that stands. Someone it knows nothing of gets the cold-start picks."""
        # One round trip: `/papers today` asks it beside the picks.
        known = sa.or_(*(sa.exists().where(*_user_filter(m, user)) for m in (Follow, Reaction)))
        with self.db.read() as session:
            return bool(session.scalar(sa.select(known)))

    # ------------------------------------------------------------------ picks
    def today(self, user: UserRef, limit: int = 5, day: date | None = None) -> list[Pick]:
        """The user's personal picks among the papers listed on `day` (default: the latest)."""
        limit = _clamp_limit(limit)
        catalog = self._catalog.get()
        latest = catalog.latest_day
        if latest is None:  # no papers yet
            return []
        day = day or latest
        with self.db.read() as session:
            model = self._interest_model(session, catalog, user)
            seen = self._seen(session, catalog, user, day - self._lookback(), day)
        block = self._candidates(catalog, day, limit, seen)
        if block is None:
            return []
        prior = (
            self._workspace_prior(catalog, user.platform, user.workspace) if model.empty else None
        )
        ranked = ranking.rank(
            catalog, block, model, limit=limit, hidden=_hidden(block, seen), prior=prior
        )
        picks = self._picks(catalog, ranked)
        self._remember_shown(user, [p.paper_id for p in picks])
        return picks

    def channel_picks(
        self, channel: ChannelRef, limit: int = 5, day: date | None = None
    ) -> list[Pick]:
        """Picks for a channel post: the interests of people who react there, popularity, recency.

        Never a paper already posted to this channel, unless nothing else is left.
        """
        return self.channel_picks_many([channel], limit, day)[0]

    def channel_picks_many(
        self, channels: Sequence[ChannelRef], limit: int = 5, day: date | None = None
    ) -> list[list[Pick]]:
        """`channel_picks` for many channels, with a fixed number of queries for all of them.

        The daily fan-out ranks thousands of channels, most of which nobody
        reacts in yet; per-channel queries were most of its ranking time.
        """
        limit = _clamp_limit(limit)
        catalog = self._catalog.get()
        # One block for every channel, so the fan-out ranks them all against the same
        # candidates: a channel is posted a day's picks once, so it rarely runs out.
        block = self._candidates(catalog, day, limit, catalog.rows(()))
        if block is None or not channels:
            return [[] for _ in channels]
        keys = [(c.platform, c.workspace, c.channel) for c in channels]
        with self.db.read() as session:
            members = _members(session, keys)
            posted = _per_channel(session, PostedMessage, col(PostedMessage.paper_id), keys)
            models = [
                self._channel_model(session, catalog, channel, members.get(key, []))
                for channel, key in zip(channels, keys, strict=True)
            ]
        ranked = [
            ranking.rank(
                catalog,
                block,
                model,
                limit=limit,
                hidden=_hidden(block, catalog.rows(posted.get(key, ()))),
                prior=self._workspace_prior(catalog, channel.platform, channel.workspace),
                audience=ranking.CHANNEL,
            )
            for channel, key, model in zip(channels, keys, models, strict=True)
        ]
        return self._picks_many(catalog, ranked)

    def search(self, user: UserRef, query: str, limit: int = 5) -> list[Pick]:
        """Semantic search over every stored paper; containing the query's words counts too.

        A paper is a result if it contains one of the query's words, or is at least
        as alike to the query as a typical pair of papers here are to each other
        (`Catalog.similarity_scale`): a query about nothing in the catalogue (or
        gibberish) finds nothing rather than its five least unlike papers. The
        model knows meanings, not names: "GaLore" is found by the word.
        """
        query = clean_text(query)[:MAX_QUERY_CHARS].rstrip()
        if not query:
            raise InvalidInput("Tell me what to search for.")
        limit = _clamp_limit(limit)
        catalog = self._catalog.get()
        if not catalog.ids:
            return []
        similarity = catalog.vectors @ self.embedder.embed([query])[0]
        unknown = {w: catalog.rows(self._papers_saying(w)) for w in catalog.unknown_words(query)}
        words = catalog.word_match(query, unknown)
        found = np.flatnonzero((words > 0) | (similarity >= catalog.similarity_scale[0]))
        scores = similarity[found] + SEARCH_WORD_WEIGHT * words[found]
        order = np.argsort(-scores, kind="stable")[:limit]
        reason = f"matches your search: {ranking.short(query)}"
        return self._picks(
            catalog, [ranking.Ranked(int(found[i]), float(scores[i]), reason) for i in order]
        )

    def _papers_saying(self, word: str) -> list[str]:
        """Ids of papers whose title or abstract contains `word` (at most `MAX_WORD_HITS`)."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    sa.select(col(Paper.id))
                    .where(
                        sa.func.lower(col(Paper.title)).contains(word, autoescape=True)
                        | sa.func.lower(col(Paper.abstract)).contains(word, autoescape=True)
                    )
                    .limit(MAX_WORD_HITS)
                )
            )

    def saved(self, user: UserRef, limit: int = 10) -> list[Pick]:
        """The papers this user saved 🔖 here, the newest save first. A save that was
        taken back (the 🔖 reaction removed) is not listed."""
        limit = _clamp_limit(limit)
        with self.db.read() as session:
            rows = session.execute(
                sa.select(col(Reaction.paper_id), col(Reaction.saved_at))
                .where(*_user_filter(Reaction, user), col(Reaction.saved_at).is_not(None))
                .order_by(col(Reaction.saved_at).desc(), col(Reaction.paper_id))
                .limit(limit)
            ).all()
        this_year = utcnow().year
        return self._cards(
            [
                [
                    (paper_id, 1.0, f"you saved it on {_date_words(at, this_year)}")
                    for paper_id, at in rows
                    if at is not None  # always: the query asked for saves; for the type
                ]
            ]
        )[0]

    # ------------------------------------------------------------------ people
    def profile(self, user: UserRef) -> Profile:
        catalog = self._catalog.get()
        with self.db.read() as session:
            follows = self._followed(session, user)
            shown = session.scalar(
                sa.select(sa.func.count())
                .select_from(Impression)
                .where(*_user_filter(Impression, user))
            )
            # Counted in the database: the model reads only the newest reactions.
            likes, dislikes, saved = session.execute(
                sa.select(
                    sa.func.count().filter(Reaction.liked()),
                    sa.func.count().filter(Reaction.disliked()),
                    sa.func.count(col(Reaction.saved_at)),
                ).where(*_user_filter(Reaction, user))
            ).one()
            inputs = self._model_inputs(session, catalog, user)
            stored = session.get(InterestProfile, _user_key(user))
        if stored is not None and stored.stamp == inputs.stamp:
            current = stored.interests
        else:
            model = self._model_from(catalog, user, inputs)
            current = [
                {"keywords": list(kw), "weight": round(w, 3), "examples": list(ex)}
                for kw, w, ex in interest_model.describe(catalog, model)
            ]
            if inputs.reactions or inputs.follows:  # nothing to keep about someone unknown
                self._store_profile(user, inputs.stamp, current)
        interests = tuple(
            Interest(tuple(i["keywords"]), float(i["weight"]), tuple(i["examples"]))
            for i in current
        )
        return Profile(
            user=user,
            likes=likes,
            dislikes=dislikes,
            saved=saved,
            shown=int(shown or 0),
            follows=tuple(follows),
            interests=interests,
        )

    def _store_profile(self, user: UserRef, stamp: str, interests: list[dict[str, Any]]) -> None:
        def work(session: Session) -> None:
            feedback.ensure_user(session, user)
            row = {
                "platform": user.platform,
                "workspace": user.workspace,
                "user_id": user.user,
                "stamp": stamp,
                "interests": interests,
                "built_at": utcnow(),
            }
            upsert(session, InterestProfile, [row], update=("stamp", "interests", "built_at"))

        self.db.write_retrying(work, what="store interest profile")

    def housekeeping(self) -> int:
        """Delete what is kept only for a while: handled event ids past
        `feedback.EVENT_MEMORY`, forget requests past the read-back window. The
        scheduler leader runs it daily. Returns how many rows went."""
        now = utcnow()
        return self.db.write_retrying(
            lambda s: feedback.forget_old_events(s, now) + privacy.forget_old_requests(s, now),
            what="housekeeping",
        )

    def forget(self, user: UserRef) -> int:
        """Delete every row about this user in this workspace. Returns how many."""
        count = self.db.write_retrying(lambda s: privacy.forget(s, user), what="forget user")
        self._models.forget(_user_key(user))
        self._priors.clear()  # their likes must leave the workspace prior too
        return count

    # ------------------------------------------------------------------ channels
    def subscribe(
        self,
        channel: ChannelRef,
        at: time | str,
        tz: str,
        limit: int | None = None,
        *,
        by: str | None = None,
        name: str | None = None,
    ) -> SubscriptionInfo:
        """Post `limit` picks (default `PAPERBOT_PICKS_PER_POST`) to the channel daily."""
        post_at = parse_time(at)
        zone = parse_timezone(tz)
        limit = _clamp_limit(self.settings.picks_per_post if limit is None else limit)

        def work(session: Session) -> None:
            feedback.insert_ignore(
                session,
                Channel,
                {
                    "platform": channel.platform,
                    "workspace": channel.workspace,
                    "channel_id": channel.channel,
                    "name": name,
                    "created_at": utcnow(),
                },
            )
            session.merge(
                Subscription(
                    platform=channel.platform,
                    workspace=channel.workspace,
                    channel_id=channel.channel,
                    post_at=post_at,
                    timezone=zone,
                    picks=limit,
                    status="active",
                    failures=0,
                    last_error=None,
                    created_by=by,
                    updated_at=utcnow(),
                )
            )

        self.db.write_retrying(work, what="subscribe channel")
        info = self.subscription(channel)
        assert info is not None  # noqa: S101  (just written in the same call)
        return info

    def unsubscribe(self, channel: ChannelRef) -> bool:
        def work(session: Session) -> bool:
            row = session.get(Subscription, (channel.platform, channel.workspace, channel.channel))
            if row is None or row.status == "cancelled":
                return False
            row.status = "cancelled"
            row.updated_at = utcnow()
            return True

        return self.db.write_retrying(work, what="unsubscribe channel")

    def cancel_tenant(self, platform: str, workspace: str) -> int:
        """The bot left a guild or was uninstalled: cancel that tenant's subscriptions."""

        def work(session: Session) -> int:
            result = session.execute(
                sa.update(Subscription)
                .where(
                    col(Subscription.platform) == platform,
                    col(Subscription.workspace) == workspace,
                    col(Subscription.status) != "cancelled",
                )
                .values(status="cancelled", updated_at=utcnow())
            )
            return rowcount(result)

        count = self.db.write_retrying(work, what="cancel tenant subscriptions")
        log.info("cancelled %d subscriptions of %s:%s", count, platform, workspace)
        return count

    def subscription(self, channel: ChannelRef) -> SubscriptionInfo | None:
        with self.db.read() as session:
            row = session.get(Subscription, (channel.platform, channel.workspace, channel.channel))
            if row is None:
                return None
            last = session.scalar(
                sa.select(sa.func.max(col(Delivery.day))).where(
                    col(Delivery.platform) == channel.platform,
                    col(Delivery.workspace) == channel.workspace,
                    col(Delivery.channel_id) == channel.channel,
                    col(Delivery.status).in_(("sent", "confirmed")),
                )
            )
        return SubscriptionInfo(
            channel=channel,
            at=row.post_at,
            tz=row.timezone,
            limit=row.picks,
            # A plain string column, but the core writes no other value into it.
            status=cast(SubscriptionStatus, row.status),
            failures=row.failures,
            last_error=row.last_error,
            last_posted_on=last,
        )

    # ------------------------------------------------------------------ views
    def paper_map(self, user: UserRef, day: date | None = None) -> PaperMap:
        """The day's papers (and the user's rated ones) projected to 2-D, for a picture."""
        catalog = self._catalog.get()
        rated = self.feedback_states(user)
        with self.db.read() as session:
            shown = set(
                session.scalars(
                    sa.select(col(Impression.paper_id)).where(*_user_filter(Impression, user))
                )
            )
            follows = [
                (topic, np.frombuffer(vector, dtype=np.float32, count=self.embedder.dim))
                for topic, vector in session.execute(
                    sa.select(col(Follow.topic), col(Follow.vector)).where(
                        *_user_filter(Follow, user), col(Follow.model) == self.embedder.name
                    )
                )
            ]
        return project_papers(catalog, day or catalog.latest_day, rated, shown, follows)

    # ------------------------------------------------------------------ internals
    def _candidates(
        self, catalog: Catalog, day: date | None, limit: int, seen: np.ndarray
    ) -> Block | None:
        """The papers of `day`, and of the days before it too when `day` is thin (a
        weekend, a holiday), or has fewer papers the person has not seen than they
        asked for: the never-repeat rule then looks back before it repeats. `seen`
        holds the catalogue rows of the papers they rated or were shown."""
        day = day or catalog.latest_day
        if day is None:
            return None
        block = catalog.block(day, day)
        if self.settings.lookback_days and (
            len(block) < 3 * limit or len(block) - _seen_in(block, seen).sum() < limit
        ):
            block = catalog.block(day - self._lookback(), day)
        return block if len(block) else None

    def _lookback(self) -> timedelta:
        return timedelta(days=self.settings.lookback_days)

    def _seen(
        self, session: Session, catalog: Catalog, user: UserRef, first: date, last: date
    ) -> np.ndarray:
        """Catalogue rows of the papers listed from `first` to `last` that the user rated
        or was shown: what the never-repeat rule needs. Asked from the smaller side:
        a few dozen papers of a day are looked up one by one, where SQLite would
        otherwise walk a year of someone's history; a day of thousands of papers
        reads the person's paper ids instead (no timestamps, about 1 µs a row)."""
        lo, hi = catalog.span(first, last)
        few = hi - lo <= SEEN_LOOKUP_PAPERS
        # The catalogue's papers of those days, not the papers table's: another
        # process may have moved one to an earlier day (`ingest` keeps the first)
        # that this catalogue does not know of yet, and it must stay hidden.
        listed = catalog.ids[lo:hi]

        def ids(table: type[Reaction] | type[Impression]) -> sa.Select[str]:
            query = sa.select(col(table.paper_id)).where(*_user_filter(table, user))
            return query.where(col(table.paper_id).in_(listed)) if few else query

        rows = catalog.rows(session.scalars(sa.union(ids(Reaction), ids(Impression))))
        return rows[(rows >= lo) & (rows < hi)]

    @staticmethod
    def _dislikes_any(session: Session, user: UserRef) -> bool:
        """Whether a 👎 of the user's stands, on any paper."""
        return bool(
            session.scalar(
                sa.select(sa.exists().where(*_user_filter(Reaction, user), Reaction.disliked()))
            )
        )

    def _batches_of(
        self, session: Session, user: UserRef, paper_ids: list[str]
    ) -> list[tuple[str, datetime]]:
        """(paper_id, shown_at) of the papers shown in the same picks as one of
        `paper_ids`: the batches `skipped_picks` reads, and only those. Papers of
        those batches the user reacted to are left out (but for `paper_ids`): the
        model may read only their newest reactions, and an answer older than
        those is still an answer."""
        batches = sa.select(col(Impression.shown_at)).where(
            *_user_filter(Impression, user), col(Impression.paper_id).in_(paper_ids)
        )
        # NOT IN, read once, not an EXISTS per row: SQLite probed the reactions'
        # key for each of a year-long user's ~1,500 batch rows (measured 0.3 ms more).
        answered = sa.select(col(Reaction.paper_id)).where(*_user_filter(Reaction, user))
        return [
            (paper_id, shown_at)
            for paper_id, shown_at in session.execute(
                sa.select(col(Impression.paper_id), col(Impression.shown_at)).where(
                    *_user_filter(Impression, user),
                    col(Impression.shown_at).in_(batches.scalar_subquery()),
                    col(Impression.paper_id).in_(paper_ids)
                    | col(Impression.paper_id).not_in(answered),
                )
            )
        ]

    def _interest_model(
        self, session: Session, catalog: Catalog, user: UserRef
    ) -> interest_model.InterestModel:
        return self._model_from(catalog, user, self._model_inputs(session, catalog, user))

    def _model_inputs(
        self, session: Session, catalog: Catalog, user: UserRef, limit: int | None = None
    ) -> _ModelInputs:
        """What the user's model is built from, with a digest of it: their newest
        `limit` (default `MODEL_FEEDBACK`) reactions, as many skipped picks, and their
        follows.

        The model is a pure function of these, the catalogue and the day, so it
        is cached under a digest of exactly those inputs: any change, from any
        process (or a forget and a fresh start), rebuilds it.
        """
        limit = MODEL_FEEDBACK if limit is None else limit
        reactions = self._reactions(session, user, limit)

        def batches_of(liked: list[str]) -> list[tuple[str, datetime]]:
            # No 👎 among the newest reactions; nothing is skipped for someone with
            # an older one standing either, read only when there are older ones.
            if len(reactions) == limit and self._dislikes_any(session, user):
                return []
            return self._batches_of(session, user, liked)

        skipped = skipped_picks(reactions, batches_of)
        follows = self._follows(session, catalog, user)
        return _ModelInputs(
            catalog.fingerprint, reactions, skipped[:limit], follows, utcnow().date()
        )

    def _model_from(
        self, catalog: Catalog, user: UserRef, inputs: _ModelInputs
    ) -> interest_model.InterestModel:
        key = _user_key(user)
        model = self._models.get(key, inputs.stamp)
        if model is None:
            model = interest_model.build(
                catalog, _feedback(catalog, inputs), inputs.follows, inputs.today
            )
            self._models.put(key, inputs.stamp, model, inputs.generation)
        return model

    def _channel_model(
        self, session: Session, catalog: Catalog, channel: ChannelRef, members: list[str]
    ) -> interest_model.InterestModel:
        """The combined interests of the people who react in this channel (`_members`).

        Each member brings an equal share of `MODEL_FEEDBACK`, their newest: the
        post is for the room, so one prolific member does not drown the others,
        and a channel of 200 costs no more than one person with a long history.
        """
        feedback: list[interest_model.Feedback] = []
        follows: list[interest_model.Follow] = []
        members = members[:CHANNEL_MEMBERS]
        share = max(1, MODEL_FEEDBACK // max(1, len(members)))
        for member in members:
            inputs = self._model_inputs(
                session, catalog, UserRef(channel.platform, channel.workspace, member), share
            )
            feedback.append(_feedback(catalog, inputs))
            follows += inputs.follows
        return interest_model.build(
            catalog, interest_model.Feedback.concat(feedback), follows, utcnow().date()
        )

    def _reactions(self, session: Session, user: UserRef, limit: int) -> list[tuple[Any, ...]]:
        """(paper_id, up_at, down_at, saved_at) of the newest `limit` reactions, newest
        feedback first (`feedback_time`)."""
        return [
            tuple(r)
            for r in session.execute(
                sa.select(
                    col(Reaction.paper_id),
                    col(Reaction.up_at),
                    col(Reaction.down_at),
                    col(Reaction.saved_at),
                )
                .where(*_user_filter(Reaction, user))
                .order_by(Reaction.feedback_at().desc(), col(Reaction.paper_id).desc())
                .limit(limit)
            )
        ]

    def _follows(
        self, session: Session, catalog: Catalog, user: UserRef
    ) -> list[interest_model.Follow]:
        return [
            interest_model.Follow(
                topic,
                from_bytes(vector, catalog.dim),
                catalog.word_forms(topic, self._words.embed),
            )
            for topic, vector in session.execute(
                sa.select(col(Follow.topic), col(Follow.vector))
                .where(*_user_filter(Follow, user), col(Follow.model) == self.embedder.name)
                .order_by(col(Follow.topic))
            )
        ]

    def _workspace_prior(
        self, catalog: Catalog, platform: str, workspace: str
    ) -> np.ndarray | None:
        """What members of this workspace liked, as one direction: the cold-start prior.

        Over a big workspace this is a heavy query, so it is cached per workspace
        for `PRIOR_TTL_SECONDS` (and dropped when the catalogue changes).
        """
        key = (platform, workspace)
        now = time_module.monotonic()
        with self._prior_lock:
            cached = self._priors.get(key)
            if cached is not None and cached[0] == catalog.fingerprint and cached[1] > now:
                return cached[2]
        with self.db.read() as session:
            liked = session.scalars(
                sa.select(col(Reaction.paper_id))
                .where(
                    col(Reaction.platform) == platform,
                    col(Reaction.workspace) == workspace,
                    Reaction.liked(),  # a 👍 that stands: a later 👎 replaces it
                )
                .order_by(col(Reaction.up_at).desc())
                .limit(PRIOR_LIKES)
            ).all()
        rows = catalog.rows(liked)
        prior = None
        if len(rows):
            mean = catalog.vectors[rows].mean(axis=0)
            norm = float(np.linalg.norm(mean))
            prior = mean / norm if norm > 0 else None
        with self._prior_lock:
            self._priors[key] = (catalog.fingerprint, now + PRIOR_TTL_SECONDS, prior)
        return prior

    def _picks(self, catalog: Catalog, ranked: list[ranking.Ranked]) -> list[Pick]:
        return self._picks_many(catalog, [ranked])[0]

    def _picks_many(
        self, catalog: Catalog, rankings: Sequence[list[ranking.Ranked]]
    ) -> list[list[Pick]]:
        """The papers of several rankings, read in one query."""
        return self._cards(
            [[(catalog.ids[r.row], r.score, r.reason) for r in ranked] for ranked in rankings]
        )

    def _cards(self, lists: Sequence[Sequence[tuple[str, float, str]]]) -> list[list[Pick]]:
        """Each list of (paper id, score, reason) as picks, in order, read in one query.
        A paper no longer stored is left out."""
        ids = {paper_id for entries in lists for paper_id, _, _ in entries}
        with self.db.read() as session:
            # Columns, not Paper entities: building SQLModel objects was most of
            # the cost of a channel's picks in a big fan-out.
            papers = {
                p.id: p
                for p in session.execute(sa.select(*_PICK_COLUMNS).where(col(Paper.id).in_(ids)))
            }
        return [
            [
                Pick(
                    paper.id,
                    paper.title,
                    paper.abs_url or "",
                    score,
                    reason,
                    authors=tuple(paper.authors),
                    summary=summary_of(paper),
                    upvotes=paper.upvotes,
                    github=paper.github,
                    thumbnail=paper.thumbnail,
                    listed_on=paper.listed_on,
                )
                for paper_id, score, reason in entries
                if (paper := papers.get(paper_id)) is not None
            ]
            for entries in lists
        ]

    def _remember_shown(self, user: UserRef, paper_ids: list[str]) -> None:
        if not paper_ids:
            return

        def work(session: Session) -> None:
            feedback.ensure_user(session, user)
            now = utcnow()
            # One statement for all picks: today() is on the hot path.
            feedback.insert_ignore_many(
                session,
                Impression,
                [
                    {
                        "platform": user.platform,
                        "workspace": user.workspace,
                        "user_id": user.user,
                        "paper_id": pid,
                        "shown_at": now,
                    }
                    for pid in paper_ids
                ],
            )

        self.db.write_retrying(work, what="remember shown papers")

    # ------------------------------------------------------------------ scheduling
    # Used by bot.scheduler and bot.deliveries (the daily channel posts).
    def feed_day(self, on_or_before: date) -> date | None:
        """The newest day with listed papers, not after `on_or_before`: what a post shows."""
        catalog = self._catalog.get()
        if not catalog.ids:
            return None
        days = catalog.listed_on[catalog.listed_on <= np.datetime64(on_or_before, "D")]
        return days.max().astype(object) if len(days) else None

    def stored_picks(self, paper_ids: Sequence[str], notes: Sequence[dict[str, Any]]) -> list[Pick]:
        """Rebuild a claimed delivery's picks, in order, so a retry re-sends the same post."""
        catalog = self._catalog.get()
        ranked = [
            ranking.Ranked(
                catalog.index[pid], float(note.get("score", 0.0)), str(note.get("reason", ""))
            )
            for pid, note in zip(paper_ids, notes, strict=False)
            if pid in catalog.index
        ]
        return self._picks(catalog, ranked)


@dataclass(frozen=True)
class _ModelInputs:
    catalog: str  # `Catalog.fingerprint`
    reactions: list[tuple[Any, ...]]
    skipped: list[tuple[str, datetime]]  # see `skipped_picks`
    follows: list[interest_model.Follow]
    today: date

    @property
    def generation(self) -> str:
        """What every stamp of this catalogue and day shares (`ModelCache.put`)."""
        return f"{self.catalog} {self.today}"

    @functools.cached_property
    def stamp(self) -> str:
        """The digest the model is cached under. Computed only when asked for: a channel
        model reads its members' inputs but caches nothing under them."""
        return hashlib.sha256(
            repr(
                (
                    self.catalog,
                    self.today,
                    self.reactions,
                    self.skipped,
                    [f.topic for f in self.follows],
                )
            ).encode()
        ).hexdigest()


_PICK_COLUMNS = (
    col(Paper.id),
    col(Paper.title),
    col(Paper.abs_url),
    col(Paper.authors),
    col(Paper.ai_summary),
    col(Paper.abstract),
    col(Paper.upvotes),
    col(Paper.github),
    col(Paper.thumbnail),
    col(Paper.listed_on),
)


def summary_of(paper: Paper | sa.Row[*tuple[Any, ...]]) -> str:
    """The AI summary when there is one, else the first sentences of the abstract."""
    if paper.ai_summary:
        return paper.ai_summary
    text = paper.abstract
    if len(text) <= SUMMARY_CHARS:
        return text
    cut = text.rfind(". ", 0, SUMMARY_CHARS)
    return text[: cut + 1] if cut > SUMMARY_CHARS // 3 else text[: SUMMARY_CHARS - 1] + "…"


def parse_time(value: time | str) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    match = re.fullmatch(r"\s*(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s*", value.lower())
    if not match:
        raise InvalidInput(f"I can't read the time {value[:20]!r}; use HH:MM, for example 09:00.")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3):
        if not 1 <= hour <= 12:
            raise InvalidInput("With am/pm the hour is 1 to 12.")
        hour = hour % 12 + (12 if match.group(3) == "pm" else 0)
    if hour > 23 or minute > 59:
        raise InvalidInput(f"{value[:20]!r} is not a time of day.")
    return time(hour, minute)


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def parse_timezone(value: str) -> str:
    # As the tz database spells it: people type "utc" or "europe/berlin", and ZoneInfo
    # only finds the exact spelling.
    name = _zone_names().get(value.strip().casefold(), value.strip())
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"I don't know the time zone {name[:40]!r}; use an IANA name such as Europe/Berlin."
        ) from None
    return name


def split_topics(text: str) -> list[str]:
    """The topics in "diffusion models, speculative decoding" (commas, semicolons or
    lines), each as stored, without repeats whatever their case."""
    topics: list[str] = []
    for raw in _TOPIC_SPLIT.split(text):
        topic = _topic(raw)
        if topic and topic.casefold() not in (t.casefold() for t in topics):
            topics.append(topic)
    return topics


def _topic(raw: str) -> str:
    """A followed topic as stored: one line of plain text, or "" if it names nothing.

    Control characters go (PostgreSQL text cannot hold a NUL, and a pasted one must
    not fail the follow), and so do list bullets around it ("• diffusion", "- RL")
    and a pair of quotes around it ('"diffusion models"'). Text without a letter or
    digit ("!!!", "-") is no topic.
    """
    topic = clean_text(raw)[:MAX_TOPIC_CHARS].strip().lstrip(_BULLETS).strip()
    if len(topic) > 1 and _QUOTES.get(topic[0]) == topic[-1]:
        topic = topic[1:-1].strip()
    return topic if any(ch.isalnum() for ch in topic) else ""


def _date_words(at: datetime, this_year: int) -> str:
    """ "Nov 20", or "Nov 20, 2025" outside this year."""
    said = f"{at:%b} {at.day}"
    return said if at.year == this_year else f"{said}, {at.year}"


def _clamp_limit(limit: int, upper: int = 10) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise InvalidInput("The number of papers must be at least 1.")
    return min(limit, upper)


def _members(
    session: Session, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str | None], list[str]]:
    """The people who react in these channels, per channel, the most recently active first:
    past `CHANNEL_MEMBERS`, those who reacted a year ago give way to today's."""
    channel = (col(Reaction.platform), col(Reaction.workspace), col(Reaction.channel_id))
    latest = sa.func.max(col(Reaction.updated_at))
    rows = session.execute(
        sa.select(*channel, col(Reaction.user_id))
        .where(keys_in(channel, keys))
        .group_by(*channel, col(Reaction.user_id))
        .order_by(latest.desc(), col(Reaction.user_id))
    )
    found: dict[tuple[str, str, str | None], list[str]] = {}
    for platform, workspace, channel_id, user_id in rows:
        found.setdefault((platform, workspace, channel_id), []).append(user_id)
    return found


def _per_channel(
    session: Session, table: Any, column: Any, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], set[str]]:
    """The distinct values of `column` in `table`'s rows of these channels, per channel."""
    channel = (table.platform, table.workspace, table.channel_id)
    found: dict[tuple[str, str, str], set[str]] = {}
    rows = session.execute(sa.select(*channel, column).distinct().where(keys_in(channel, keys)))
    for platform, workspace, channel_id, value in rows:
        found.setdefault((platform, workspace, channel_id), set()).add(value)
    return found


def _seen_in(block: Block, seen: np.ndarray) -> np.ndarray:
    """Which of the block's candidates are among the catalogue rows `seen`."""
    mask = np.zeros(len(block), dtype=bool)
    rows = seen - block.start
    mask[rows[(rows >= 0) & (rows < len(block))]] = True
    return mask


def _hidden(block: Block, seen: np.ndarray) -> np.ndarray | None:
    """Candidates not to show again (catalogue rows `seen`); None when that would leave
    nothing to show."""
    hidden = _seen_in(block, seen)
    return None if hidden.all() or not hidden.any() else hidden


def _feedback(catalog: Catalog, inputs: _ModelInputs) -> interest_model.Feedback:
    """The reactions and skipped picks `inputs` holds, on papers in the catalogue, as
    model input."""
    items = []
    for paper_id, up_at, down_at, saved_at in inputs.reactions:
        row = catalog.index.get(paper_id)
        if row is not None:
            signal = reaction_signal(up_at, down_at)
            at = feedback_time(up_at, down_at, saved_at)
            items.append((row, signal, saved_at is not None, at.toordinal(), 1.0))
    for paper_id, shown_at in inputs.skipped:
        row = catalog.index.get(paper_id)
        if row is not None:
            items.append((row, -1, False, shown_at.toordinal(), SKIPPED_WEIGHT))
    return interest_model.Feedback.of(items)


def _user_key(user: UserRef) -> tuple[str, str, str]:
    return (user.platform, user.workspace, user.user)


def _user_filter(
    model: type[Follow] | type[Reaction] | type[Impression], user: UserRef
) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        col(model.platform) == user.platform,
        col(model.workspace) == user.workspace,
        col(model.user_id) == user.user,
    )
