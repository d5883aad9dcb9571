"""The database is locked or unavailable for a while during a reaction burst: nothing is lost."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from bot import commands, database
from bot.database import RACE_ATTEMPTS, Database, retrying
from bot.embedding import HashingEmbedder
from bot.models import Paper
from bot.paperbot import PaperBot
from tests.helpers import PAPERBOT, subprocess_env, topical_papers, user

pytestmark = pytest.mark.reliability

LOCK_SECONDS = 10
BURST = 60


def _hold_lock(url: str, seconds: float, locked: threading.Event) -> None:
    """Take the write lock (SQLite) or an exclusive table lock (PostgreSQL) and sit on it."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        if url.startswith("sqlite"):
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            conn.begin()
            conn.exec_driver_sql(
                "LOCK TABLE reactions, user_interest_profiles IN ACCESS EXCLUSIVE MODE"
            )
        locked.set()
        time.sleep(seconds)
        conn.rollback()
    engine.dispose()


def test_reaction_burst_during_a_10s_lock_loses_nothing(core: PaperBot, migrated_url: str) -> None:
    papers = topical_papers(per_topic=12)
    core.ingest(papers)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(migrated_url, LOCK_SECONDS, locked))
    holder.start()
    assert locked.wait(10)
    people = [user(f"u{i}") for i in range(BURST)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: core.react(people[i], papers[i].id, +1), range(BURST)))
    holder.join()
    assert all(results)
    with core.db.read() as session:
        stored = session.execute(
            sa.text("SELECT count(*) FROM reactions WHERE up_at IS NOT NULL")
        ).scalar()
    assert stored == BURST


def test_a_command_that_cannot_be_served_gets_a_friendly_message(sqlite_core: PaperBot) -> None:
    # A database that never comes back within the deadline: the user hears about it kindly.
    sqlite_core.ingest(topical_papers(per_topic=1))
    broken = Database("sqlite:////nonexistent-dir/never/paperbot.db")
    sqlite_core.db = broken
    inv = commands.Invocation(user=user(), channel=None)
    reply = commands.execute(sqlite_core, inv, commands.Follow("diffusion"))
    assert reply.error
    assert "try again" in reply.text.lower()
    assert "Traceback" not in reply.text and "sqlite" not in reply.text.lower()


def test_retrying_gives_up_only_after_the_deadline() -> None:
    clock = {"now": 0.0}
    calls = []

    def flaky() -> str:
        calls.append(clock["now"])
        if len(calls) < 4:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))
        return "stored"

    def fake_sleep(seconds: float) -> None:
        clock["now"] += seconds

    real_monotonic = time.monotonic
    start = real_monotonic()
    assert retrying(flaky, sleep=fake_sleep) == "stored"
    assert len(calls) == 4 and real_monotonic() - start < 5

    def always_broken() -> None:
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))

    with pytest.raises(sa.exc.OperationalError):
        retrying(always_broken, deadline=0.3)


def test_a_read_only_sqlite_database_fails_a_write_at_once_not_after_the_deadline(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As an operator's read-only file or mount does (root, who runs the tests,
    # writes through file permissions): SQLite answers SQLITE_READONLY.
    database.upgrade(sqlite_url)
    db = Database(sqlite_url)
    sa.event.listen(db.engine, "connect", lambda conn, _: conn.execute("PRAGMA query_only=1"))
    start = time.monotonic()
    with (
        caplog.at_level("WARNING", logger="bot.database"),
        pytest.raises(sa.exc.OperationalError, match="readonly"),
    ):
        db.write_retrying(lambda s: s.execute(sa.delete(Paper)), what="forget everything")
    assert time.monotonic() - start < 5
    assert caplog.records == []
    db.dispose()


def test_a_locked_sqlite_database_is_still_waited_for(sqlite_url: str) -> None:
    database.upgrade(sqlite_url)
    db = Database(sqlite_url)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(sqlite_url, 6, locked))
    holder.start()
    assert locked.wait(10)
    db.write_retrying(lambda s: s.execute(sa.delete(Paper)), what="delete papers")
    holder.join()
    db.dispose()


def test_programming_errors_are_not_retried() -> None:
    calls = []

    def bug() -> None:
        calls.append(1)
        raise ValueError("a bug, not a busy database")

    with pytest.raises(ValueError):
        retrying(bug)
    assert calls == [1]


def test_a_constraint_violation_is_retried_a_few_times_only() -> None:
    # A race with another process's commit passes on a fresh run; a bug does not.
    def violation() -> sa.exc.IntegrityError:
        return sa.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    outcomes: list[object] = [violation(), "stored"]

    def raced() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retrying(raced, sleep=lambda _: None) == "stored"
    calls = []

    def bug() -> None:
        calls.append(1)
        raise violation()

    with pytest.raises(sa.exc.IntegrityError):
        retrying(bug, sleep=lambda _: None)
    assert len(calls) == RACE_ATTEMPTS


def test_two_ingests_at_once_both_finish(postgres_url: str) -> None:
    # The daily ingest and one run by hand, or two replicas' first starts.
    database.upgrade(postgres_url)
    env = subprocess_env(PAPERBOT_DATABASE_URL=postgres_url, PAPERBOT_EMBEDDING_MODEL="hashing")
    processes = [
        subprocess.Popen(
            [*PAPERBOT, "ingest", "--source", "sample"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
    with Database(postgres_url).read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Paper)) == 227


def test_forget_racing_the_same_users_follows_and_reactions_loses_none(
    postgres_url: str,
) -> None:
    # Each call lands before or after the forget, never fails in between.
    database.upgrade(postgres_url)
    cores = [PaperBot.open(postgres_url, embedder=HashingEmbedder()) for _ in range(2)]
    cores[0].ingest(topical_papers())
    paper_id = topical_papers()[0].id
    someone = user("U1")
    stop = time.monotonic() + 3
    errors: list[BaseException] = []

    def forgetting() -> None:
        while time.monotonic() < stop:
            cores[0].forget(someone)

    def acting() -> None:
        while time.monotonic() < stop:
            try:
                cores[1].follow(someone, "diffusion")
                cores[1].react(someone, paper_id, 1)
            except Exception as exc:  # what a chat user would have seen as "Sorry"
                errors.append(exc)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(forgetting), pool.submit(acting)]:
            future.result()
    for core in cores:
        core.close()
    assert errors == []
