"""`paperbot tick` and `paperbot today` from the command line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

from bot import cli, database
from bot.cli import app
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.models import Delivery
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.helpers import paper

# Square brackets are rich's markup: "[/]" closes nothing (an error), "[link=…]"
# makes a terminal hyperlink. A feed's title must print as the text it is.
MARKUP_TITLE = "Why [/] breaks [link=https://evil.example]rich[/link] output"


@pytest.fixture
def migrated(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI configured for an empty, migrated SQLite file and the fast embedder."""
    monkeypatch.setenv("PAPERBOT_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PAPERBOT_EMBEDDING_MODEL", "hashing")
    database.upgrade(sqlite_url)
    return sqlite_url


@pytest.fixture
def configured(migrated: str) -> str:
    """`migrated`, with the sample papers and one subscribed channel."""
    core = PaperBot.open(migrated, embedder=HashingEmbedder(), settings=Settings())
    core.ingest(SampleSource().fetch())
    core.subscribe(ChannelRef("local", "demo", "#general"), "09:00", "Europe/Berlin", limit=2)
    core.close()
    return migrated


def test_tick_at_an_instant_with_an_offset_posts_the_due_channel(configured: str) -> None:
    early = CliRunner().invoke(app, ["tick", "--now", "2025-11-24T08:59:00+01:00"])
    due = CliRunner().invoke(app, ["tick", "--now", "2025-11-24T09:00:00+01:00"])
    assert early.exit_code == 0 and due.exit_code == 0, due.output
    assert "tick at 2025-11-24 08:00 UTC" in due.output  # 09:00 at +01:00
    db = database.Database(configured)
    with db.read() as session:
        assert session.scalars(sa.select(Delivery.status)).all() == ["confirmed"]
    db.dispose()


def test_a_bad_instant_is_a_clear_error(configured: str) -> None:
    result = CliRunner().invoke(app, ["tick", "--now", "tomorrow-ish"])
    assert result.exit_code == 2
    assert "--now: expected an ISO-8601 date and time" in result.output


@pytest.mark.parametrize("day", ["1999-01-01", "2099-01-01"])
def test_today_on_a_day_without_papers_says_so(configured: str, day: str) -> None:
    result = CliRunner().invoke(app, ["today", "--day", day])
    assert result.exit_code == 0, result.output
    assert f"No papers listed on {day}; the newest day with papers is 2025-11-24." in result.output


def test_today_before_any_ingest_says_what_to_do(migrated: str) -> None:
    result = CliRunner().invoke(app, ["today"])
    assert result.exit_code == 0, result.output
    assert "No papers yet: run `paperbot ingest` first." in result.output


def test_today_prints_a_title_with_rich_markup_as_text(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = PaperBot.open(migrated, embedder=HashingEmbedder(), settings=Settings())
    core.ingest([paper(title=MARKUP_TITLE)])
    core.close()
    # Wide enough that the table does not wrap the title.
    monkeypatch.setattr(cli, "console", Console(width=200))
    result = CliRunner().invoke(app, ["today"])
    assert result.exit_code == 0, result.output
    assert MARKUP_TITLE in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["today", "--user", "a-workspace-name-that-is-rather-long:and-a-user-id-without-its-part"],
        ["today", "--day", "2025-11-24T00:00:00+00:00-and-some-more-text-to-make-it-long"],
        ["tick", "--now", "[bold]the day[/bold] after tomorrow, or thereabouts"],
    ],
)
def test_errors_are_one_line_whatever_their_length(configured: str, args: list[str]) -> None:
    # They were printed through rich, which wraps at the terminal's width (80 columns
    # when not a terminal) and reads [brackets] as markup.
    result = CliRunner().invoke(app, args, terminal_width=80)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) > 80, lines
    assert "[bold]" in lines[0] or "--now" not in lines[0]


def test_eval_errors_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "a-topics-file-in-a-directory-with-a-long-name" / "topics.json"
    result = CliRunner().invoke(
        app, ["eval", "--embedder", "hashing", "--topics", str(missing)], terminal_width=80
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"cannot evaluate: [Errno 2] No such file or directory: '{missing}'"
    ]


@pytest.mark.parametrize("count", ["0", "11"])
def test_today_refuses_a_count_outside_1_to_10_as_papers_today_does(
    configured: str, count: str
) -> None:
    # `--help` said "at most 10", yet 11 quietly showed 10 picks.
    result = CliRunner().invoke(app, ["today", "--count", count])
    assert result.exit_code == 2
    assert "Invalid value for '--count'" in result.output


def test_today_shows_10_picks_when_asked_for_10(configured: str) -> None:
    result = CliRunner().invoke(app, ["today", "--count", "10"])
    assert result.exit_code == 0, result.output
    assert result.output.count("sample:") == 10  # one id per pick: the sample's papers
