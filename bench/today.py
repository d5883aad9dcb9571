"""today() latency with 10,000 candidate papers and 100,000 users in SQLite.

    python bench/today.py [--papers 10000] [--users 100000] [--calls 1000]

Papers get vectors from the fast stand-in embedder (`HashingEmbedder`), all
listed on one day, so every call ranks all of them. Their text is shaped like
abstracts: about 150 words, a few topic words among a Zipf-distributed
vocabulary of several thousand, some of them hyphenated compounds, so the
catalogue has a real abstract's number of terms per paper. Every user has a
few reactions and a third follow a topic, so their models are real. The
reacted papers were shown the day before in a batch of picks with as many
others, so the quarter of users who never 👎 also have skipped picks to read
and count. Each sampled user asks for their picks once (the first call of the
day builds their model) and again (the model is cached). The raw floor is a
numpy dot product of one user vector with the same candidate matrix; the
ratio says what the rest of today() costs on top of it. Both run with
single-threaded BLAS, as today() does. Target: p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from threadpoolctl import ThreadpoolController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import database, runner
from bot.domain import UserRef
from bot.embedding import HashingEmbedder, paper_text, to_bytes
from bot.models import Follow, Impression, Paper, PaperEmbedding, Reaction, User
from bot.paperbot import PaperBot
from bot.settings import Settings

DAY = date(2025, 11, 24)
WORDS = (
    "diffusion speech retrieval graph reinforcement policy reward quantization pruning "
    "attention transformer decoding speculative parallel distributed training inference "
    "vision video image audio language reasoning agent benchmark dataset robot control "
    "federated privacy compression sparse kernel optimizer scaling memory cache token"
).split()
BACKGROUND_WORDS = 6_000  # the rest of an abstract's words, Zipf-distributed like real text
COMPOUND_SHARE = 0.1  # "multi-agent", "graph-based": a term that is also its parts
ABSTRACT_WORDS = 150
TOPIC_WORDS_PER_ABSTRACT = 6


def background_vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Made-up words with Zipf weights (the k-th most common weighs 1/k); a tenth are
    compounds of two others, as hyphenated terms are in real abstracts."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(5, 10))) for _ in range(BACKGROUND_WORDS)]
    for i in range(0, BACKGROUND_WORDS, round(1 / COMPOUND_SHARE)):
        words[i] = f"{rng.choice(words)}-{rng.choice(words)}"
    return words, [1.0 / (k + 1) for k in range(BACKGROUND_WORDS)]


def abstract(rng: random.Random, background: tuple[list[str], list[float]]) -> str:
    words, weights = background
    topical = rng.choices(WORDS, k=TOPIC_WORDS_PER_ABSTRACT)
    rest = rng.choices(words, weights, k=ABSTRACT_WORDS - TOPIC_WORDS_PER_ABSTRACT)
    return " ".join(rng.sample(topical + rest, ABSTRACT_WORDS))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def populate(core: PaperBot, papers: int, users: int, rng: random.Random) -> list[str]:
    """Bulk-load papers (with vectors), users, reactions and follows. Returns paper ids."""
    embedder = core.embedder
    ids = [f"bench.{i:06d}" for i in range(papers)]
    titles = [" ".join(rng.sample(WORDS, 4)) for _ in ids]
    background = background_vocabulary(rng)
    abstracts = [abstract(rng, background) for _ in ids]
    vectors = embedder.embed([paper_text(t, a) for t, a in zip(titles, abstracts, strict=True)])
    now = datetime.now(UTC)
    with core.db.write() as s:
        s.execute(
            sa.insert(Paper),
            [
                {
                    "id": pid,
                    "title": t,
                    "abstract": a,
                    "authors": ["A. Author"],
                    "listed_on": DAY,
                    "upvotes": rng.randrange(50),
                    "keywords": [],
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
                for pid, t, a in zip(ids, titles, abstracts, strict=True)
            ],
        )
        s.execute(
            sa.insert(PaperEmbedding),
            [
                {
                    "paper_id": pid,
                    "model": embedder.name,
                    "dim": embedder.dim,
                    "vector": to_bytes(v),
                }
                for pid, v in zip(ids, vectors, strict=True)
            ],
        )
    topic_vectors = {w: to_bytes(v) for w, v in zip(WORDS, embedder.embed(WORDS), strict=True)}
    for start in range(0, users, 10_000):
        block = range(start, min(users, start + 10_000))
        with core.db.write() as s:
            s.execute(
                sa.insert(User),
                [
                    {"platform": "slack", "workspace": "T1", "user_id": f"U{u}", "created_at": now}
                    for u in block
                ],
            )
            reactions = []
            impressions = []
            for u in block:
                batch = rng.sample(ids, 8)  # yesterday's picks: the first four answered
                impressions += [
                    {
                        "platform": "slack",
                        "workspace": "T1",
                        "user_id": f"U{u}",
                        "paper_id": pid,
                        "shown_at": now - timedelta(days=1),
                    }
                    for pid in batch
                ]
                for pid in batch[:4]:
                    up = rng.random() < 0.7
                    reactions.append(
                        {
                            "platform": "slack",
                            "workspace": "T1",
                            "user_id": f"U{u}",
                            "paper_id": pid,
                            "up_at": now if up else None,
                            "down_at": None if up else now,
                            "updated_at": now,
                        }
                    )
            s.execute(sa.insert(Reaction), reactions)
            s.execute(sa.insert(Impression), impressions)
            s.execute(
                sa.insert(Follow),
                [
                    {
                        "platform": "slack",
                        "workspace": "T1",
                        "user_id": f"U{u}",
                        "topic": word,
                        "model": embedder.name,
                        "vector": topic_vectors[word],
                        "created_at": now,
                    }
                    for u in block
                    if u % 3 == 0
                    for word in [rng.choice(WORDS)]
                ],
            )
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="paperbot-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        database.upgrade(url)
        core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings(lookback_days=0))
        started = time.perf_counter()
        populate(core, args.papers, args.users, rng)
        print(f"loaded {args.papers} papers and {args.users} users in "
              f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        started = time.perf_counter()
        # As `paperbot run` does before serving: loads the catalogue, then freezes the
        # start-up objects out of the garbage collector, whose full collections would
        # otherwise walk them (and the populated history's) inside a timed call.
        runner.prepare_to_serve(core)
        print(f"prepared to serve in {time.perf_counter() - started:.1f}s")

        sample = [
            UserRef("slack", "T1", f"U{u}") for u in rng.sample(range(args.users), args.calls)
        ]
        first, again = [], []
        for who in sample:
            t0 = time.perf_counter()
            picks = core.today(who, limit=5)
            first.append((time.perf_counter() - t0) * 1000)
            assert len(picks) == 5, "today() must return picks"  # noqa: S101
        for who in sample:
            t0 = time.perf_counter()
            core.today(who, limit=5)
            again.append((time.perf_counter() - t0) * 1000)

        catalog = core._catalog.get()
        matrix = catalog.vectors
        query = matrix[0].copy()
        floor = []
        with ThreadpoolController().limit(limits=1, user_api="blas"):  # as today() runs it
            for _ in range(args.calls):
                t0 = time.perf_counter()
                scores = matrix @ query
                int(scores.argmax())
                floor.append((time.perf_counter() - t0) * 1000)
        core.close()

    floor_p50 = statistics.median(floor)
    print(f"\ncandidates per call: {matrix.shape[0]}, users: {args.users}, calls: {args.calls}")
    print(f"{'':34s}{'p50 ms':>9s}{'p99 ms':>9s}{'p50 / floor':>13s}")
    for label, values in (
        ("today(), first call (builds model)", first),
        ("today(), model cached", again),
        ("raw floor: numpy dot product", floor),
    ):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{label:34s}{p50:9.2f}{p99:9.2f}{p50 / floor_p50:12.1f}x")
    worst = max(percentile(first, 99), percentile(again, 99))
    print(f"\ntarget p99 <= 20 ms: {'met' if worst <= 20 else 'MISSED'} (worst p99 {worst:.1f} ms)")


if __name__ == "__main__":
    main()
