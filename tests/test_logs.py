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
