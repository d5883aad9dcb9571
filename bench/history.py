"""What a year of history costs: today() and channel picks for people who have used the bot daily.

    python bench/history.py [--days 365] [--users 100]

`bench/today.py` gives every user a few reactions; this gives each a year's.
Papers get vectors from the fast stand-in embedder (`HashingEmbedder`) and
abstract-like text (`bench/today.py`'s), 30 listed on each of `--days` days
up to today, so a call ranks today's 30. On every day before today each user
was shown 5 picks (09:00 that day) and reacted to 70% of them an hour later,
40% of those with a 👍 and the rest with a 👎; a quarter of the users never 👎,
so they leave those picks unanswered and their skipped picks are read and
counted. About 30% of the reactions are on a channel post (user `U{u}` reacts
in channel `C{u % 20}`), so 20 channels have members. A user has about 1,800
impressions and up to 1,300 reactions. today() reads the newest 1,000 reactions
(`MODEL_FEEDBACK`), which papers of today they rated or were shown, and, for
someone who never 👎, the batches of picks their likes were in; a channel's
model reads an equal share of the 1,000 from each member.

Each user asks for their picks once (the first call of the day builds their
model) and again (the model is cached); then the 20 channels' picks are
computed in one `channel_picks_many`, twice (channel models are not cached).

Two raw floors, measured in the same run on the same database:

- read: a year's history through plain sqlite3, as stored (no datetime
  parsing): for a user, all their reactions and impressions; for the
  channels, their members, each member's reactions, and the impressions of
  a member with no 👎. The calls read less than that; the ratio is what all
  the rest of a call costs (turning rows into a model, ranking, and for
  today() remembering the picks shown: one small write), next to one plain
  read of the history it is about.
- dot: a numpy dot product of one user vector with today's candidate matrix,
  as in `bench/today.py`, with single-threaded BLAS, as today() runs. With 30
  candidates this is microseconds: the ratio shows how little of the call is
  the ranking arithmetic.

It also reports what the model cache holds per person: the bytes of the numpy
arrays of a year-long user's cached `InterestModel` (exemplars, weights,
keyword weights, and the stacked matrix built for scoring), and how many such
models the cache's memory budget (`MODEL_CACHE_BYTES`) keeps.

Target: today()'s p99 <= 20 ms, as in `bench/today.py`. The channel fan-out
has no target of its own; `bench/fanout.py`'s (10,000 subscriptions in 30 s)
leaves 3 ms a channel.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import TypeVar

import numpy as np
import sqlalchemy as sa
from threadpoolctl import ThreadpoolController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.today import WORDS, abstract, background_vocabulary, percentile
from bot import database, runner
from bot.domain import ChannelRef, UserRef
from bot.embedding import HashingEmbedder, paper_text, to_bytes
from bot.interest_model import InterestModel
from bot.models import Impression, Paper, PaperEmbedding, Reaction, User
from bot.paperbot import PaperBot
from bot.settings import Settings

PAPERS_PER_DAY = 30
PICKS_PER_DAY = 5
ANSWERED = 0.7  # share of picks reacted to
LIKED = 0.4  # share of the reactions that are 👍 (the rest 👎)
ON_CHANNEL = 0.3  # share of the reactions made on a channel post
CHANNELS = 20
FLOOR_CALLS = 1_000
INSERT_BATCH = 20_000
TARGET_MS = 20.0

T = TypeVar("T")


def populate(core: PaperBot, days: int, users: int, rng: random.Random) -> tuple[list[str], int]:
    """Bulk-load the papers (with vectors), users, impressions and reactions.

    Returns the ids of today's papers (the candidates) and the number of reactions."""
    embedder = core.embedder
    today = datetime.now(UTC).date()
    background = background_vocabulary(rng)
    listed: dict[date, list[str]] = {}
    papers = []
    now = datetime.now(UTC)
    for d in range(days):
        day = today - timedelta(days=days - 1 - d)
        for k in range(PAPERS_PER_DAY):
            pid = f"bench.{d:04d}.{k:02d}"
            listed.setdefault(day, []).append(pid)
            papers.append(
                {
                    "id": pid,
                    "title": " ".join(rng.sample(WORDS, 4)),
                    "abstract": abstract(rng, background),
                    "authors": ["A. Author"],
                    "listed_on": day,
                    "upvotes": rng.randrange(50),
                    "keywords": [],
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
            )
    vectors = embedder.embed([paper_text(p["title"], p["abstract"]) for p in papers])
    with core.db.write() as s:
        s.execute(sa.insert(Paper), papers)
        s.execute(
            sa.insert(PaperEmbedding),
            [
                {
                    "paper_id": p["id"],
                    "model": embedder.name,
                    "dim": embedder.dim,
                    "vector": to_bytes(v),
                }
                for p, v in zip(papers, vectors, strict=True)
            ],
        )
    print(f"stored {len(papers)} papers ({PAPERS_PER_DAY} a day for {days} days)", flush=True)

    impressions: list[dict[str, object]] = []
    reactions: list[dict[str, object]] = []
    past = sorted(listed)[:-1]  # today's papers are the ones asked for
    for u in range(users):
        for shown, reaction in year_of(u, past, listed, rng):
            impressions.append(shown)
            if reaction is not None:
                reactions.append(reaction)
    with core.db.write() as s:
        s.execute(
            sa.insert(User),
            [
                {"platform": "slack", "workspace": "T1", "user_id": f"U{u}", "created_at": now}
                for u in range(users)
            ],
        )
        for table, rows in ((Impression, impressions), (Reaction, reactions)):
            for start in range(0, len(rows), INSERT_BATCH):
                s.execute(sa.insert(table), rows[start : start + INSERT_BATCH])
    print(
        f"stored {users} users' history: {len(impressions)} impressions, "
        f"{len(reactions)} reactions",
        flush=True,
    )
    return listed[today], len(reactions)


def year_of(
    u: int, past: list[date], listed: dict[date, list[str]], rng: random.Random
) -> Iterator[tuple[dict[str, object], dict[str, object] | None]]:
    """User `U{u}`'s picks, day by day: (impression row, reaction row or None)."""
    user_id = f"U{u}"
    never_down = u % 4 == 0
    for day in past:
        shown_at = datetime.combine(day, clock(9), UTC)
        answered_at = shown_at + timedelta(hours=1)
        for paper_id in rng.sample(listed[day], PICKS_PER_DAY):
            shown = {
                "platform": "slack",
                "workspace": "T1",
                "user_id": user_id,
                "paper_id": paper_id,
                "shown_at": shown_at,
            }
            reaction = None
            if rng.random() < ANSWERED:
                up = rng.random() < LIKED
                if up or not never_down:
                    reaction = {
                        "platform": "slack",
                        "workspace": "T1",
                        "user_id": user_id,
                        "paper_id": paper_id,
                        "channel_id": f"C{u % CHANNELS}" if rng.random() < ON_CHANNEL else None,
                        "up_at": answered_at if up else None,
                        "down_at": None if up else answered_at,
                        "updated_at": answered_at,
                    }
            yield shown, reaction


def read_reactions(conn: sqlite3.Connection, user_id: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT paper_id, up_at, down_at, saved_at FROM reactions"
        " WHERE platform = ? AND workspace = ? AND user_id = ?",
        ("slack", "T1", user_id),
    ).fetchall()


def read_impressions(conn: sqlite3.Connection, user_id: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT paper_id, shown_at FROM impressions"
        " WHERE platform = ? AND workspace = ? AND user_id = ?",
        ("slack", "T1", user_id),
    ).fetchall()


def read_user(conn: sqlite3.Connection, user_id: str) -> None:
    """The raw floor of reading a user's history for today(): their rows, as stored."""
    read_reactions(conn, user_id)
    read_impressions(conn, user_id)


def read_channels(conn: sqlite3.Connection, channels: list[str]) -> None:
    """The raw floor of reading the channels' history: their members, each member's
    reactions, and a member's impressions only if they have no 👎 (as channel picks do)."""
    for channel in channels:
        members = conn.execute(
            "SELECT DISTINCT user_id FROM reactions"
            " WHERE platform = ? AND workspace = ? AND channel_id = ?",
            ("slack", "T1", channel),
        ).fetchall()
        for (member,) in members:
            if all(down_at is None for _, _, down_at, _ in read_reactions(conn, member)):
                read_impressions(conn, member)


def model_arrays(model: InterestModel) -> dict[str, np.ndarray]:
    """The numpy arrays a cached model holds, its fields and whatever cached properties
    (the stacked scoring matrix) have been built, by name."""
    arrays = {}
    for name, value in vars(model).items():
        parts = value if isinstance(value, tuple) else (value,)
        for i, part in enumerate(parts):
            if isinstance(part, np.ndarray):
                arrays[f"{name}[{i}]" if isinstance(value, tuple) else name] = part
    return arrays


def timed(calls: Sequence[T], call: Callable[[T], object]) -> list[float]:
    """Milliseconds of `call(x)` for each x."""
    out = []
    for x in calls:
        t0 = time.perf_counter()
        call(x)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(3)
    with tempfile.TemporaryDirectory(prefix="paperbot-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        database.upgrade(url)
        core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings(lookback_days=0))
        started = time.perf_counter()
        candidates, reactions = populate(core, args.days, args.users, rng)
        print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)
        started = time.perf_counter()
        # As `paperbot run` does before serving: loads the catalogue, then freezes the
        # start-up objects out of the garbage collector, whose full collections would
        # otherwise walk them (and the populated history's) inside a timed call.
        runner.prepare_to_serve(core)
        print(f"prepared to serve in {time.perf_counter() - started:.1f}s", flush=True)

        users = [UserRef("slack", "T1", f"U{u}") for u in range(args.users)]
        first = timed(users, lambda who: core.today(who, limit=PICKS_PER_DAY))
        again = timed(users, lambda who: core.today(who, limit=PICKS_PER_DAY))
        print("today() measured", flush=True)
        channels = [ChannelRef("slack", "T1", f"C{c}") for c in range(CHANNELS)]
        fanout = timed([channels, channels], core.channel_picks_many)  # first, again
        print("channel picks measured", flush=True)

        models = [model for _, model in core._models._items.values() if not model.empty]
        arrays = [model_arrays(m) for m in models]
        sizes = [sum(a.nbytes for a in named.values()) for named in arrays]
        largest = arrays[int(np.argmax(sizes))]
        budget = core._models._budget

        conn = sqlite3.connect(path)
        read = timed([who.user for who in users], lambda user_id: read_user(conn, user_id))
        channel_ids = [c.channel for c in channels]
        read_fanout = timed([channel_ids], lambda ids: read_channels(conn, ids))[0]
        conn.close()

        catalog = core._catalog.get()
        matrix = np.ascontiguousarray(catalog.vectors[catalog.rows(candidates)])
        query = matrix[0].copy()
        dot = []
        with ThreadpoolController().limit(limits=1, user_api="blas"):  # as today() runs it
            for _ in range(FLOOR_CALLS):
                t0 = time.perf_counter()
                scores = matrix @ query
                int(scores.argmax())
                dot.append((time.perf_counter() - t0) * 1000)
        core.close()

    read_p50, dot_p50 = percentile(read, 50), percentile(dot, 50)
    print(
        f"\n{args.users} users, {args.days} days, {len(catalog.ids)} papers, "
        f"{reactions} reactions; candidates per call: {matrix.shape[0]}"
    )
    print(f"{'':38s}{'p50 ms':>9s}{'p99 ms':>9s}{'p50 / read':>12s}{'p50 / dot':>11s}")
    for label, values in (
        ("today(), first call (builds model)", first),
        ("today(), model cached", again),
        ("raw read: the user's rows, sqlite3", read),
        ("raw floor: numpy dot product", dot),
    ):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{label:38s}{p50:9.3f}{p99:9.3f}{p50 / read_p50:11.1f}x{p50 / dot_p50:10.0f}x")

    print(f"\n{'':38s}{'total s':>9s}{'per channel ms':>16s}{'total / read':>14s}")
    for label, ms in (
        (f"channel_picks_many({CHANNELS} channels)", fanout[0]),
        ("channel_picks_many, again", fanout[1]),
        ("raw read: members' rows, sqlite3", read_fanout),
    ):
        per_channel = ms / CHANNELS
        print(f"{label:38s}{ms / 1000:9.2f}{per_channel:16.1f}{ms / read_fanout:13.1f}x")

    shapes = ", ".join(f"{name} {'x'.join(map(str, a.shape))}" for name, a in largest.items())
    dtypes = ", ".join(sorted({str(a.dtype) for a in largest.values()}))
    p50_size = percentile(sizes, 50)
    print(
        f"\ncached interest model (its numpy arrays), per user: "
        f"p50 {p50_size / 2**10:.0f} KiB, largest {max(sizes) / 2**10:.0f} KiB"
    )
    print(f"largest: {shapes} ({dtypes})")
    print(
        f"the cache's budget, {budget / 2**20:.0f} MiB, keeps {budget / p50_size:.0f} such models"
    )
    worst = max(percentile(first, 99), percentile(again, 99))
    print(
        f"\ntarget today() p99 <= {TARGET_MS:.0f} ms: "
        f"{'met' if worst <= TARGET_MS else 'MISSED'} (worst p99 {worst:.1f} ms)"
    )


if __name__ == "__main__":
    main()
