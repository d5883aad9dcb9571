"""Bench only: paperbot's chat-serving process for bench/load.py, instrumented.

    python -m bench.load_bot        # started by bench/load.py, never by hand

Configured through the environment exactly like `paperbot run` (Settings),
plus BENCH_DISCORD_REST and BENCH_DISCORD_GATEWAY, which point discord.py at
the fake Discord the load generator runs. It opens the core on the (already
migrated) database, starts every enabled adapter through `bot.runner`, and in
place of the daily scheduler's timer runs a fan-out tick when asked, so the
tick happens in the middle of the load.

It runs in its own process so that the event-loop lag and the RSS it reports
are the bot's, not the load generator's. It measures:
- event-loop lag: a task sleeps 50 ms over and over and records the overshoot;
- why the loop was late, whenever it was over 50 ms late: bench/loop_watchdog.py
  (the loop's stack, its CPU and run-queue time, garbage collections);
- RSS: VmRSS and VmHWM (the peak) from /proc/self/status;
- when each Discord reaction was stored (wall clock, comparable with the
  generator's send time: both processes read the same system clock);
- whether torch was ever imported (the chat process must not load the model).

Protocol, one JSON object per line: it prints {"ready": ...} with the bound
ports once serving, then answers each line on stdin: {"op": "measure"} (start measuring now),
{"op": "tick", "now": ISO}, {"op": "stats"}, {"op": "discord_times"}, {"op": "stop"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import discord
import yarl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency import percentile_ms
from bench.loop_watchdog import LoopWatchdog
from bot import runner, scheduler
from bot.paperbot import PaperBot
from bot.settings import load_settings

LAG_INTERVAL = 0.05
STARTUP_SECONDS = 60.0
SPIKE = 0.02
# discord.py's warning when its gateway heartbeat is starved by a blocked loop.
CANT_KEEP_UP = "Can't keep up"


class LoopLag:
    """How late the event loop wakes a task that asked to sleep LAG_INTERVAL."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.spikes: list[tuple[float, float]] = []  # (wall clock, lag) above SPIKE

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            lag = max(0.0, loop.time() - started - LAG_INTERVAL)
            self.samples.append(lag)
            if lag > SPIKE:
                self.spikes.append((time.time(), lag))


class WarningCounter(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__(logging.WARNING)
        self.needle = needle
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.count += 1


def memory_mb() -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of this process, in MB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # kB
    return found


def time_discord_reactions(adapter: Any, stored_at: dict[str, float]) -> None:
    """Note when each reaction's handling finished, keyed by the reacting user's id.

    Wraps the adapter's own handler instance (bench-only instrumentation): the
    handler returns after the row is committed, so this is gateway -> stored.
    """
    handler = adapter.client.reactions
    handle = handler.handle

    async def timed(payload: discord.RawReactionActionEvent, bot_user_id: int | None) -> Any:
        result = await handle(payload, bot_user_id)
        stored_at[str(payload.user_id)] = time.time()
        return result

    handler.handle = timed


async def answer(line: str, core: PaperBot, ports: dict[str, Any], state: dict[str, Any]) -> Any:
    request = json.loads(line)
    if request["op"] == "tick":
        started = time.perf_counter()
        report = await scheduler.tick(core, ports, datetime.fromisoformat(request["now"]))
        return {
            "seconds": time.perf_counter() - started,
            "leader": report.leader,
            "due": report.due,
            "posted": report.posted,
            "failed": report.failed,
        }
    if request["op"] == "measure":  # the load starts: forget start-up's lag and warnings
        state["lag"].samples.clear()
        state["lag"].spikes.clear()
        state["warnings"].count = 0
        state["startup_stalls"] = state["watchdog"].report()
        state["watchdog"].clear()
        return {}
    if request["op"] == "stats":
        lag: list[float] = state["lag"].samples
        return {
            "lag_max_ms": 1000 * max(lag, default=0.0),
            "lag_p99_ms": percentile_ms(lag, 99),
            "cant_keep_up": state["warnings"].count,
            "memory_mb": memory_mb(),
            "torch_loaded": "torch" in sys.modules,
            "lag_spikes": state["lag"].spikes,
            "discord_handled": len(state["discord_stored_at"]),
            "stalls": state["watchdog"].report(),
            "full_collections": state["watchdog"].full_collections,
            "startup_stalls": state["startup_stalls"],
        }
    if request["op"] == "discord_times":  # once, at the end: thousands of entries
        return state["discord_stored_at"]
    raise ValueError(f"unknown op {request['op']!r}")


async def serve() -> None:
    discord.http.Route.BASE = os.environ["BENCH_DISCORD_REST"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["BENCH_DISCORD_GATEWAY"])
    warnings = WarningCounter(CANT_KEEP_UP)
    logging.getLogger().addHandler(warnings)
    settings = load_settings()
    core = PaperBot.open(settings=settings)  # the database is migrated by the generator
    adapters = [
        runner.load_adapter(name, core, settings) for name in runner.enabled_adapters(settings)
    ]
    runner.prepare_to_serve(core)
    by_name = {adapter.name: adapter for adapter in adapters}
    watchdog = LoopWatchdog()
    watchdog.start()
    state: dict[str, Any] = {
        "lag": LoopLag(),
        "warnings": warnings,
        "discord_stored_at": {},
        "watchdog": watchdog,
        "startup_stalls": [],
    }
    time_discord_reactions(by_name["discord"], state["discord_stored_at"])
    ports = runner.posting_ports(core, adapters)

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    background = [
        asyncio.create_task(state["lag"].run()),
        asyncio.create_task(run_adapters(adapters)),
    ]
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            await by_name["slack"].ready.wait()
            await by_name["discord"].client.wait_until_ready()
        # The web adapter's port is fixed by the generator, which waits for it to answer.
        say({"ready": {"slack_port": by_name["slack"].bound_port}})
        while line := (await stdin.readline()).decode():
            if json.loads(line)["op"] == "stop":
                break
            say(await answer(line, core, ports, state))
    finally:
        watchdog.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        core.close()


async def run_adapters(adapters: list[Any]) -> None:
    async with asyncio.TaskGroup() as group:  # as bot.runner.serve, minus the scheduler's timer
        for adapter in adapters:
            group.create_task(adapter.run(), name=f"adapter-{adapter.name}")


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # Show errors only: the web adapter's first start warns once per missed subscription.
    # WarningCounter sits on the root logger, so it still sees every warning.
    logging.getLogger().handlers[0].setLevel(logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
