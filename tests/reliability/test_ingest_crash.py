"""SIGKILL during `paperbot ingest` (issue 9): no half-written paper, and the next run completes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import database
from bot.database import Database
from bot.models import Paper, PaperEmbedding
from tests.fakes.feed_server import daily_item
from tests.helpers import PAPERBOT, subprocess_env

pytestmark = pytest.mark.reliability

PAPERS = 1500
KILL_AFTER = 40  # papers stored before the kill


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        papers = session.scalar(sa.select(sa.func.count()).select_from(Paper)) or 0
        vectors = session.scalar(sa.select(sa.func.count()).select_from(PaperEmbedding)) or 0
    return papers, vectors


def ingest(url: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PAPERBOT, "ingest", "--source", "hf", "--file", str(path)],
        env=subprocess_env(PAPERBOT_DATABASE_URL=url, PAPERBOT_EMBEDDING_MODEL="hashing"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_ingest_leaves_whole_papers_and_the_next_run_completes(
    database_url: str, tmp_path: Path
) -> None:
    items = [
        daily_item(f"2510.{i:05d}", f"Paper {i} " + "t" * 50, f"Abstract {i}. " + "a" * 1500)
        for i in range(PAPERS)
    ]
    saved = tmp_path / "daily.json"
    saved.write_text(json.dumps(items))
    database.upgrade(database_url)
    db = Database(database_url)

    run = ingest(database_url, saved)
    deadline = time.monotonic() + 120
    while counts(db)[0] < KILL_AFTER:
        assert run.poll() is None, "ingest ended before it could be killed"
        assert time.monotonic() < deadline, "ingest stored nothing"
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL

    stored_papers, stored_vectors = counts(db)
    assert KILL_AFTER <= stored_papers < PAPERS  # killed mid-way, not after the end
    expected = {item["paper"]["id"]: item for item in items}
    with db.read() as session:
        for row in session.scalars(sa.select(Paper)):
            item = expected[row.id]["paper"]
            # Every stored paper is whole: all its fields, exactly as the feed had them.
            assert (row.title, row.abstract) == (item["title"], item["summary"])
            assert row.authors == ["Ada Lovelace", "Alan Turing"] and row.upvotes == 12
            assert row.github == item["githubRepo"] and row.ai_summary == item["ai_summary"]
        for vector in session.scalars(sa.select(PaperEmbedding.vector)):
            assert len(vector) == 384 * 4  # no torn vector either

    again = ingest(database_url, saved)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert counts(db) == (PAPERS, PAPERS)
    assert stored_vectors < PAPERS
    db.dispose()
    # The summary counts the rest as new and the papers stored before the kill as updated.
    (row,) = [line for line in out.splitlines() if line.startswith("│")]
    fetched, new, updated = (int(cell) for cell in row.strip("│ ").split("│")[:3])
    assert (fetched, new, updated) == (PAPERS, PAPERS - stored_papers, stored_papers)
