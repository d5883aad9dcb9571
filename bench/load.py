"""Load: reactions through every adapter's real entry path, with commands and a fan-out tick.

    python -m bench.load [--minutes 5] [--rate 5000] [--database-url URL] [--stalls FILE]

Starts paperbot in its own process (bench/load_bot.py: Discord, Slack in HTTP
mode and the web adapter, through `bot.runner`, hashing embedder, no model)
and, from this process, offers `--rate` reactions a minute in total, spread
evenly over three paths, on a fixed schedule that does not wait for answers
(open loop, as real users do):

- Slack: signed `reaction_added` event requests to /slack/events;
- Discord: MESSAGE_REACTION_ADD frames from the fake Discord gateway
  (tests/fakes/discord_server.py) to the real discord.py client;
- web: POST /api/feedback with the page's CSRF cookie and header.

Meanwhile `/papers today` is sent every COMMAND_INTERVAL seconds (Slack slash
command and web command in turn), and halfway through, the bot runs one daily
fan-out tick (`bot.scheduler.tick`) for SUBSCRIPTIONS channels on all
platforms. After a drain period it counts the stored reactions in the
database: every event is a distinct (user, paper), so each must add one row.

Latency: request -> response for Slack and web (Slack events are stored
before the 200, see adapters/slack/app.py, so this is request -> stored); for
Discord, the gateway frame's send time here -> the moment the bot's reaction
handler returned after committing, read from the same system clock in both
processes. The baseline, in the same run on the same database, is calling
`core.handle_reaction` directly, one at a time.

The bot process's loop watchdog (bench/loop_watchdog.py) says, for every
stall over 50 ms, where the time went: the loop computing, another thread
holding the GIL, a full garbage collection, or the OS running other
processes; `--stalls FILE` writes the details (stacks, CPU, busiest
processes) as JSON.

`--database-url` names a PostgreSQL *server*: a throwaway database is created
on it and dropped afterwards. Default: a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.web.app import CHANNEL as WEB_PAPERS
from bench.latency import percentile_ms
from bench.loop_watchdog import STALL_MS
from bench.throwaway_database import fresh_database
from bot import database
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.feedback import ReactionEvent
from bot.models import Reaction
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.discord.helpers import reaction as discord_reaction
from tests.fakes.discord_server import CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.fakes.slack_server import FakeSlack
from tests.slack.slack_requests import BOT_TOKEN, SIGNING_SECRET, TEAM, signed_headers, slash_body
from tests.slack.slack_requests import event_body as slack_event_body
from tests.slack.slack_requests import reaction as slack_reaction

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("slack", "discord", "web")
POSTED = 50  # posted messages per chat channel that the reactions land on
SUBSCRIPTIONS = 50  # `local` channels in the fan-out tick, besides Discord, Slack, web #papers
COMMAND_INTERVAL = 2.0
DRAIN_SECONDS = 60.0
BASELINE_EVENTS = 500
READ_LIMIT = 64 * 1024 * 1024  # the bot's answer with every Discord reaction's time is one line
USER_PREFIX = "load"  # web and Slack reacting users; Discord users are numbers from DISCORD_USER
DISCORD_USER = 7_000_000_000
DISCORD_HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
SLACK_HERE = ChannelRef("slack", TEAM, "C1")
TARGETS = {"p99_ms": 200.0, "lag_ms": 100.0, "rss_mb": 300.0}


@dataclass
class PathResult:
    sent: int = 0
    stored: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # answers other than 200, by status
    latencies: list[float] = field(default_factory=list)
    started_at: list[float] = field(default_factory=list)  # wall clock, one per latency

    @property
    def lost(self) -> int:
        return self.sent - self.stored

    def outside(self, window: tuple[float, float]) -> list[float]:
        """Latencies of events sent outside `window` (wall clock): apart from the tick."""
        return [
            latency
            for latency, at in zip(self.latencies, self.started_at, strict=True)
            if not window[0] <= at <= window[1]
        ]


@dataclass
class CommandResult:
    sent: int = 0
    answered: int = 0  # web: a 200 reply; Slack: the reply posted to response_url
    latencies: list[float] = field(default_factory=list)  # request -> ack (Slack) / reply (web)


@dataclass
class LoadResult:
    database: str
    seconds: float
    rate: float
    paths: dict[str, PathResult]
    commands: dict[str, CommandResult]
    tick: dict[str, Any]
    bot: dict[str, Any]  # load_bot's stats: lag, memory, torch
    baseline: list[float]  # seconds per direct core.handle_reaction
    baseline_rate: float  # direct calls per second
    loadavg: str  # the machine's, when the load ended: other jobs share its cores

    @property
    def lost(self) -> int:
        return sum(p.lost for p in self.paths.values())


# ---------------------------------------------------------------- set-up


@dataclass
class Seeded:
    papers: list[str]
    tick_at: datetime


def seed(url: str) -> Seeded:
    """Migrate, ingest the sample feed, record the posts reactions land on, subscribe channels."""
    database.upgrade(url)
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
    try:
        core.ingest(SampleSource().fetch())
        with core.db.read() as session:
            papers = list(session.scalars(sa.text("SELECT id FROM papers ORDER BY id")))
        posts = papers[:POSTED]
        core.record_posts(DISCORD_HERE, [(discord_message(i), p) for i, p in enumerate(posts)])
        core.record_posts(SLACK_HERE, [(slack_ts(i), p) for i, p in enumerate(posts)])
        # The bot process's web adapter runs one real-clock tick at start (first_start),
        # and would subscribe its #papers at the wall-clock time. A channel it posts to
        # then has nothing new at the tick below ("no new papers"), so the result
        # would hang on the hour the bench runs. The post time is 12 h from now:
        # at start every channel is either not yet due or missed beyond the grace
        # (PAPERBOT_POST_GRACE, 6 h by default),
        # while the tick below, on the sample's last day, comes 30 s after it (on the
        # same day even for a post time of 23:59).
        post_at = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
        locals_ = [ChannelRef("local", "load", f"#c{i}") for i in range(SUBSCRIPTIONS)]
        for channel in [DISCORD_HERE, SLACK_HERE, WEB_PAPERS, *locals_]:
            core.subscribe(channel, post_at.time(), "UTC", 5, by="bench")
        latest = core.latest_day()
        assert latest is not None  # noqa: S101  (the sample feed was just ingested)
        tick_at = datetime.combine(latest, post_at.time(), UTC) + timedelta(seconds=30)
        return Seeded(papers, tick_at)
    finally:
        core.close()


def discord_message(i: int) -> str:
    return str(1000 + i % POSTED)


def slack_ts(i: int) -> str:
    return f"1700000000.{i % POSTED:06d}"


def baseline(url: str, papers: list[str], count: int) -> tuple[list[float], float]:
    """Direct core.handle_reaction, one at a time, on a tenant of its own in the same database."""
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
    here = ChannelRef("discord", "baseline", "1")
    core.record_posts(here, [(discord_message(i), p) for i, p in enumerate(papers[:POSTED])])
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        event = ReactionEvent("discord", "baseline", "1", discord_message(i), f"b{i}", "👍", True)
        t0 = time.perf_counter()
        core.handle_reaction(event)
        latencies.append(time.perf_counter() - t0)
    rate = count / (time.perf_counter() - started)
    core.close()
    return latencies, rate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotProcess:
    """bench/load_bot.py in a subprocess, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, env: dict[str, str]) -> tuple[BotProcess, dict[str, Any]]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load_bot",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=READ_LIMIT,
        )
        bot = cls(process)
        return bot, (await bot._read())["ready"]

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None  # noqa: S101  (created with stdout=PIPE)
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the bot process exited ({await self.process.wait()})")
            if line.startswith(b"{"):  # the web adapter prints its URL for humans too
                return json.loads(line)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None  # noqa: S101  (created with stdin=PIPE)
        async with self._lock:
            self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
            await self.process.stdin.drain()
            return await self._read()

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.write(b'{"op": "stop"}\n')
            with contextlib.suppress(ConnectionError):
                await self.process.stdin.drain()
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def bot_environment(
    url: str, fake_discord: FakeDiscord, fake_slack: FakeSlack, web_port: int
) -> dict[str, str]:
    """`paperbot run` configuration: all three adapters, Slack in HTTP mode, no model."""
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        PAPERBOT_DATABASE_URL=url,
        PAPERBOT_EMBEDDING_MODEL="hashing",
        PAPERBOT_LOG_LEVEL="WARNING",
        DISCORD_TOKEN=fake_discord.token,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        PAPERBOT_SLACK_MODE="http",
        PAPERBOT_SLACK_API_URL=fake_slack.api_url,
        PAPERBOT_HTTP_PORT="0",
        PAPERBOT_WEB="1",
        PAPERBOT_WEB_PORT=str(web_port),
        BENCH_DISCORD_REST=fake_discord.rest_url,
        BENCH_DISCORD_GATEWAY=fake_discord.gateway_url,
    )


# ---------------------------------------------------------------- the load


class Senders:
    """One event or command through one path; each records its own outcome."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        slack_url: str,
        web_url: str,
        fake_discord: FakeDiscord,
        fake_slack: FakeSlack,
        papers: list[str],
    ) -> None:
        self.http, self.slack_url, self.web_url = http, slack_url, web_url
        self.fake_discord, self.fake_slack, self.papers = fake_discord, fake_slack, papers
        self.paths = {name: PathResult() for name in PATHS}
        self.commands = {name: CommandResult() for name in ("slack", "web")}
        self.discord_sent_at: dict[str, float] = {}
        token = secrets.token_urlsafe(32)
        # The web page's double-submit CSRF token, and a same-origin request.
        self._web_headers = {"origin": web_url, "x-csrf-token": token}
        self._web_cookie = f"paperbot_csrf={token}"

    async def _post(self, result: PathResult | CommandResult, url: str, **kwargs: Any) -> bool:
        if isinstance(result, PathResult):
            result.started_at.append(time.time())
        started = time.perf_counter()
        try:
            async with self.http.post(url, **kwargs) as response:
                await response.read()
                status = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        result.latencies.append(time.perf_counter() - started)
        if isinstance(result, PathResult) and status != "200":
            result.errors[status] += 1
        return status == "200"

    async def reaction(self, path: str, i: int) -> None:
        result = self.paths[path]
        result.sent += 1
        if path == "slack":
            body = slack_event_body(
                slack_reaction("reaction_added", "+1", slack_ts(i), user=f"U{USER_PREFIX}{i}"),
                event_id=f"Ev{USER_PREFIX}{i}",
            )
            await self._post(
                result, self.slack_url, data=body, headers=signed_headers(body, json_body=True)
            )
        elif path == "discord":
            user = DISCORD_USER + i
            self.discord_sent_at[str(user)] = time.time()
            await self.fake_discord.dispatch(
                "MESSAGE_REACTION_ADD", discord_reaction(discord_message(i), user_id=user)
            )
        else:
            body = {"paper_id": self.papers[i % len(self.papers)], "kind": "up", "active": True}
            await self._post(
                result,
                f"{self.web_url}/api/feedback",
                json=body,
                headers={
                    **self._web_headers,
                    "cookie": f"{self._web_cookie}; paperbot_user={USER_PREFIX}{i}",
                },
            )

    @property
    def slack_replies(self) -> int:
        """Slack `/papers today` replies posted to response_url."""
        return len(self.fake_slack.responses)

    async def papers_today(self, path: str) -> None:
        result = self.commands[path]
        result.sent += 1
        if path == "slack":
            body = slash_body("today", self.fake_slack.response_url(), user="UCMD")
            await self._post(result, self.slack_url, data=body, headers=signed_headers(body))
        elif await self._post(
            result,
            f"{self.web_url}/api/command",
            json={"text": "/papers today"},
            headers={**self._web_headers, "cookie": f"{self._web_cookie}; paperbot_user=commander"},
        ):
            result.answered += 1


async def on_schedule(
    count: int, interval: float, send: Callable[[int], Awaitable[None]]
) -> list[asyncio.Task[None]]:
    """Start send(i) at i * interval, without waiting for earlier ones to finish."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    for i in range(count):
        delay = started + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    return tasks


async def wait_for_web(http: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def run_load(
    url: str, minutes: float, rate: float, baseline_events: int = BASELINE_EVENTS
) -> LoadResult:
    """Seed `url` (an empty database), measure the baseline, run the load, count what was stored."""
    seeded = await asyncio.to_thread(seed, url)
    baseline_latencies, baseline_rate = await asyncio.to_thread(
        baseline, url, seeded.papers, baseline_events
    )
    fake_discord, fake_slack = FakeDiscord(), await FakeSlack(TEAM).start()
    await fake_discord.start()
    web_port = free_port()
    bot: BotProcess | None = None
    try:
        bot, ready = await BotProcess.start(
            bot_environment(url, fake_discord, fake_slack, web_port)
        )
        connector = aiohttp.TCPConnector(limit=200)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
        ) as http:
            web_url = f"http://127.0.0.1:{web_port}"
            await wait_for_web(http, web_url)
            senders = Senders(
                http,
                f"http://127.0.0.1:{ready['slack_port']}/slack/events",
                web_url,
                fake_discord,
                fake_slack,
                seeded.papers,
            )
            seconds = minutes * 60
            events = int(rate * minutes)
            commands = int(seconds / COMMAND_INTERVAL)

            async def tick_halfway() -> dict[str, Any]:
                await asyncio.sleep(seconds / 2)
                started = time.time()
                answer = await bot.ask("tick", now=seeded.tick_at.isoformat())
                return {**answer, "window": (started, time.time())}

            await bot.ask("measure")
            started = time.perf_counter()
            ticking = asyncio.create_task(tick_halfway())
            scheduled = await asyncio.gather(
                on_schedule(
                    events, seconds / max(events, 1), lambda i: senders.reaction(PATHS[i % 3], i)
                ),
                on_schedule(
                    commands,
                    COMMAND_INTERVAL,
                    lambda i: senders.papers_today(("slack", "web")[i % 2]),
                ),
            )
            await asyncio.gather(*(task for tasks in scheduled for task in tasks))
            tick = await ticking
            elapsed = time.perf_counter() - started
            loadavg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            stats = await drain(bot, senders)
            stored_at = await bot.ask("discord_times")
        slack_commands = senders.commands["slack"]
        slack_commands.answered = senders.slack_replies
    finally:
        if bot is not None:
            await bot.stop()
        await fake_discord.close()
        await fake_slack.stop()

    discord = senders.paths["discord"]
    handled = [(user, sent) for user, sent in senders.discord_sent_at.items() if user in stored_at]
    discord.latencies = [stored_at[user] - sent for user, sent in handled]
    discord.started_at = [sent for _, sent in handled]
    for path, count in (await asyncio.to_thread(stored_rows, url)).items():
        senders.paths[path].stored = count
    return LoadResult(
        database=url.split(":", 1)[0],
        seconds=elapsed,
        rate=rate,
        paths=senders.paths,
        commands=senders.commands,
        tick=tick,
        bot=stats,
        baseline=baseline_latencies,
        baseline_rate=baseline_rate,
        loadavg=loadavg,
    )


async def drain(bot: BotProcess, senders: Senders) -> dict[str, Any]:
    """Wait until the bot has handled every Discord event and replied to every Slack command."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        stats = await bot.ask("stats")
        handled = stats["discord_handled"] >= senders.paths["discord"].sent
        replied = senders.slack_replies >= senders.commands["slack"].sent
        if (handled and replied) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.5)


def stored_rows(url: str) -> dict[str, int]:
    """Rows the load added, per path (the baseline's tenant and other users excluded)."""
    engine = sa.create_engine(url)
    count = sa.select(sa.func.count()).select_from(Reaction)
    try:
        with engine.connect() as conn:
            return {
                "slack": conn.scalar(
                    count.where(
                        Reaction.platform == "slack", Reaction.user_id.startswith(f"U{USER_PREFIX}")
                    )
                ),
                "discord": conn.scalar(
                    count.where(Reaction.platform == "discord", Reaction.workspace == str(GUILD_ID))
                ),
                "web": conn.scalar(
                    count.where(
                        Reaction.platform == "local", Reaction.user_id.startswith(USER_PREFIX)
                    )
                ),
            }
    finally:
        engine.dispose()


# ---------------------------------------------------------------- report


def report(result: LoadResult, console: Console) -> None:
    core_p50 = percentile_ms(result.baseline, 50)
    table = Table(
        title=f"{result.database}: {result.rate:.0f} reactions/min for {result.seconds:.0f} s"
    )
    # The same p99 leaving out events sent while the fan-out tick ran: is the tail the tick's?
    apart = "p99 ms apart from tick"
    columns = ("path", "sent", "stored", "lost", "errors", "p50 ms", "p99 ms", apart, "p50 / core")
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, path in result.paths.items():
        p50 = percentile_ms(path.latencies, 50)
        table.add_row(
            f"{name} reactions",
            str(path.sent),
            str(path.stored),
            str(path.lost),
            ", ".join(f"{n}× {status}" for status, n in path.errors.items()) or "0",
            f"{p50:.1f}",
            f"{percentile_ms(path.latencies, 99):.1f}",
            f"{percentile_ms(path.outside(result.tick['window']), 99):.1f}",
            f"{p50 / core_p50:.1f}x",
        )
    for name, command in result.commands.items():
        table.add_row(
            f"{name} /papers today",
            str(command.sent),
            f"{command.answered} answered",
            str(command.sent - command.answered),
            "",
            f"{percentile_ms(command.latencies, 50):.1f}",
            f"{percentile_ms(command.latencies, 99):.1f}",
            "",
            "",
        )
    table.add_row(
        "baseline: core.handle_reaction",
        str(len(result.baseline)),
        f"{result.baseline_rate:.0f}/s",
        "",
        "",
        f"{core_p50:.1f}",
        f"{percentile_ms(result.baseline, 99):.1f}",
        "",
        "1.0x",
    )
    console.print(table)
    bot, memory, tick = result.bot, result.bot["memory_mb"], result.tick
    offered = result.rate / 60
    console.print(
        f"fan-out tick: {tick['posted']} of {tick['due']} due channels posted in {tick['seconds']:.1f} s"
        f" (failed {tick['failed']})\n"
        f"bot process: event-loop lag max {bot['lag_max_ms']:.0f} ms (p99 {bot['lag_p99_ms']:.0f} ms,"
        f" {len(bot['lag_spikes'])} wake-ups over 20 ms late),"
        f' "Can\'t keep up" warnings {bot["cant_keep_up"]}, RSS {memory["VmRSS"]:.0f} MB'
        f" (peak {memory['VmHWM']:.0f} MB), torch loaded: {bot['torch_loaded']}\n"
        f"offered {offered:.0f} reactions/s = {offered / result.baseline_rate:.2f} of the direct core's"
        f" {result.baseline_rate:.0f}/s\n"
        f"{stall_summary(bot)}\n"
        f"load average at the end (1, 5, 15 min): {result.loadavg}"
    )
    p99 = max(percentile_ms(p.latencies, 99) for p in result.paths.values())
    checks = {
        "zero lost": result.lost == 0,
        f"p99 {p99:.0f} ms <= {TARGETS['p99_ms']:.0f}": p99 <= TARGETS["p99_ms"],
        f"loop lag {bot['lag_max_ms']:.0f} ms < {TARGETS['lag_ms']:.0f}": bot["lag_max_ms"]
        < TARGETS["lag_ms"],
        f"RSS peak {memory['VmHWM']:.0f} MB < {TARGETS['rss_mb']:.0f}": memory["VmHWM"]
        < TARGETS["rss_mb"],
        "no model loaded": not bot["torch_loaded"],
    }
    console.print(
        "targets: "
        + ", ".join(f"{name} {'✓' if ok else '✗ MISSED'}" for name, ok in checks.items())
    )


def stall_summary(bot: dict[str, Any]) -> str:
    """What the bot's loop watchdog (bench/loop_watchdog.py) found during the load."""
    stalls = bot["stalls"]
    causes = Counter(stall["cause"] for stall in stalls)
    worst = max(stalls, key=lambda stall: stall["late_ms"], default=None)
    full = [ms for _, ms, _ in bot["full_collections"]]
    return (
        f"loop stalls over {STALL_MS} ms: {len(stalls)}"
        + (
            f" ({', '.join(f'{n}× {cause}' for cause, n in causes.most_common())})"
            if stalls
            else ""
        )
        + (f"; worst {worst['late_ms']:.0f} ms: {worst['cause']}" if worst else "")
        + f"; full garbage collections: {len(full)}"
        + (f" (longest {max(full):.0f} ms)" if full else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="reactions a minute, all paths")
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server (default: SQLite)"
    )
    parser.add_argument(
        "--stalls",
        type=Path,
        default=None,
        help=f"write what the loop watchdog saw (stalls over {STALL_MS} ms: stacks, CPU, gc) here",
    )
    args = parser.parse_args()
    with fresh_database(args.database_url, "load") as url:
        result = asyncio.run(run_load(url, args.minutes, args.rate))
    if args.stalls is not None:
        stalls = {
            "tick_window": result.tick["window"],
            "startup_stalls": result.bot["startup_stalls"],
            "full_collections": result.bot["full_collections"],
            "stalls": result.bot["stalls"],
        }
        args.stalls.write_text(json.dumps(stalls, indent=1))
    report(result, Console(width=120))
    if result.lost:
        sys.exit(f"{result.lost} reactions lost")


if __name__ == "__main__":
    main()
