"""`paperbot run`: open the core, start every adapter whose credentials are set.

Adapters are loaded by module name (`adapters.<name>`), the way errbot loads a
backend, so the core depends on no chat SDK: each adapter package exposes
`create_adapter(core, settings) -> Adapter`.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import signal
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape

from bot import database
from bot.local_platform import PLATFORM as LOCAL
from bot.local_platform import LocalPostingPort
from bot.models import Paper
from bot.paperbot import PaperBot
from bot.posting import PostingPort
from bot.scheduler import DailyScheduler
from bot.settings import Settings

log = logging.getLogger(__name__)

CREDENTIAL_HELP = """\
No chat platform is configured. Set one of these (in the environment or in .env):
  Discord:  DISCORD_TOKEN
  Slack:    SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode), or
            SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and
            SLACK_CLIENT_SECRET, for OAuth) with PAPERBOT_SLACK_MODE=http
See README.md, sections "Discord" and "Slack"."""


class Adapter(Protocol):
    name: str
    port: PostingPort | None  # how the scheduler posts to this platform

    async def run(self) -> None:
        """Serve until cancelled."""
        ...


@runtime_checkable
class UsesScheduler(Protocol):
    """An adapter that posts through the process's scheduler (the web first start)."""

    def use_scheduler(self, scheduler: DailyScheduler) -> None: ...


def enabled_adapters(settings: Settings) -> list[str]:
    names = []
    if settings.discord_enabled:
        names.append("discord")
    if settings.slack_enabled:
        names.append("slack")
    if settings.web_enabled:
        names.append("web")
    return names


def load_adapter(name: str, core: PaperBot, settings: Settings) -> Adapter:
    module = importlib.import_module(f"adapters.{name}")
    return module.create_adapter(core, settings)


def posting_ports(core: PaperBot, adapters: list[Adapter]) -> dict[str, PostingPort]:
    """The ports the scheduler posts through: each started adapter's, and `local` always."""
    ports: dict[str, PostingPort] = {LOCAL: LocalPostingPort(core.db)}
    for adapter in adapters:
        if adapter.port is not None:
            ports[adapter.port.platform] = adapter.port
    return ports


def prepare_to_serve(core: PaperBot) -> None:
    """Start-up work done before serving, so that it never stalls the event loop later.

    - The catalogue is loaded now (with scikit-learn's text features, about
      1 s of imports), not in a worker thread by the first request, where
      imports and allocations compete with the loop for the GIL; so is the
      embedding model, which a follower's first picks need (`PaperBot.warm_up`).
    - Then every object start-up created is collected once and frozen out of
      the garbage collector (`gc.freeze`). A full collection walks every
      tracked object while holding the GIL, so no thread, the event loop
      included, runs meanwhile: with the chat SDKs, SQLAlchemy and
      scikit-learn loaded that is about 210,000 objects and 140-250 ms, the
      loop stalls bench/load.py measured. Modules, classes and the core live
      as long as the process, so collections from here on walk only what
      serving creates.
    """
    core.warm_up()
    gc.collect()
    gc.freeze()


def log_start_up(core: PaperBot) -> None:
    """Say which database and embedding model this process uses, and warn when stored
    papers have no vector for that model: only papers with one are offered, and
    nothing else would say why the others never are."""
    with core.db.read() as session:
        papers = session.scalar(sa.select(sa.func.count()).select_from(Paper)) or 0
    log.info(
        "database %s: %d papers; embedding model %s",
        database.where(core.db.url),
        papers,
        core.embedder.name,
    )
    missing = core.papers_lacking_vectors()
    if missing:
        # Not plain `paperbot ingest`: its default source adds the bundled sample papers.
        log.warning(
            "%d papers have no vectors for %s (was PAPERBOT_EMBEDDING_MODEL changed?); "
            "run `paperbot ingest --source hf` to embed them (the daily ingest does too)",
            missing,
            core.embedder.name,
        )


async def serve(core: PaperBot, settings: Settings, names: list[str]) -> None:
    # SIGTERM (docker stop, systemd) stops like Ctrl-C: the scheduler lets a job in
    # progress finish. It is handled on the loop, which cancels this task. Raised as
    # a KeyboardInterrupt wherever the process happened to be, it was lost when that
    # was a finaliser (`__del__` prints such an exception and drops it), and the
    # process never stopped.
    main = asyncio.current_task()
    assert main is not None  # noqa: S101  (a coroutine runs in a task)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    adapters = [load_adapter(name, core, settings) for name in names]
    prepare_to_serve(core)
    log.info("starting adapters: %s", ", ".join(a.name for a in adapters))
    # Started here, once per process, on the adapters' loop; never from an
    # adapter's on_ready, which fires again on every gateway reconnect.
    daily = DailyScheduler(core, posting_ports(core, adapters))
    for adapter in adapters:
        if isinstance(adapter, UsesScheduler):
            adapter.use_scheduler(daily)
    daily.start()
    try:
        async with asyncio.TaskGroup() as group:
            for adapter in adapters:
                group.create_task(adapter.run(), name=f"adapter-{adapter.name}")
    finally:
        await daily.stop()


def demo(core: PaperBot, console: Console) -> None:
    """No adapter at all: show today's picks for a local user, then say what to set."""
    from bot.domain import UserRef
    from bot.sources.sample import SampleSource

    if core.latest_day() is None:
        if core.papers_lacking_vectors():
            # Papers stored, none with a vector for this model (it was changed):
            # embed them rather than mix the sample papers in with them.
            console.print(f"Embedding the stored papers with {core.embedder.name}…")
            core.ingest([])
        else:
            console.print("Empty database: ingesting the bundled sample papers…")
            core.ingest(SampleSource().fetch())
    picks = core.today(UserRef("local", "demo", "you"))
    console.print(f"[bold]Today's picks for local user 'you'[/] ({core.latest_day()}):")
    for pick in picks:
        # Feed text in brackets would be read as rich markup: escaped, it prints as is.
        console.print(
            f"• {escape(pick.title)}\n  {escape(pick.url)}  [dim]{escape(pick.reason)}[/]",
            markup=True,
            highlight=False,
        )
    console.print(CREDENTIAL_HELP)
