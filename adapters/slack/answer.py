"""Answering the person who clicked or typed, through the request's response_url."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.webhook import WebhookResponse

from adapters.slack.blocks import without_thumbnails

log = logging.getLogger(__name__)


async def answer(respond: AsyncRespond, **message: Any) -> None:
    """respond(), but a missing or expired response_url (30 minutes) is logged, not raised:
    the work is done, and there is no other way to reach the person."""
    if not respond.response_url:  # e.g. a button in a surface without one
        log.warning("slack: no response_url to answer through")
        return
    response = await _send(respond, message)
    if response is None or response.status_code == 200:
        return
    log.warning("slack: response_url answered %s %.200s", response.status_code, response.body)
    # A response_url refuses a message whose image Slack cannot download, as
    # chat.postMessage does; how it words that is not documented, so any refusal
    # of an answer that shows thumbnails is tried once more without them.
    bare = without_thumbnails(message)
    if bare is None:
        return
    response = await _send(respond, bare)
    if response is not None and response.status_code != 200:
        log.warning("slack: response_url answered %s without thumbnails too", response.status_code)


async def _send(respond: AsyncRespond, message: dict[str, Any]) -> WebhookResponse | None:
    try:
        return await respond(**message)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack: could not answer through response_url: %r", exc)
        return None
