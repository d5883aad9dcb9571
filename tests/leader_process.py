"""A scheduler leader in a process of its own, for the failover test to stop and wake.

`python -m tests.leader_process DATABASE_URL LOCK_TIMEOUT` runs the jobs of `paperbot
run` on the `local` platform (`DailyScheduler`, its heartbeat included) with a lock
timeout of LOCK_TIMEOUT seconds: it ingests once (a no-op command), which takes the
scheduler leader's lock, then ticks four times per timeout, logging each tick's
`leader`, until it is killed. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.embedding import HashingEmbedder
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot
from bot.scheduler import DailyScheduler
from bot.settings import Settings

log = logging.getLogger("leader_process")


async def lead(url: str, lock_timeout: float) -> None:
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings())
    daily = DailyScheduler(
        core,
        {"local": LocalPostingPort(core.db)},
        ingest_command=[sys.executable, "-c", "pass"],
        lock_timeout=lock_timeout,
    )
    daily.start()
    await daily.ingest()
    while True:
        report = await daily.tick()
        log.info("tick: leader=%s", report.leader)
        await asyncio.sleep(lock_timeout / 4)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    asyncio.run(lead(sys.argv[1], float(sys.argv[2])))
