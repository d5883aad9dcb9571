"""The Slack posting port: one chat.postMessage per pick, paced, idempotent on resume.

Every posted message carries Slack message metadata (event type
`paperbot_pick`) with its idempotency key, so after a crash or a connection
reset `send_picks(..., resume=True)` finds in `conversations.history` what was
already sent and posts only the rest. A 429 is retried after `Retry-After`
(slack-sdk's `AsyncRateLimitErrorRetryHandler`); connection errors are not
retried blindly, because the post may have gone through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import notice_text, pick_message, without_thumbnails
from bot.domain import ChannelRef, Pick
from bot.posting import (
    ChannelNotFound,
    MissingPermission,
    PostingError,
    RateLimited,
    RecordPosts,
    message_key,
    record_at_once,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

PLATFORM = "slack"
METADATA_EVENT = "paperbot_pick"
MIN_INTERVAL = 1.0  # Slack allows about one message per second per channel
RATE_LIMIT_RETRIES = 3
HISTORY_PAGES = 5  # how far back (x200 messages) a resume looks for earlier sends

_NOT_FOUND = {"channel_not_found", "is_archived", "team_not_found"}
_NO_PERMISSION = {
    "not_in_channel",
    "missing_scope",
    "restricted_action",
    "ekm_access_denied",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
}

# Returns the bot token for a workspace (team id), or None when it is not installed there.
TokenLookup = Callable[[str], Awaitable[str | None]]


def posting_client(base_url: str, token: str | None = None) -> AsyncWebClient:
    """A Web API client that retries 429s only: a retried post after a reset could duplicate."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
    )


class ChannelPacer:
    """At most one message per `interval` seconds in each channel."""

    def __init__(self, interval: float = MIN_INTERVAL) -> None:
        self.interval = interval
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._last: dict[tuple[str, str], float] = {}

    async def run(self, channel: tuple[str, str], send: Callable[[], Awaitable[str]]) -> str:
        """Call `send` once the (workspace, channel) is free and its last post is old enough."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wait = self._last.get(channel, -self.interval) + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await send()
            finally:
                self._last[channel] = time.monotonic()


class SlackPostingPort:
    platform = PLATFORM

    def __init__(
        self,
        client: AsyncWebClient,
        token_for: TokenLookup,
        record: RecordPosts,
        *,
        pacer: ChannelPacer | None = None,
    ) -> None:
        self.client = client
        self.token_for = token_for
        self._record = record
        self._pacer = pacer or ChannelPacer()

    async def send_picks(
        self, channel: ChannelRef, picks: Sequence[Pick], key: str, *, resume: bool = False
    ) -> list[str]:
        token = await self._token(channel)
        keys = [message_key(key, i) for i in range(len(picks))]
        sent = await self._already_sent(token, channel.channel, set(keys)) if resume else {}
        ids = []
        for pick, pick_key in zip(picks, keys, strict=True):
            if pick_key in sent:
                log.info(
                    "slack: %s already posted as %s, not posting again", pick_key, sent[pick_key]
                )
                ids.append(sent[pick_key])
                continue
            message = pick_message(pick)
            try:
                message_id = await self._post(token, channel, pick_key, message)
            except ImageRefused as exc:
                bare = without_thumbnails(message)
                if bare is None:
                    raise
                log.warning("slack: %s; posting %s without its thumbnail", exc, pick.paper_id)
                message_id = await self._post(token, channel, pick_key, bare)
            await record_at_once(self._record, channel, message_id, pick.paper_id)
            ids.append(message_id)
        return ids

    async def send_notice(self, channel: ChannelRef, text: str, key: str) -> str:
        # A notice has no resume flag, so it always checks: one history call a day at most.
        token = await self._token(channel)
        sent = await self._already_sent(token, channel.channel, {key})
        if key in sent:
            return sent[key]
        return await self._post(token, channel, key, {"text": notice_text(text)})

    async def _token(self, channel: ChannelRef) -> str:
        token = await self.token_for(channel.workspace)
        if token is None:
            raise MissingPermission(
                f"paperbot is not installed in Slack workspace {channel.workspace}"
            )
        return token

    async def _post(
        self, token: str, channel: ChannelRef, key: str, message: dict[str, Any]
    ) -> str:
        async def send() -> str:
            response = await self.client.chat_postMessage(
                token=token,
                channel=channel.channel,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
                unfurl_links=False,
                unfurl_media=False,
                **message,
            )
            return str(response["ts"])

        # If the connection breaks, the post may still have reached Slack: the
        # error makes the scheduler retry with resume=True, which looks it up.
        return await translated(
            self._pacer.run((channel.workspace, channel.channel), send), f"posting {key}"
        )

    async def _already_sent(self, token: str, channel: str, keys: set[str]) -> dict[str, str]:
        """Idempotency key -> ts of this bot's earlier messages in the channel."""
        found: dict[str, str] = {}
        cursor = None
        for _ in range(HISTORY_PAGES):
            history = self.client.conversations_history(
                token=token, channel=channel, limit=200, include_all_metadata=True, cursor=cursor
            )
            try:
                page = await translated(history, f"reading the history of {channel}")
            except MissingPermission as exc:
                if "missing_scope" not in str(exc):
                    raise
                # An install from before channels:history was requested: post anyway,
                # without the duplicate check, rather than not at all.
                log.warning("slack: cannot read history of %s; not checking for resends", channel)
                return found
            messages: list[dict[str, Any]] = page.get("messages", [])
            for message in messages:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and payload.get("key") in keys:
                    found.setdefault(payload["key"], str(message["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor or len(found) == len(keys):
                break
        return found


async def translated(call: Awaitable[T], what: str) -> T:
    """Await a Web API call, turning its failures into the posting port's errors."""
    try:
        return await call
    except SlackApiError as exc:
        raise posting_error(exc) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise PostingError(f"slack unreachable while {what}: {exc!r}") from None


class ImageRefused(PostingError):
    """Slack could not download an image the message shows; nothing was posted."""


def posting_error(exc: SlackApiError) -> PostingError:
    """The posting port's error for a failed Web API call."""
    error = str(exc.response.get("error", ""))
    details = [str(e) for e in exc.response.get("errors") or []]
    if error == "invalid_blocks" and any("downloading image failed" in d for d in details):
        return ImageRefused(f"slack: {error}: {'; '.join(details)}")
    if exc.response.status_code == 429:
        headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
        return RateLimited(_seconds(headers.get("retry-after")))
    if error in _NOT_FOUND:
        return ChannelNotFound(f"slack: {error}")
    if error in _NO_PERMISSION:
        return MissingPermission(f"slack: {error}")
    return PostingError(f"slack: {error or exc.response.status_code}")


def _seconds(raw: object) -> float:
    try:
        return max(float(str(raw)), 1.0)
    except ValueError:
        return 1.0
