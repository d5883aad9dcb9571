"""Answering the person who clicked or typed, through the request's response_url."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond

log = logging.getLogger(__name__)


async def answer(respond: AsyncRespond, **message: Any) -> None:
    """respond(), but a missing or expired response_url (30 minutes) is logged, not raised:
    the work is done, and there is no other way to reach the person."""
    if not respond.response_url:  # e.g. a button in a surface without one
        log.warning("slack: no response_url to answer through")
        return
    try:
        response = await respond(**message)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack: could not answer through response_url: %r", exc)
        return
    if response.status_code != 200:
        log.warning("slack: response_url answered %s", response.status_code)
