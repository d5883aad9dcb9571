"""`paperbot run`'s start-up: what is done before the adapters serve."""

from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path

import pytest

from bot import runner
from bot.embedding import HashingEmbedder
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import paper, run_python


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


@pytest.mark.parametrize(
    "embedder", ["HashingEmbedder()", 'SentenceTransformerEmbedder("bundled")']
)
def test_after_prepare_to_serve_the_first_model_build_imports_nothing(
    tmp_path: Path, embedder: str
) -> None:
    """An import mid-serving holds the GIL against the event loop (docs/reliability.md).
    With the real model, a follower's first picks need it (the forms of followed words):
    it is loaded before serving, not by them."""
    opening = f"""
import sys
from bot import database, runner
from bot.embedding import HashingEmbedder, SentenceTransformerEmbedder
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import topical_papers, user
url = "sqlite:///{tmp_path / "start.db"}"
database.upgrade(url)
core = PaperBot.open(url, embedder={embedder}, settings=Settings())
"""
    # Words in two forms ("agent", "agents"): the scale of word forms needs them.
    setup = """
from tests.helpers import paper
core.ingest([
    *topical_papers(),
    paper("2599.00001", "An agent and its models", "Agents plan; a model of each agent acts."),
    paper("2599.00002", "Models of agents", "One model, many agents, and an agent's plan."),
])
core.react(user("ann"), "2500.00001", +1)
core.react(user("ann"), "2502.00001", -1)
core.follow(user("ann"), "speech recognition")
"""
    # Served by a fresh interpreter: the set-up has imported everything already.
    serve = """
runner.prepare_to_serve(core)
before = set(sys.modules)
picks = core.today(user("ann"))
print(len(picks), sorted(set(sys.modules) - before))
"""
    run_python(opening + setup)
    assert run_python(opening + serve).split() == ["5", "[]"]


def test_start_up_logs_the_database_its_papers_and_the_model(
    sqlite_core: PaperBot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_core.ingest([paper("2510.00001"), paper("2510.00002")])
    with caplog.at_level(logging.INFO, logger="bot.runner"):
        runner.log_start_up(sqlite_core)
    # The runner's lines only: what the ingest logged depends on the root level.
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bot.runner"]  # one, no warning
    assert (
        line
        == f"database {(tmp_path / 'paperbot.db').resolve()}: 2 papers; embedding model hashing-384"
    )


def test_start_up_warns_when_stored_papers_have_no_vector_for_the_model(
    sqlite_core: PaperBot, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_core.ingest([paper("2510.00001"), paper("2510.00002")])
    # The operator changed PAPERBOT_EMBEDDING_MODEL: nothing is stored for the new one.
    changed = PaperBot.open(sqlite_url, embedder=HashingEmbedder(dim=64), settings=Settings())
    try:
        with caplog.at_level(logging.INFO, logger="bot.runner"):
            runner.log_start_up(changed)
    finally:
        changed.close()
    (warning,) = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "bot.runner"
    ]
    assert warning.startswith("2 papers have no vectors for hashing-64")
    assert "paperbot ingest --source hf" in warning


def test_run_help_says_what_happens_with_no_adapter_at_all() -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "With no chat credentials that is the local web adapter;" in text
    assert "prints today's picks for a local user in the terminal" in text
