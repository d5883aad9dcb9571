"""The jobs of `paperbot run`: ingest as a subprocess, and its retry while the list is empty."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import feedback, scheduler
from bot.domain import ChannelRef, UserRef
from bot.feedback import ReactionEvent
from bot.local_platform import LocalPostingPort
from bot.models import ForgetRequest, ProcessedEvent
from bot.paperbot import PaperBot
from tests.helpers import paper, topical_papers

# Stands in for `python -m bot ingest`: a real subprocess that records its arguments.
RECORD_ARGS = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


def daily(core: PaperBot, log_file: Path) -> scheduler.DailyScheduler:
    return scheduler.DailyScheduler(
        core,
        {"local": LocalPostingPort(core.db)},
        ingest_command=[sys.executable, "-c", RECORD_ARGS, str(log_file)],
    )


async def test_ingest_runs_hf_in_a_subprocess_and_arxiv_only_with_categories(
    sqlite_core: PaperBot, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    await daily(sqlite_core, calls).ingest()
    assert calls.read_text().splitlines() == ["--source hf"]

    sqlite_core.settings.arxiv_categories = ["cs.CL"]
    calls.unlink()
    await daily(sqlite_core, calls).ingest()
    assert calls.read_text().splitlines() == ["--source hf", "--source arxiv"]


# An ingest that takes its time: it writes its pid, then works on.
SLOW_INGEST = (
    "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
)
DEAF = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


@pytest.mark.parametrize("script", [SLOW_INGEST, DEAF + SLOW_INGEST], ids=["exits", "deaf"])
async def test_an_ingest_cancelled_by_a_stop_ends_its_subprocess_too(
    sqlite_core: PaperBot,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
) -> None:
    monkeypatch.setattr(scheduler, "END_GRACE", 0.5)  # then SIGKILL, for one deaf to SIGTERM
    pid_file = tmp_path / "pid"
    jobs = scheduler.DailyScheduler(
        sqlite_core,
        {"local": LocalPostingPort(sqlite_core.db)},
        ingest_command=[sys.executable, "-c", script, str(pid_file)],
    )
    running = asyncio.create_task(jobs.ingest())
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    pid = int(pid_file.read_text())
    running.cancel()  # what `stop` does to a job still running after its patience
    with (
        caplog.at_level(logging.WARNING, logger="bot.scheduler"),
        pytest.raises(asyncio.CancelledError),
    ):
        await running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped, not left running on its own
    assert f"stopped the ingest from hf (pid {pid}) before it finished" in caplog.text


async def test_an_empty_list_after_ingest_schedules_a_retry_later_that_day(
    sqlite_core: PaperBot, tmp_path: Path
) -> None:
    jobs = daily(sqlite_core, tmp_path / "calls.txt")
    await jobs.ingest()  # the feed gave nothing: the database is still empty
    assert "ingest-retry" in jobs.jobs()


async def test_the_retried_ingest_runs_as_the_daily_one_does(
    sqlite_core: PaperBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    jobs = daily(sqlite_core, calls)
    await jobs.ingest()  # empty: a retry is scheduled
    retry = jobs._scheduler.get_job("ingest-retry")

    def away() -> None:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(sqlite_core, "latest_day", away)
    # Run as APScheduler runs it: with the database away after the ingest, a
    # warning (test_a_database_away_is_one_warning_not_a_traceback_a_minute),
    # not an error escaping the job.
    await retry.func(*retry.args, **retry.kwargs)
    assert calls.read_text().splitlines() == ["--source hf", "--source hf"]


async def test_a_fresh_list_needs_no_retry(sqlite_core: PaperBot, tmp_path: Path) -> None:
    sqlite_core.ingest([paper("2511.00001", day=datetime.now(UTC).date())])
    jobs = daily(sqlite_core, tmp_path / "calls.txt")
    await jobs.ingest()
    assert "ingest-retry" not in jobs.jobs()


async def test_the_ingest_job_follows_the_configured_cron_in_utc(sqlite_core: PaperBot) -> None:
    sqlite_core.settings.ingest_cron = "15 4 * * *"
    jobs = scheduler.DailyScheduler(sqlite_core, {})
    before = datetime.now(UTC)
    jobs.start()
    try:
        fire = jobs.next_run("ingest")
    finally:
        await jobs.stop()
    assert fire is not None and (fire.hour, fire.minute) == (4, 15)
    assert timedelta(0) < fire - before <= timedelta(days=1)


async def test_the_daily_job_forgets_event_ids_and_forget_requests_past_their_use(
    sqlite_core: PaperBot, tmp_path: Path
) -> None:
    sqlite_core.ingest(topical_papers(per_topic=1))
    posted = ChannelRef("slack", "T1", "C1")
    sqlite_core.record_posts(posted, [("m1", topical_papers(per_topic=1)[0].id)])

    def event(event_id: str, user: str = "U1") -> ReactionEvent:
        return ReactionEvent("slack", "T1", "C1", "m1", user, "+1", True, event_id=event_id)

    assert sqlite_core.handle_reaction(event("Ev-old"))
    assert sqlite_core.handle_reaction(event("Ev-new", "U2"))
    sqlite_core.forget(UserRef("slack", "T1", "U3"))
    with sqlite_core.db.write() as session:  # a week and a day ago
        long_ago = datetime.now(UTC) - feedback.EVENT_MEMORY - timedelta(days=1)
        session.execute(
            sa.update(ProcessedEvent)
            .where(ProcessedEvent.event_id == "Ev-old")
            .values(received_at=long_ago)
        )
        session.execute(sa.update(ForgetRequest).values(forgotten_at=long_ago))

    await daily(sqlite_core, tmp_path / "calls.txt").ingest()

    with sqlite_core.db.read() as session:
        assert session.scalars(sa.select(ProcessedEvent.event_id)).all() == ["Ev-new"]
        assert session.scalars(sa.select(ForgetRequest)).all() == []
    assert sqlite_core.handle_reaction(event("Ev-new", "U2")) is None  # still a replay


async def test_a_database_away_is_one_warning_not_a_traceback_a_minute(
    sqlite_core: PaperBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    core = sqlite_core
    core.subscribe(ChannelRef("local", "demo", "#c"), "09:00", "UTC", limit=2)
    jobs = scheduler.DailyScheduler(core, {"local": LocalPostingPort(core.db)})
    read = core.db.read

    def away() -> object:
        raise sa.exc.OperationalError(
            "SELECT", {}, Exception('connection to server at "db" failed: Connection refused')
        )

    monkeypatch.setattr(core.db, "read", away)
    with caplog.at_level(logging.INFO, logger="bot.scheduler"):
        for _ in range(3):  # three minutes of ticks and a reconcile, as APScheduler runs them
            await jobs._tracked(jobs.tick)
        await jobs._tracked(jobs.reconcile)
        monkeypatch.setattr(core.db, "read", read)
        await jobs._tracked(jobs.tick)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "database" in r.getMessage()]
    assert lines[0] == (
        "WARNING",
        'the database is unavailable ((builtins.Exception) connection to server at "db" failed: '
        "Connection refused); the jobs run again on schedule",
    )
    assert [level for level, _ in lines] == ["WARNING", "INFO"]
    assert lines[1][1].startswith("the database is back after")
    assert not [r for r in caplog.records if r.exc_info]

    def bug() -> object:
        raise ValueError("a bug")

    monkeypatch.setattr(core.db, "read", bug)
    with pytest.raises(ValueError):  # anything else still reaches APScheduler's error log
        await jobs._tracked(jobs.tick)
