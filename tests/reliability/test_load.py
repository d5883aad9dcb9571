"""A short run of bench/load.py: every path delivers, nothing is lost, the bot never loads the model.

Behaviour only: the timing targets are the benchmark's business (bench/load.py),
not a test's, on a shared machine.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.load import PATHS, run_load

pytestmark = pytest.mark.reliability


def test_load_through_every_adapter_loses_nothing(sqlite_url: str) -> None:
    # 10 s at 600 reactions a minute: 100 reactions, a third through each path.
    result = asyncio.run(run_load(sqlite_url, minutes=10 / 60, rate=600, baseline_events=20))

    for name in PATHS:
        path = result.paths[name]
        assert path.sent > 0, name
        assert (path.stored, path.errors) == (path.sent, {}), name
        assert len(path.latencies) == path.sent, name  # every event was answered or handled
    assert result.lost == 0
    for name, command in result.commands.items():
        assert command.sent > 0 and command.answered == command.sent, name
    # The fan-out tick in the middle of the load posted to every subscribed channel.
    assert result.tick["leader"] and result.tick["due"] > 0
    assert result.tick["posted"] == result.tick["due"] and result.tick["failed"] == 0
    # The chat-serving process never imported torch, and reported its own memory.
    assert result.bot["torch_loaded"] is False
    assert result.bot["memory_mb"]["VmHWM"] > 0
