"""Sustained react() throughput on SQLite, none lost.

    python bench/react.py [--reactions 20000] [--threads 4]

Threads call `core.react()` the way adapters do (`asyncio.to_thread`), each
reaction a distinct (user, paper) pair, so the reactions table must end with
exactly as many rows as were sent. The raw floor is the same number of plain
INSERTs through sqlite3, one transaction each, with the same pragmas (WAL,
synchronous=NORMAL). Target: >= 1,000 reactions per second.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import database
from bot.domain import UserRef
from bot.embedding import HashingEmbedder
from bot.models import Reaction
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import paper

PAPERS = 200


def run_reacts(core: PaperBot, total: int, threads: int) -> float:
    """Send `total` distinct reactions from `threads` threads; returns the seconds it took."""
    per_thread = total // threads

    def work(t: int) -> None:
        for i in range(per_thread):
            n = t * per_thread + i
            who = UserRef("slack", "T1", f"U{n // PAPERS}")
            core.react(who, f"2511.{n % PAPERS:05d}", 1 if n % 3 else -1)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def raw_floor(path: Path, total: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE r (u TEXT, p TEXT, s INTEGER, PRIMARY KEY (u, p))")
    started = time.perf_counter()
    for n in range(total):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO r VALUES (?, ?, ?)", (f"U{n // PAPERS}", str(n % PAPERS), 1))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reactions", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    total = args.reactions // args.threads * args.threads
    with tempfile.TemporaryDirectory(prefix="paperbot-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        database.upgrade(url)
        core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
        core.ingest([paper(f"2511.{i:05d}", f"paper {i}") for i in range(PAPERS)])
        seconds = run_reacts(core, total, args.threads)
        with core.db.read() as session:
            stored = session.scalar(sa.select(sa.func.count()).select_from(Reaction))
        core.close()
        floor = raw_floor(Path(tmp) / "floor.db", total)

    rate, floor_rate = total / seconds, total / floor
    print(f"{'':40s}{'per second':>12s}{'seconds':>9s}")
    print(f"{f'react() x{total}, {args.threads} threads':40s}{rate:12.0f}{seconds:9.2f}")
    print(f"{'raw floor: sqlite3 INSERT + COMMIT':40s}{floor_rate:12.0f}{floor:9.2f}")
    print(f"\nsent {total}, stored {stored}, lost {total - stored}")
    print(f"react() is {floor_rate / rate:.1f}x slower than the raw floor")
    print(f"target >= 1,000/s: {'met' if rate >= 1000 and stored == total else 'MISSED'}")


if __name__ == "__main__":
    main()
