"""`paperbot run`'s start-up: what is done before the adapters serve."""

from __future__ import annotations

import gc
import weakref

from bot import runner
from bot.paperbot import PaperBot


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
