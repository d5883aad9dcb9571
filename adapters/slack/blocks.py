"""Block Kit rendering of core replies and picks.

Paper text is untrusted: every piece of it goes through `mrkdwn`, which
escapes `&`, `<` and `>` (so `<!channel>` or `<@U1>` in a title is shown, not
acted on), drops characters that reorder or hide text (with the core's
`clean_text`), and cuts to Block Kit's limits without splitting an escape
sequence. Plain `@here` text pings nobody either: messages are sent without
`link_names`, and every mrkdwn text object is `verbatim`, so Slack does not
auto-parse "certain mentions" in it (its default); our own `<url|title>` links
are still read.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from bot.commands import UNSAVE_LABEL, Reply
from bot.domain import Pick
from bot.normalise import clean_text

TEXT_LIMIT = 3000  # characters in one text object
MAX_BLOCKS = 50  # blocks in one message
ALT_TEXT_LIMIT = 2000
URL_LIMIT = 1000  # keeps a linked title plus a summary inside one 3000-character text
TITLE_CHARS = 250  # a title is a headline; the rest goes to the summary
AUTHORS_SHOWN = 6

ACTION_UP = "paperbot_up"
ACTION_DOWN = "paperbot_down"
ACTION_SAVE = "paperbot_save"
ACTION_UNSAVE = "paperbot_unsave"
ACTION_FORGET_CONFIRM = "paperbot_forget_confirm"
ACTION_FORGET_CANCEL = "paperbot_forget_cancel"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def clean(text: str, *, one_line: bool = False) -> str:
    """Untrusted text without control, bidi and zero-width characters (line by line)."""
    if one_line:
        return clean_text(text)
    return "\n".join(clean_text(line) for line in text.splitlines()).strip()


def mrkdwn(text: str, limit: int = TEXT_LIMIT, *, one_line: bool = False) -> str:
    """Escape untrusted text for mrkdwn and cut it to `limit` characters after escaping."""
    out: list[str] = []
    used = 0
    for ch in clean(text, one_line=one_line):
        piece = _ESCAPES.get(ch, ch)
        if used + len(piece) > limit - 1:  # keep room for the ellipsis
            out.append("…")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def safe_url(url: str | None) -> str | None:
    """An http(s) URL usable inside `<url|text>`, or None."""
    if not url or len(url) > URL_LIMIT or not url.startswith(("https://", "http://")):
        return None
    if any(ch.isspace() or ch in "<>|" or unicodedata.category(ch) == "Cc" for ch in url):
        return None
    return url.replace("&", "&amp;")


def pick_blocks(pick: Pick, index: int | None = None) -> list[dict[str, Any]]:
    """One pick: linked title, authors and summary; why it was picked; 👍 👎 🔖 buttons."""
    title = mrkdwn(pick.title, TITLE_CHARS, one_line=True) or "(untitled)"
    url = safe_url(pick.url)
    heading = f"*<{url}|{title}>*" if url else f"*{title}*"
    lines = [heading]
    if pick.authors:
        names = ", ".join(clean(a, one_line=True) for a in pick.authors[:AUTHORS_SHOWN])
        more = (
            f" and {len(pick.authors) - AUTHORS_SHOWN} more"
            if len(pick.authors) > AUTHORS_SHOWN
            else ""
        )
        lines.append("_" + mrkdwn(names + more, 500, one_line=True) + "_")
    head = "\n".join(lines)
    summary = mrkdwn(pick.summary, TEXT_LIMIT - len(head) - 1) if pick.summary else ""
    section: dict[str, Any] = {
        "type": "section",
        "text": _text(f"{head}\n{summary}" if summary else head),
    }
    thumbnail = safe_url(pick.thumbnail)
    if thumbnail:
        section["accessory"] = {
            "type": "image",
            "image_url": pick.thumbnail,
            "alt_text": clean(pick.title, one_line=True)[:ALT_TEXT_LIMIT] or "paper thumbnail",
        }
    suffix = f"-{index}" if index is not None else ""
    return [
        section,
        {
            "type": "context",
            "elements": [_text(mrkdwn(pick.reason, 500) or "picked for you")],
        },
        {
            "type": "actions",
            "block_id": f"feedback{suffix}",
            "elements": [
                _button("👍", ACTION_UP, pick.paper_id),
                _button("👎", ACTION_DOWN, pick.paper_id),
                _button("🔖", ACTION_SAVE, pick.paper_id),
            ],
        },
    ]


def _text(escaped: str) -> dict[str, Any]:
    """A mrkdwn text object for text already escaped by `mrkdwn`."""
    return {"type": "mrkdwn", "text": escaped, "verbatim": True}


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        button["style"] = style
    return button


def without_thumbnails(message: dict[str, Any]) -> dict[str, Any] | None:
    """The message with its picks' thumbnails left out, or None if it shows none.

    Slack downloads every image while accepting a message and refuses the whole
    message when one fails: a dead thumbnail must not cost the picks beside it."""
    blocks = message.get("blocks") or []
    shown = [(b.get("accessory") or {}).get("type") == "image" for b in blocks]
    if not any(shown):
        return None
    bare = [
        {k: v for k, v in b.items() if k != "accessory"} if image else b
        for b, image in zip(blocks, shown, strict=True)
    ]
    return {**message, "blocks": bare}


def pick_message(pick: Pick) -> dict[str, Any]:
    """chat.postMessage arguments for one posted pick (the notification text is the title)."""
    return {"text": mrkdwn(pick.title, TITLE_CHARS, one_line=True), "blocks": pick_blocks(pick)}


def reply_message(reply: Reply) -> dict[str, Any]:
    """respond() arguments for a command reply: its text, then its picks, within 50 blocks."""
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "section", "text": _text(mrkdwn(reply.text))})
    blocks.extend(_picks_within_limit(reply.picks, MAX_BLOCKS - len(blocks) - 1))
    if reply.offer_unsave:
        blocks.append(
            {
                "type": "actions",
                "block_id": "unsave",
                "elements": [_button(UNSAVE_LABEL, ACTION_UNSAVE, reply.offer_unsave, "danger")],
            }
        )
    if reply.confirm_forget:
        blocks.append(
            {
                "type": "actions",
                "block_id": "forget",
                "elements": [
                    _button("Yes, forget me", ACTION_FORGET_CONFIRM, "forget", "danger"),
                    _button("Cancel", ACTION_FORGET_CANCEL, "cancel"),
                ],
            }
        )
    return {
        "text": mrkdwn(reply.text or "paperbot", TEXT_LIMIT),
        "blocks": blocks,
        "response_type": "ephemeral" if reply.ephemeral else "in_channel",
        "replace_original": False,  # a new answer; the message it answers stays
    }


def _picks_within_limit(picks: Sequence[Pick], room: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for i, pick in enumerate(picks):
        rendered = [{"type": "divider"}, *pick_blocks(pick, i)]
        if len(blocks) + len(rendered) > room:
            break
        blocks.extend(rendered)
    return blocks


def notice_text(text: str) -> str:
    return mrkdwn(text)
