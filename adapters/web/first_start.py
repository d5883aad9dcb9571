"""First start of the web adapter: make sure `#papers` has something to show.

With an empty database it tries the Daily Papers feed once, briefly; offline
(a fresh clone on a laptop) it ingests the bundled sample papers instead.
Then it subscribes `local:demo:#papers` and has the scheduler post today's
picks. The post goes through the scheduler's delivery ledger like every daily
post, so a restart, or the scheduler's own tick a minute later, never posts
the same day twice.

Under `paperbot run` the tick is this process's scheduler's (`DailyScheduler.tick`),
on its posting locks: on PostgreSQL a tick of its own would find the lock held by
that very scheduler, and the page would wait up to a minute for its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from adapters.web.app import CHANNEL, StartupStatus
from bot.domain import PaperIn
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot
from bot.scheduler import TickReport, tick
from bot.settings import Settings
from bot.sources.sample import SampleSource

log = logging.getLogger(__name__)

# Candidates per pick the first batch should hold, so the first post is a full one.
CANDIDATES_PER_PICK = 3
# The feed gets one short try on first start, so an offline newcomer is not kept waiting.
FEED_TIMEOUT_SECONDS = 5.0
FEED_ATTEMPT_SECONDS = 60.0
# How long the core's catalogue may lag behind papers another process stored.
CATALOG_SETTLE_SECONDS = 10.0
# The leading scheduler ticks every minute.
LEADER_TICK_WAIT_SECONDS = 90.0
INGEST_COMMAND = [sys.executable, "-m", "bot", "ingest", "--source", "hf"]


# One scheduler tick of the local platform.
LocalTick = Callable[[], Awaitable[TickReport]]


async def first_start(
    core: PaperBot,
    port: LocalPostingPort,
    status: StartupStatus,
    settings: Settings,
    local_tick: LocalTick | None = None,
) -> None:
    """Ingest if empty, subscribe #papers if never subscribed, then run one scheduler tick:
    `local_tick`, the process's scheduler's, or else one that takes the posting lock itself."""
    try:
        await _first_start(
            core, port, status, settings, local_tick or (lambda: tick(core, {port.platform: port}))
        )
    except Exception:
        # The page still works (commands, search); say what failed instead of dying.
        log.exception("first start of the web adapter failed")
        status.problems.append("Setting up #papers failed; see the log. Commands still work.")
    finally:
        status.ready = True


async def _first_start(
    core: PaperBot,
    port: LocalPostingPort,
    status: StartupStatus,
    settings: Settings,
    local_tick: LocalTick,
) -> None:
    rest: list[PaperIn] = []
    empty = await asyncio.to_thread(core.latest_day) is None
    unembedded = await asyncio.to_thread(core.papers_lacking_vectors) if empty else 0
    if unembedded:
        # Not an empty database: its papers have no vectors for this model (after a
        # change of PAPERBOT_EMBEDDING_MODEL). Embed them; sample papers must not be
        # mixed in with a team's own.
        status.message = f"Embedding {unembedded} stored papers with {core.embedder.name}…"
        log.info(
            "no stored paper has a vector for %s yet: embedding %d",
            core.embedder.name,
            unembedded,
        )
        report = await asyncio.to_thread(core.ingest, [])
        log.info("embedded %d stored papers in %.1f s", report.embedded, report.seconds)
    elif empty and not await _feed_ingested(core, settings, status):
        source = SampleSource()
        papers = list(source.fetch())
        first, rest = newest_first_batch(papers, core.settings.picks_per_post)
        status.message = f"Empty database: embedding {len(papers)} bundled sample papers…"
        log.info(
            "empty database: ingesting the %d bundled sample papers; the newest %d first",
            len(papers),
            len(first),
        )
        report = await asyncio.to_thread(core.ingest, first, rejected=dict(source.rejected))
        log.info("ingested %d sample papers in %.1f s", report.new, report.seconds)
    if await asyncio.to_thread(core.subscription, CHANNEL) is None:
        # Post time = now, so the first post goes out in this very start and
        # then daily at the same time. Someone who unsubscribed stays unsubscribed.
        now = datetime.now(UTC)
        info = await asyncio.to_thread(
            core.subscribe,
            CHANNEL,
            now.time(),
            "UTC",
            core.settings.picks_per_post,
            by="paperbot",
            name="papers",
        )
        log.info(
            "subscribed %s:%s:%s: %d picks daily at %s UTC",
            CHANNEL.platform,
            CHANNEL.workspace,
            CHANNEL.channel,
            info.limit,
            f"{info.at:%H:%M}",
        )
    status.message = "Posting today's picks to #papers…"
    tick = await local_tick()
    if not tick.leader:
        # On PostgreSQL one process posts to the local platform: here another
        # one, which posts on its next tick, within a minute.
        log.info("the process posting to the local platform posts to #papers when it is due")
        await _wait_for_a_post(core, port, status)
    elif tick.posted or tick.notices or tick.resumed:
        log.info("first-start tick: posted today's picks to #papers")
    elif tick.due:
        log.warning("first-start tick: posting to #papers failed; the scheduler retries")
    else:
        log.info("first-start tick: nothing due (#papers has today's post, or it is not time)")
    if rest:
        status.ready = True  # the page has its post; older papers arrive in the background
        await _ingest_by_day(core, rest)


async def _wait_for_a_post(core: PaperBot, port: LocalPostingPort, status: StartupStatus) -> None:
    """Keep the page saying "waiting" until the leader's post is there, if one is coming."""
    info = await asyncio.to_thread(core.subscription, CHANNEL)
    if info is None or info.status == "cancelled":
        return
    if await asyncio.to_thread(port.history, CHANNEL, 1):
        return
    status.message = "Waiting for the scheduler to post today's picks to #papers…"
    try:
        async with asyncio.timeout(LEADER_TICK_WAIT_SECONDS):
            # The post is written by whichever process leads: only the database can tell.
            while not await asyncio.to_thread(port.history, CHANNEL, 1):  # noqa: ASYNC110
                await asyncio.sleep(1)
    except TimeoutError:
        log.warning("no post in #papers yet; the scheduler posts when it is due")


async def _ingest_by_day(core: PaperBot, papers: list[PaperIn]) -> None:
    """Ingest older papers one listing day at a time, newest first.

    A worker thread cannot be interrupted, so small steps keep Ctrl-C quick:
    stopping waits for one day's papers at most.
    """
    log.info("ingesting the remaining %d sample papers in the background", len(papers))
    days = sorted({p.listed_on for p in papers}, reverse=True)
    done = 0
    try:
        for day in days:
            batch = [p for p in papers if p.listed_on == day]
            await asyncio.to_thread(core.ingest, batch)
            done += len(batch)
    except asyncio.CancelledError:
        log.warning(
            "stopped with %d older sample papers not ingested; `paperbot ingest` adds them",
            len(papers) - done,
        )
        raise
    log.info("all %d bundled sample papers are ingested", done)


async def _feed_ingested(core: PaperBot, settings: Settings, status: StartupStatus) -> bool:
    """Try today's Daily Papers feed once, briefly; True if it brought papers.

    It runs `paperbot ingest --source hf` as a subprocess, as the scheduler's
    daily ingest does. Offline, it fails within seconds and the sample is used.
    """
    if importlib.util.find_spec("bot.sources.hf") is None:
        return False  # a build without the feed source: the sample is all there is
    status.message = "Empty database: trying today's Daily Papers feed…"
    log.info("empty database: trying the Daily Papers feed (%s) first", settings.hf_api_url)
    process = await asyncio.create_subprocess_exec(
        *INGEST_COMMAND,
        env={
            **os.environ,
            # The child stores into this adapter's database, with its model and feed.
            "PAPERBOT_DATABASE_URL": core.db.url,
            "PAPERBOT_EMBEDDING_MODEL": settings.embedding_model,
            "PAPERBOT_HF_API_URL": settings.hf_api_url,
            "PAPERBOT_FEED_TIMEOUT": str(min(settings.feed_timeout, FEED_TIMEOUT_SECONDS)),
        },
    )
    try:
        async with asyncio.timeout(FEED_ATTEMPT_SECONDS):
            code = await process.wait()
    except TimeoutError:
        process.kill()
        code = await process.wait()
    if code == 0:
        # The papers were written by another process; the core's in-memory
        # catalogue may take a moment to look at the database again.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CATALOG_SETTLE_SECONDS):
                while await asyncio.to_thread(core.latest_day) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
    if await asyncio.to_thread(core.latest_day) is not None:
        log.info("ingested today's papers from the feed")
        return True
    log.info("the feed brought no papers (exit %s); using the bundled sample papers", code)
    return False


def newest_first_batch(
    papers: Sequence[PaperIn], picks: int
) -> tuple[list[PaperIn], list[PaperIn]]:
    """Split papers into the newest listing days (enough for a full post) and the rest.

    Embedding a whole feed takes a while on a laptop; the first post only needs
    the newest day, so it comes first and the page fills in seconds.
    """
    days = sorted({p.listed_on for p in papers}, reverse=True)
    cut = days[-1] if days else None
    count = 0
    for day in days:
        count += sum(1 for p in papers if p.listed_on == day)
        cut = day
        if count >= CANDIDATES_PER_PICK * picks:
            break
    first = [p for p in papers if cut is not None and p.listed_on >= cut]
    rest = [p for p in papers if cut is None or p.listed_on < cut]
    return first, rest
