"""`paperbot run`'s start-up: what is done before the adapters serve."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

from bot import runner
from bot.paperbot import PaperBot
from tests.helpers import PROJECT_ROOT, subprocess_env


class _Cycle:
    me: _Cycle


def test_prepare_to_serve_loads_the_catalogue_and_freezes_start_up_objects(
    core: PaperBot,
) -> None:
    # tests/conftest.py unfreezes after every test.
    before = _Cycle()
    before.me = before
    assert core._catalog._catalog is None  # nothing has asked for it yet

    runner.prepare_to_serve(core)

    assert core._catalog._catalog is not None  # loaded now, not by the first request
    frozen = gc.get_freeze_count()
    assert frozen > 0
    # Start-up's objects are out of every later collection...
    kept = weakref.ref(before)
    del before
    gc.collect()
    assert kept() is not None
    # ... while garbage that serving makes is still collected.
    later = _Cycle()
    later.me = later
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None
    # Collections freeze nothing more. (The count may drop: a frozen object
    # whose last reference goes, in any thread, is freed as usual.)
    assert gc.get_freeze_count() <= frozen


def test_after_prepare_to_serve_the_first_model_build_imports_nothing(tmp_path: Path) -> None:
    """An import mid-serving holds the GIL against the event loop (docs/reliability.md)."""
    # In a fresh interpreter: this test process has imported everything already.
    script = f"""
import sys
from bot import database, runner
from bot.embedding import HashingEmbedder
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import topical_papers, user
url = "sqlite:///{tmp_path / "start.db"}"
database.upgrade(url)
core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
core.ingest(topical_papers())
core.react(user("ann"), "2500.00001", +1)
core.react(user("ann"), "2502.00001", -1)
runner.prepare_to_serve(core)
before = set(sys.modules)
picks = core.today(user("ann"))
print(len(picks), sorted(set(sys.modules) - before))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.split() == ["5", "[]"]
