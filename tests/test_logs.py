"""Log lines: where they go while a progress bar is on screen."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from rich.console import Console
from rich.progress import Progress

from bot import logs
from bot.settings import Settings


def test_log_lines_print_above_a_live_progress_bar(
    monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.configure(Settings())
    # rich swaps sys.stderr for a proxy while the bar is live; a log line must go
    # through it, which clears the bar's line first and draws the bar again below.
    with Progress(console=Console(file=terminal, force_terminal=True)) as bar:
        bar.add_task("ingesting", total=10)
        logging.getLogger(__name__).info("fetched the feed")
    (line,) = [s for s in re.split(r"[\r\n]", terminal.getvalue()) if "fetched the feed" in s]
    assert "ingesting" not in line  # not written onto the end of the bar


def test_routine_library_chatter_is_quiet_and_the_rest_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ("apscheduler.scheduler", "apscheduler.executors.default")
    root = logging.getLogger()
    saved = root.handlers[:], root.level, [logging.getLogger(n).level for n in names]
    try:
        logs.configure(Settings(log_level="INFO"))
        scheduler, executor = (logging.getLogger(n) for n in names)
        scheduler.info("Adding job tentatively -- it will be properly scheduled when ...")
        scheduler.info("Scheduler started")
        executor.info('Running job "tick" (scheduled at ...)')
        executor.warning("Run time of job was missed by 0:05:00")
        logging.getLogger("bot.scheduler").info("scheduler started for local")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in zip(names, saved[2], strict=True):
            logging.getLogger(name).setLevel(level)
    printed = [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert printed == [
        "Scheduler started",
        "Run time of job was missed by 0:05:00",
        "scheduler started for local",
    ]


def test_outside_text_in_a_message_cannot_start_a_forged_line_or_drive_the_terminal(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    logs.configure(Settings())
    hostile = "Title\n2026-01-01 00:00:00,000 CRITICAL bot.scheduler: forged\x1b[2J\u2028"
    logging.getLogger("bot.ingest").warning("paper %s rejected: %s", "2509.00001", hostile)
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and "\x1b" not in printed and "\u2028" not in printed
    assert printed.rstrip("\n").endswith(
        "paper 2509.00001 rejected: Title\\n2026-01-01 00:00:00,000 CRITICAL "
        "bot.scheduler: forged\\x1b[2J\\u2028"
    )
