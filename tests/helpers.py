"""Small builders that keep tests short."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.domain import ChannelRef, PaperIn, UserRef

DAY = date(2025, 10, 6)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for running `python -m bot …` from this checkout, whatever the cwd."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), HF_HUB_OFFLINE="1", **extra)
    return env


PAPERBOT = [sys.executable, "-m", "bot"]


def run_python(script: str) -> str:
    """Run `script` in a fresh interpreter from this checkout (what it imports starts
    empty); its standard output. A failure shows the script's standard error."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def paper(
    pid: str = "2510.00001",
    title: str = "A paper",
    abstract: str = "An abstract about something.",
    *,
    day: date = DAY,
    upvotes: int = 0,
    source: str = "hf",
    **extra: object,
) -> PaperIn:
    return PaperIn(
        id=pid,
        title=title,
        abstract=abstract,
        authors=("Ada Lovelace", "Alan Turing"),
        published=datetime(2025, 10, 1, tzinfo=UTC),
        listed_on=day,
        source=source,
        upvotes=upvotes,
        **extra,  # type: ignore[arg-type]
    )


def user(name: str = "alice", workspace: str = "T1", platform: str = "slack") -> UserRef:
    return UserRef(platform, workspace, name)


def channel(name: str = "C1", workspace: str = "T1", platform: str = "slack") -> ChannelRef:
    return ChannelRef(platform, workspace, name)


TOPICS = {
    "diffusion": "Diffusion models for image generation with denoising score matching",
    "speech": "Speech recognition and text to speech synthesis with neural vocoders",
    "rl": "Reinforcement learning agents with policy gradients and reward models",
    "retrieval": "Dense retrieval with contrastive learning and hard negatives for search",
    "graphs": "Graph neural networks for node classification and link prediction",
}


def topical_papers(per_topic: int = 6, day: date = DAY) -> list[PaperIn]:
    """Papers in clearly separated topics, for behaviour tests with a lexical embedder."""
    out = []
    for t, (topic, text) in enumerate(TOPICS.items()):
        for i in range(per_topic):
            out.append(
                paper(
                    f"25{t:02d}.{i:05d}",
                    f"{topic} study {i}: {text}",
                    f"We study {text}. Variant {i} of our {topic} method.",
                    day=day,
                    upvotes=i,
                )
            )
    return out


def unused_port() -> int:
    """A loopback port nothing listens on now (just bound and released): one to
    listen on, or one where a connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], what: str, *, within: float = 10.0) -> Any:
    """Poll `check()` (e.g. a database read, which has no event to await) until it is truthy."""
    try:
        async with asyncio.timeout(within):
            while True:
                if result := check():
                    return result
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None
