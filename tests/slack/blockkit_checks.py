"""Checks that rendered Block Kit pings nobody and stays inside Slack's limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from adapters.slack.blocks import MAX_BLOCKS, TEXT_LIMIT

# Anything Slack would act on in mrkdwn: <!channel>, <!here>, <@U1>, <#C1>, <!subteam^S1>, <url|text>.
_ANGLE = re.compile(r"<([^<>]*)>")


def texts(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every text object in the blocks."""
    for block in blocks:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                yield block[key]
        for element in block.get("elements", []):
            if element.get("type") in ("mrkdwn", "plain_text"):
                yield element
            elif isinstance(element.get("text"), dict):
                yield element["text"]


def assert_safe(message: dict[str, Any], allowed_links: set[str]) -> None:
    """No mention or foreign link anywhere; every limit held."""
    blocks = message.get("blocks", [])
    assert len(blocks) <= MAX_BLOCKS
    candidates = [message.get("text", "")] + [t["text"] for t in texts(blocks)]
    for text_object in texts(blocks):
        # Slack auto-parses "certain mentions" in a mrkdwn text that is not verbatim.
        assert text_object["type"] == "plain_text" or text_object.get("verbatim") is True
    for text in candidates:
        assert len(text) <= TEXT_LIMIT
        for inner in _ANGLE.findall(text):
            url = inner.split("|", 1)[0]
            assert url in allowed_links, f"Slack would act on <{inner}> in {text[:200]!r}"
        # What is left outside our own links has no raw brackets at all.
        assert "<" not in _ANGLE.sub("", text) and ">" not in _ANGLE.sub("", text)
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
        accessory = block.get("accessory")
        if accessory:
            assert len(accessory["alt_text"]) <= 2000 and len(accessory["image_url"]) <= 3000
