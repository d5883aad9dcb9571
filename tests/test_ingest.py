"""Ingest end to end: sources into the database, dedup across sources and days, the CLI."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import database
from bot.database import Database
from bot.embedding import BUNDLED_MODEL_NAME, HashingEmbedder, to_bytes
from bot.ingest import count_lacking_vector, embed_missing, fetch_all
from bot.models import Paper, PaperEmbedding
from bot.paperbot import PaperBot
from bot.sources.arxiv import ArxivSource
from bot.sources.feed_http import FeedClient
from bot.sources.hf import HfDailySource
from bot.sources.rate_limit import RateLimiter
from tests.fakes.feed_server import HF_PATH, Fault, FeedServer, atom_entry, daily_item
from tests.helpers import PAPERBOT, paper, run_python, subprocess_env

MONDAY, TUESDAY = date(2025, 10, 6), date(2025, 10, 7)


@pytest.fixture
def client() -> Iterator[FeedClient]:
    with FeedClient(max_bytes=5_000_000, timeout=2.0, sleep=lambda _: None) as c:
        yield c


def rows(core: PaperBot) -> dict[str, Paper]:
    with core.db.read() as session:
        return {p.id: p for p in session.scalars(sa.select(Paper))}


def vectors(core: PaperBot) -> list[tuple[str, str]]:
    with core.db.read() as session:
        return list(session.execute(sa.select(PaperEmbedding.paper_id, PaperEmbedding.model)))


def test_the_same_paper_from_both_sources_and_two_days_is_one_row(
    core: PaperBot, feeds: FeedServer, client: FeedClient
) -> None:
    feeds.days["2025-10-06"] = [daily_item("2510.01234v1", "Shared", "Both.", upvotes=5)]
    feeds.days["2025-10-07"] = [
        daily_item("2510.01234v2", "Shared", "Both.", day="2025-10-07", upvotes=40, github=None)
    ]
    feeds.arxiv_entries = [atom_entry("2510.01234v2", "Shared", "Both.", ["cs.CL"])]
    limiter = RateLimiter(0.0)

    monday = core.ingest(HfDailySource(client, feeds.hf_url, MONDAY).fetch())
    arxiv = core.ingest(
        ArxivSource(client, feeds.arxiv_url, ["cs.CL"], TUESDAY, limiter=limiter).fetch()
    )
    tuesday = core.ingest(HfDailySource(client, feeds.hf_url, TUESDAY).fetch())

    assert (monday.new, arxiv.new, tuesday.new) == (1, 0, 0)
    assert (arxiv.updated, tuesday.updated) == (1, 1)
    (row,) = rows(core).values()
    assert row.listed_on == MONDAY  # the first day it was listed
    assert row.upvotes == 40  # refreshed
    assert row.github == "https://github.com/example/repo"  # a later listing without it keeps it
    assert row.ai_summary == "Shared in one sentence."  # arXiv has none; HF's stays
    assert vectors(core) == [("2510.01234", HashingEmbedder().name)]  # embedded once


def test_duplicate_ids_within_one_batch_become_one_paper(core: PaperBot) -> None:
    report = core.ingest(
        [
            paper("2510.00001", day=TUESDAY, upvotes=1, source="arxiv"),
            paper("2510.00001", day=MONDAY, upvotes=7, source="hf", ai_summary="Short."),
        ]
    )
    assert (report.fetched, report.new, report.updated) == (2, 1, 0)
    row = rows(core)["2510.00001"]
    assert (row.listed_on, row.upvotes, row.ai_summary) == (MONDAY, 7, "Short.")


def test_a_paper_the_database_cannot_hold_is_rejected_and_the_rest_stored(
    core: PaperBot,
) -> None:
    # A source that let these through (its parser's fault) must not abort the batch.
    report = core.ingest(
        [
            paper("2510.00001"),
            paper("2510.00002", upvotes=10**20),
            paper("2510.00003", day=date(1, 1, 1)),
            replace(paper("2510.00004"), published=datetime(9999, 12, 31, 23, tzinfo=UTC)),
            paper("2510.00005"),
        ]
    )
    assert (report.fetched, report.new) == (5, 2)
    assert report.rejected == {
        "upvotes out of range": 1,
        "listing day out of range": 1,
        "publication date out of range": 1,
    }
    assert sorted(rows(core)) == ["2510.00001", "2510.00005"]
    assert len(vectors(core)) == 2


def test_ingesting_the_same_papers_again_leaves_the_catalogue_as_it_is(core: PaperBot) -> None:
    # A weekend retry fetches the same list: no process should rebuild for it.
    papers = [paper("2510.00001", upvotes=3), paper("2510.00002", upvotes=5)]
    core.ingest(papers)
    before = core._catalog.get().fingerprint
    assert core.ingest(papers).updated == 2
    assert core._catalog.get().fingerprint == before
    core.ingest([replace(papers[0], upvotes=4)])  # votes keep coming in
    assert core._catalog.get().fingerprint != before


def test_a_feed_failing_midway_keeps_the_whole_papers_already_fetched(
    core: PaperBot, feeds: FeedServer, client: FeedClient
) -> None:
    feeds.days["2025-10-06"] = [
        daily_item(f"2510.{i:05d}", f"Paper {i}", f"Abstract {i}.") for i in range(150)
    ]

    def after_first_page(count: int) -> None:
        if count == 100:  # page 0 is read; page 1 now fails on every attempt
            feeds.fail_next(HF_PATH, *[Fault(status=500)] * 3)

    source = HfDailySource(client, feeds.hf_url, MONDAY)
    papers, failure = fetch_all(source, on_paper=after_first_page)
    assert failure is not None and "HTTP 500" in str(failure)
    report = core.ingest(papers, rejected=dict(source.rejected))
    assert report.new == 100 and len(rows(core)) == 100
    assert len(vectors(core)) == 100


def test_each_paper_is_embedded_once_per_model(core: PaperBot) -> None:
    core.ingest([paper("2510.00001"), paper("2510.00002")])
    assert embed_missing(core.db, HashingEmbedder()) == 0  # nothing left for this model
    other = HashingEmbedder(dim=64)
    assert embed_missing(core.db, other) == 2  # a new model embeds everything once
    assert embed_missing(core.db, other) == 0
    assert sorted(m for _, m in vectors(core)) == ["hashing-384"] * 2 + ["hashing-64"] * 2


def test_the_papers_lacking_a_vector_are_counted_as_embed_missing_finds_them(
    core: PaperBot,
) -> None:
    core.ingest([paper("2510.00001"), paper("2510.00002")])
    other = HashingEmbedder(dim=64)
    assert count_lacking_vector(core.db, core.embedder.name) == 0
    assert count_lacking_vector(core.db, other.name) == 2
    embed_missing(core.db, other)
    assert count_lacking_vector(core.db, other.name) == 0


# ---------------------------------------------------------------- the command line
def run_cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAPERBOT, "ingest", *args],
        env=subprocess_env(
            PAPERBOT_DATABASE_URL=url, PAPERBOT_EMBEDDING_MODEL="hashing", COLUMNS="120", **env
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_ingests_a_day_of_daily_papers_and_prints_the_summary(
    database_url: str, feeds: FeedServer
) -> None:
    feeds.days["2025-10-06"] = [
        daily_item(f"2510.{i:05d}", f"Paper {i}", f"Abstract {i}.") for i in range(3)
    ] + [{"paper": {"id": "bogus"}}]
    result = run_cli(
        database_url, "--source", "hf", "--date", "2025-10-06", PAPERBOT_HF_API_URL=feeds.hf_url
    )
    assert result.returncode == 0, result.stderr
    header, values = _summary(result.stdout)
    assert dict(zip(header, values, strict=True)) | {"seconds": "-"} == {
        "fetched": "3",
        "new": "3",
        "updated": "0",
        "rejected": "1",
        "embedded": "3",
        "seconds": "-",
    }
    assert "rejected 1: paper.id is not an arXiv id" in result.stdout
    with Database(database_url).read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Paper)) == 3


def test_cli_hf_without_a_date_asks_for_today_in_utc(sqlite_url: str, feeds: FeedServer) -> None:
    started = datetime.now(UTC).date()
    result = run_cli(sqlite_url, "--source", "hf", PAPERBOT_HF_API_URL=feeds.hf_url)
    assert result.returncode == 0, result.stderr
    asked = feeds.requests[0][1]["date"][0]
    # Around midnight UTC the day may turn between the run and this check.
    assert asked in {datetime.now(UTC).date().isoformat(), started.isoformat()}


def test_cli_reads_a_saved_response_file(sqlite_url: str, tmp_path: Path) -> None:
    saved = tmp_path / "daily.json"
    saved.write_text(json.dumps([daily_item("2510.00042v1", "Saved", "From a file.")]))
    result = run_cli(sqlite_url, "--source", "hf", "--file", str(saved))
    assert result.returncode == 0, result.stderr
    assert _summary(result.stdout)[1][:2] == ["1", "1"]


@pytest.mark.parametrize("name", ["missing.json", "."])  # absent, or a directory
def test_cli_with_an_unreadable_file_fails_with_one_line_before_the_database(
    tmp_path: Path, name: str
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = run_cli(url, "--source", "hf", "--file", str(tmp_path / name))
    assert result.returncode == 2 and result.stdout == ""  # no empty report
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ingest failed: cannot read {tmp_path / name}: ")
    assert not (tmp_path / "new.db").exists()  # no database was created


def test_cli_without_network_fails_with_one_line(sqlite_url: str) -> None:
    # A port nothing listens on: what an offline machine looks like to the client.
    result = run_cli(sqlite_url, "--source", "hf", PAPERBOT_HF_API_URL="http://127.0.0.1:9/api")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    failure = [line for line in result.stderr.splitlines() if line.startswith("ingest failed:")]
    assert failure == [
        "ingest failed: cannot reach 127.0.0.1 (ConnectError: [Errno 111] Connection refused) "
        "(gave up after 3 attempts)"
    ]


def test_cli_arxiv_needs_categories(sqlite_url: str) -> None:
    result = run_cli(sqlite_url, "--source", "arxiv")
    assert result.returncode == 2
    assert "no arXiv categories" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--source", "hf", "--category", "cs.CL"], "--category is for --source arxiv"),
        (["--date", "2025-10-06"], "--date does not apply to the bundled sample"),
    ],
)
def test_cli_refuses_an_option_that_does_not_apply(
    sqlite_url: str, args: list[str], error: str
) -> None:
    # Ignored, the operator would believe they got what they asked for.
    result = run_cli(sqlite_url, *args)
    assert result.returncode == 2
    assert f"ingest failed: {error}" in result.stderr and "Traceback" not in result.stderr


def test_cli_date_sets_the_listing_day_of_a_files_papers(sqlite_url: str, tmp_path: Path) -> None:
    saved = tmp_path / "daily.json"
    saved.write_text(json.dumps([daily_item("2510.00042", "Saved", "A.", day="2025-10-06")]))
    assert run_cli(sqlite_url, "--file", str(saved), "--date", "2025-10-07").returncode == 0
    with Database(sqlite_url).read() as session:
        assert session.scalar(sa.select(Paper.listed_on)) == date(2025, 10, 7)


def _summary(stdout: str) -> tuple[list[str], list[str]]:
    lines = [line for line in stdout.splitlines() if "│" in line or "┃" in line]
    cells = [[c.strip() for c in line.strip("┃│ ").replace("┃", "│").split("│")] for line in lines]
    return cells[0], cells[1]


# ---------------------------------------------------------------- torch stays out
def test_a_process_that_only_reacts_and_ranks_never_imports_torch(sqlite_url: str) -> None:
    database.upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.write() as session:
        for i in range(12):
            session.add(
                Paper(
                    id=f"2510.{i:05d}",
                    title=f"Paper {i}",
                    abstract="Abstract.",
                    listed_on=MONDAY,
                    source="hf",
                )
            )
        session.flush()
        for i in range(12):
            vector = HashingEmbedder().embed([f"paper {i}"])[0]  # any unit vector will do
            session.add(
                PaperEmbedding(
                    paper_id=f"2510.{i:05d}",
                    model=BUNDLED_MODEL_NAME,
                    dim=384,
                    vector=to_bytes(vector),
                )
            )
    db.dispose()
    script = textwrap.dedent(
        f"""
        import sys
        from bot import PaperBot, UserRef
        core = PaperBot.open({sqlite_url!r})  # the bundled model, as in production
        alice = UserRef("slack", "T1", "alice")
        picks = core.today(alice, limit=3)
        core.react(alice, picks[0].paper_id, 1)
        assert core.today(alice, limit=3)
        print(sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules))
        """
    )
    assert run_python(script).strip().splitlines()[-1] == "[]"
