"""A chat platform that answers 429 to a share of sends, for the scheduler's fan-out tests.

It implements the `PostingPort` contract directly (the adapters' own tests
cover how real HTTP 429s become `RateLimited`): it keeps the channel's
messages, deduplicates by idempotency key like Discord's nonce, raises
`RateLimited(retry_after)` on a seeded share of message sends (also half-way
through a multi-message post), and can answer ChannelNotFound /
MissingPermission for chosen channels.

Time is virtual and per worker task: the scheduler is given `clock.sleep`,
which advances the calling task's clock by exactly the time asked. A retry of a
channel runs in the task that was rate-limited, so the port can check on that
task's clock that it never came back before `retry_after`.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from contextvars import ContextVar

from bot.domain import ChannelRef, Pick
from bot.posting import ChannelNotFound, MissingPermission, RateLimited, message_key


class VirtualClock:
    def __init__(self) -> None:
        self._now: ContextVar[float] = ContextVar("virtual_now", default=0.0)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now.get()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now.set(self._now.get() + seconds)
        await asyncio.sleep(0)  # still yield, as a real sleep would


class FlakyPlatformPort:
    def __init__(
        self,
        platform: str,
        clock: VirtualClock,
        *,
        rate_limited_share: float = 0.3,
        retry_after: float = 1.5,
        seed: int = 7,
    ) -> None:
        self.platform = platform
        self.clock = clock
        self.rate_limited_share = rate_limited_share
        self.retry_after = retry_after
        self.random = random.Random(seed)
        self.messages: dict[ChannelRef, list[tuple[str, str]]] = defaultdict(list)  # (key, text)
        self.by_key: dict[str, str] = {}
        self.missing: set[ChannelRef] = set()
        self.forbidden: set[ChannelRef] = set()
        self.blocked_until: dict[ChannelRef, float] = {}
        self.early_retries: list[tuple[ChannelRef, float, float]] = []  # (channel, at, allowed)
        self.rate_limited = 0
        self.attempts = 0

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        return [
            await self._send(channel, message_key(key, i), pick.title)
            for i, pick in enumerate(picks)
        ]

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        return await self._send(channel, key, text)

    async def _send(self, channel: ChannelRef, key: str, text: str) -> str:
        await asyncio.sleep(0)
        self.attempts += 1
        if channel in self.missing:
            raise ChannelNotFound(f"unknown channel {channel.channel}")
        if channel in self.forbidden:
            raise MissingPermission(f"cannot post in {channel.channel}")
        now = self.clock.now()
        allowed = self.blocked_until.get(channel, 0.0)
        if now < allowed:
            self.early_retries.append((channel, now, allowed))
        if self.random.random() < self.rate_limited_share:
            self.rate_limited += 1
            self.blocked_until[channel] = now + self.retry_after
            raise RateLimited(self.retry_after)
        if key in self.by_key:  # the nonce: a repeated key returns the first message
            return self.by_key[key]
        message_id = f"m{len(self.by_key) + 1}"
        self.by_key[key] = message_id
        self.messages[channel].append((key, text))
        return message_id
