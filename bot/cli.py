"""The `paperbot` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import sqlalchemy.exc as sa_exc
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import database, evaluation, logs
from bot.domain import IngestReport, UserRef
from bot.errors import PaperBotError, PlatformUnreachable
from bot.ingest import fetch_all
from bot.paperbot import PaperBot
from bot.settings import Settings, SettingsError, load_settings
from bot.sources import Source
from bot.sources.arxiv import ArxivSource
from bot.sources.feed_http import FeedClient, FeedError
from bot.sources.hf import HfDailySource, HfFileSource
from bot.sources.sample import SampleSource

app = typer.Typer(
    help="paperbot: research paper recommendations for Discord and Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)
# Not "paperbot": that is the Slack Bolt app's logger, which Bolt sets to its client's level.
log = logging.getLogger(__name__)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"configuration error: {exc}", err=True)  # one line, never wrapped
        raise typer.Exit(2) from None
    logs.configure(settings)
    return settings


def _open(settings: Settings, *, migrate: bool = True) -> PaperBot:
    if migrate:
        database.upgrade(settings.database_url)
    return PaperBot.open(settings=settings)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[
        str, typer.Option(help="Migrate up to this revision, e.g. 0005 (default: the newest).")
    ] = "head",
) -> None:
    """Apply migrations (default: all)."""
    settings = _settings()
    database.upgrade(settings.database_url, revision)
    _print_revision(settings.database_url)


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the database)."""
    settings = _settings()
    database.downgrade(settings.database_url, revision)
    _print_revision(settings.database_url)


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    settings = _settings()
    _print_revision(settings.database_url)


def _print_revision(url: str) -> None:
    current = database.current_revision(url)
    state = f"at revision {current}" if current else "empty (no migrations applied)"
    typer.echo(f"database {database.where(url)} {state}")  # not rich: it would wrap a long path


class SourceName(StrEnum):
    hf = "hf"
    arxiv = "arxiv"
    sample = "sample"


@app.command()
def ingest(
    source: Annotated[SourceName, typer.Option(help="Where papers come from.")] = SourceName.sample,
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="YYYY-MM-DD: the listing day to fetch from hf or arxiv (default: today, "
            "UTC), or the day a --file's papers are listed on (default: each paper's own).",
        ),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(help="arXiv category, repeatable (default: PAPERBOT_ARXIV_CATEGORIES)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="A saved Daily Papers JSON response to read instead of the API."),
    ] = None,
) -> None:
    """Fetch papers, store new ones and embed each once."""
    settings = _settings()
    listing_day: date | None = None
    if day:
        try:
            listing_day = date.fromisoformat(day)
        except ValueError:
            typer.echo(f"--date must be YYYY-MM-DD, got {day[:20]!r}", err=True)
            raise typer.Exit(2) from None
    started = time.perf_counter()
    with FeedClient(max_bytes=settings.feed_max_bytes, timeout=settings.feed_timeout) as client:
        try:
            src = _source(source, settings, client, listing_day, category or [], file)
        except FeedError as exc:
            typer.echo(f"ingest failed: {exc}", err=True)
            raise typer.Exit(2) from None
        core = _open(settings)
        report, failure = _ingest_with_progress(core, src)
    print_ingest_report(replace(report, seconds=time.perf_counter() - started))
    if failure is not None:
        # One line, no traceback: the scheduler logs it, and retries while the
        # newest list is older than yesterday (every 2 h, 3 times), else tomorrow.
        typer.echo(f"ingest failed: {failure}", err=True)
        raise typer.Exit(1)


def _source(
    kind: SourceName,
    settings: Settings,
    client: FeedClient,
    day: date | None,
    categories: list[str],
    file: Path | None,
) -> Source:
    # Options that do not apply are refused, not ignored: the operator meant something.
    if categories and (kind is not SourceName.arxiv or file is not None):
        raise FeedError("--category is for --source arxiv")
    if day is not None and kind is SourceName.sample and file is None:
        raise FeedError("--date does not apply to the bundled sample: its papers keep their days")
    if file is not None:
        if kind not in (SourceName.hf, SourceName.sample):
            raise FeedError("--file reads a Daily Papers response; use it with --source hf")
        try:
            # Now, before the database is opened: a mistyped path must not migrate
            # (or create) a database and print an empty report before saying so.
            file.open("rb").close()
        except OSError as exc:
            raise FeedError(f"cannot read {file}: {exc.strerror}") from None
        return HfFileSource(file, day, max_bytes=settings.feed_max_bytes)
    today = datetime.now(UTC).date()
    if kind is SourceName.hf:
        return HfDailySource(client, settings.hf_api_url, day or today)
    if kind is SourceName.arxiv:
        wanted = categories or settings.arxiv_categories
        if not wanted:
            raise FeedError("no arXiv categories: pass --category or set PAPERBOT_ARXIV_CATEGORIES")
        return ArxivSource(client, settings.arxiv_api_url, wanted, day or today)
    return SampleSource()


def _progress_bar() -> Progress:
    """The progress bar of every long command, on stderr, gone when the work is done."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _ingest_with_progress(core: PaperBot, src: Source) -> tuple[IngestReport, FeedError | None]:
    with _progress_bar() as bar:
        fetching = bar.add_task(f"fetching from {src.name}", total=None)
        papers, failure = fetch_all(src, on_paper=lambda n: bar.update(fetching, completed=n))
        bar.update(fetching, total=len(papers), completed=len(papers))
        embedding = bar.add_task("storing and embedding", total=None)
        report = core.ingest(
            papers,
            rejected=dict(src.rejected),  # complete now: the source has been read
            progress=lambda done, total: bar.update(embedding, completed=done, total=total),
        )
    return report, failure


def print_ingest_report(report: IngestReport) -> None:
    table = Table(title="ingest")
    for column in ("fetched", "new", "updated", "rejected", "embedded", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.fetched),
        str(report.new),
        str(report.updated),
        str(report.rejected_total),
        str(report.embedded),
        f"{report.seconds:.1f}",
    )
    console.print(table)
    for reason, count in sorted(report.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        console.print(f"  rejected {count}: {reason}", highlight=False)


@app.command()
def today(
    user: Annotated[str, typer.Option(help="platform:workspace:user")] = "local:demo:you",
    # The bounds of /papers today: the facade would quietly show 10 for 11.
    count: Annotated[int, typer.Option(min=1, max=10, help="How many picks.")] = 5,
    day: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: latest)")] = None,
) -> None:
    """Show a user's picks, as /papers today would (and remember them as shown)."""
    settings = _settings()
    platform, workspace, user_id = _split_ref(user)
    try:
        who = UserRef(platform, workspace, user_id)
        on = date.fromisoformat(day) if day else None
        core = _open(settings)
        picks = core.today(who, limit=count, day=on)
    except (ValueError, PaperBotError) as exc:
        typer.echo(f"cannot show picks: {exc}", err=True)
        raise typer.Exit(2) from None
    if not picks:  # today() is never empty while the day (or its look-back) has papers
        newest = core.feed_day(date.max)
        if newest is None:
            console.print("No papers yet: run `paperbot ingest` first.")
        else:
            console.print(f"No papers listed on {on}; the newest day with papers is {newest}.")
        return
    table = Table(title=f"picks for {user}")
    for column in ("paper", "title", "score", "reason"):
        table.add_column(column)
    for pick in picks:
        # Feed text in brackets would be read as rich markup: escaped, it prints as is.
        table.add_row(
            escape(pick.paper_id),
            escape(pick.title[:80]),
            f"{pick.score:.3f}",
            escape(pick.reason),
        )
    console.print(table)


class EvalEmbedder(StrEnum):
    bundled = "bundled"
    hashing = "hashing"


@app.command("eval")
def evaluate(
    corpus: Annotated[
        Path | None, typer.Option(help="A JSONL feed like bot/data/sample_papers.jsonl.")
    ] = None,
    topics: Annotated[
        Path | None,
        typer.Option(help='JSON list of {"name": ..., "keywords": [...]}: the hidden topics.'),
    ] = None,
    seeds: Annotated[
        int, typer.Option(min=1, help="Independent replays (reader draws), averaged.")
    ] = 10,
    readers: Annotated[int, typer.Option(min=1, help="Simulated readers per seed.")] = 24,
    warmup: Annotated[int, typer.Option(min=1, help="Days of feedback before scoring.")] = 3,
    corpus_share: Annotated[
        float,
        typer.Option(
            help="Below 1, each seed replays its own random share of the papers "
            "(0 < share <= 1): how much do the results owe to this one corpus?",
        ),
    ] = 1.0,
    embedder: Annotated[
        EvalEmbedder, typer.Option(help="hashing: fast lexical stand-in, for quick checks.")
    ] = EvalEmbedder.bundled,
    cache: Annotated[Path, typer.Option(help="Where corpus vectors are kept between runs.")] = Path(
        "data"
    ),
) -> None:
    """Replay simulated readers over a feed and compare recommenders (precision@5)."""
    from bot.embedding import HashingEmbedder, SentenceTransformerEmbedder

    logging.basicConfig(level=logging.WARNING)
    inner = HashingEmbedder() if embedder == "hashing" else SentenceTransformerEmbedder("bundled")
    slug = "".join(c if c.isalnum() else "-" for c in inner.name)
    cached = evaluation.CachingEmbedder(inner, cache / f"eval-embeddings-{slug}.npz")
    try:
        config = evaluation.EvalConfig(
            seeds=seeds,
            warmup_days=warmup,
            readers_per_seed=readers,
            topics=tuple(evaluation.load_topics(topics)),
            corpus_share=corpus_share,
        )
        with _progress_bar() as bar:
            replay = bar.add_task("replaying readers", total=None)
            scores = evaluation.evaluate(
                evaluation.load_corpus(corpus),
                cached,
                config,
                progress=lambda done, total: bar.update(replay, completed=done, total=total),
            )
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot evaluate: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(evaluation_table(scores, config))
    for line in evaluation.summary(scores):
        console.print(line, highlight=False)


def evaluation_table(scores: evaluation.Scores, config: evaluation.EvalConfig) -> Table:
    table = Table(
        title=f"oracle-normalised precision@5, mean ± sd over {config.seeds} seeds",
        caption=f"after warm-up = days {config.warmup_days + 1}+",
    )
    table.add_column("recommender")
    for phase in evaluation.PHASES:
        table.add_column(phase, justify="right")
    for name in evaluation.ALGORITHMS:
        table.add_row(
            name,
            *(
                f"{scores.mean(name, phase):.3f} ± {scores.spread(name, phase):.3f}"
                for phase in evaluation.PHASES
            ),
        )
    return table


def _split_ref(ref: str) -> tuple[str, str, str]:
    parts = ref.split(":", 2)
    if len(parts) != 3 or not all(parts):
        typer.echo(f"expected platform:workspace:id, got {ref!r}", err=True)
        raise typer.Exit(2)
    return parts[0], parts[1], parts[2]


@app.command()
def run() -> None:
    """Migrate the database and start every adapter whose credentials are set.

    With no chat credentials that is the local web adapter; PAPERBOT_WEB=1
    also starts it next to Discord or Slack. With PAPERBOT_WEB=0 and no chat
    credentials, it prints today's picks for a local user in the terminal
    (an empty database first gets the bundled sample papers) and exits.
    """
    from bot import runner

    settings = _settings()
    missing = settings.missing_credential()
    if missing:
        typer.echo(f"configuration error: {missing}", err=True)
        raise typer.Exit(2)
    core = _open(settings)
    runner.log_start_up(core)
    names = runner.enabled_adapters(settings)
    if not names:
        runner.demo(core, console)
        return
    try:
        asyncio.run(runner.serve(core, settings, names))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM (runner.serve)
        log.info("stopped")


@app.command()
def tick(
    now: Annotated[
        str | None,
        typer.Option(help="ISO-8601 instant to tick at (default: now); no offset means UTC."),
    ] = None,
) -> None:
    """Run one due-post tick for the local platform and exit (for cron-driven operators)."""
    from bot import scheduler
    from bot.local_platform import PLATFORM, LocalPostingPort

    settings = _settings()
    at = _parse_instant(now) if now else None
    core = _open(settings)
    try:
        report = asyncio.run(scheduler.tick(core, {PLATFORM: LocalPostingPort(core.db)}, at))
    finally:
        core.close()
    if not report.leader:
        console.print("another paperbot process posts to this platform: nothing to do")
        return
    table = Table(title=f"tick at {report.now:%Y-%m-%d %H:%M} UTC")
    columns = ("due", "posted", "notices", "resumed", "skipped", "failed", "retry later")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(v)
            for v in (
                report.due,
                report.posted,
                report.notices,
                report.resumed,
                report.skipped,
                report.failed,
                report.retry_later,
            )
        )
    )
    console.print(table)


def _parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"--now: expected an ISO-8601 date and time, got {text[:40]!r}", err=True)
        raise typer.Exit(2) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def main() -> None:
    try:
        app()
    except* SettingsError as group:  # raised lazily: by PaperBot.open, or an adapter's login
        typer.echo(f"configuration error: {_first(group)}", err=True)
        sys.exit(2)
    except* PlatformUnreachable as group:  # e.g. Discord's API, offline or behind a proxy
        typer.echo(f"cannot start: {_first(group)}", err=True)
        sys.exit(1)
    except* database.MigrationError as group:  # e.g. a database migrated by a newer paperbot
        typer.echo(f"cannot migrate the database: {_first(group)}", err=True)
        sys.exit(1)
    except* sa_exc.OperationalError as group:  # unreachable server, unwritable file
        reason = str(_first(group).orig).strip().splitlines()  # type: ignore[attr-defined]
        typer.echo(f"cannot open the database: {reason[0] if reason else 'unknown'}", err=True)
        sys.exit(1)


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first error in a (possibly nested) group: an adapter's failure reaches
    `main` wrapped by the runner's TaskGroup."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


if __name__ == "__main__":
    main()
