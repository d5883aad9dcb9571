"""Render picks as Discord embeds: untrusted paper text in, safe and size-limited embeds out.

Paper titles and abstracts come from public feeds, so they are treated as
hostile: control, zero-width and bidirectional-override characters are removed,
markdown is escaped and every `@` is defused. Discord's size limits are enforced
here, so a 10,000-character title is cut cleanly instead of failing the send.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import discord

from bot.domain import GITHUB_HOSTS, Pick

# https://discord.com/developers/docs/resources/message#embed-object-embed-limits
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
AUTHOR_LIMIT = 256
FOOTER_LIMIT = 2048
FIELD_VALUE_LIMIT = 1024
EMBEDS_PER_MESSAGE = 10
MESSAGE_EMBED_CHARS = 6000
CONTENT_LIMIT = 2000

# A card stays readable well below Discord's maxima; these are our own budgets.
SUMMARY_BUDGET = 1200
FOOTER_BUDGET = 300
AUTHORS_SHOWN = 3
EMBED_COLOUR = discord.Colour(0xFF9D00)

ELLIPSIS = "…"
ZERO_WIDTH_SPACE = "\u200b"
# Zero-width and bidi control characters: they can hide text or reorder what a reader sees.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u00ad]")


def clean(text: str) -> str:
    """Strip what should never reach a reader: lone surrogates, control and invisible characters."""
    # Lone surrogates (from broken UTF-8 decoded with surrogateescape) cannot be encoded for JSON.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _INVISIBLE.sub("", text)
    return "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )


def defuse_mentions(text: str) -> str:
    """Make `@everyone`, `@here`, `<@123>`, `<@&123>` inert even where mentions would render."""
    return text.replace("@", "@" + ZERO_WIDTH_SPACE)


# A URL as Discord autolinks it. Left as it is, so links in abstracts still work: an
# escape inside one would become part of the link.
_URL = r"(?P<url>https?://[^\s<]+[^<.,:;\"')\]\s])"
# Markdown, each character escaped on its own: emphasis, code, spoilers, brackets
# (masked links) and backslashes (which could undo an escape); quotes, headings,
# subtext and lists where they start a line. Not `discord.utils.escape_markdown`:
# it matches "[...](...)" greedily and escapes only the first bracket, so a second
# masked link on the same line stayed live.
_MARKDOWN = re.compile(
    _URL + r"|(?P<char>[\\*_~`|\[\]])|^(?P<indent>[ \t]*)(?P<lead>[>#-])", re.MULTILINE
)
# The core's reply text carries its own light markup (*bold*, `code`), as on Slack,
# so there only what could link is escaped, outside code spans: no link renders in
# one, and an escape would show.
_LINKS = re.compile(_URL + r"|(?P<code>`[^`\n]*`)|(?P<char>[\\\[\]])")


def _escaped(match: re.Match[str]) -> str:
    if match["url"] or match.lastgroup == "code":
        return match[0]
    if match["char"]:
        return "\\" + match["char"]
    return match["indent"] + "\\" + match["lead"]


def safe_markdown(text: str) -> str:
    """Untrusted text for places Discord renders markdown (titles, descriptions)."""
    return defuse_mentions(_MARKDOWN.sub(_escaped, clean(text)))


def safe_reply(text: str) -> str:
    """A core reply for message content: its markup kept, links and mentions defused.

    The text quotes untrusted words (a liked paper's title in the profile, the
    user's own search), which must not become a masked link in the bot's voice.
    """
    return defuse_mentions(_LINKS.sub(_escaped, clean(text)))


def safe_plain(text: str) -> str:
    """Untrusted text for places Discord shows verbatim (author name, footer)."""
    return defuse_mentions(" ".join(clean(text).split()))


def clip(text: str, limit: int) -> str:
    """Cut to at most `limit` characters at a word boundary, ending with an ellipsis.

    Never leaves a dangling escape backslash, which would swallow the ellipsis.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space >= len(cut) * 0.8:
        cut = cut[:space]
    cut = cut.rstrip()
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut + ELLIPSIS


def safe_url(url: str | None, *, hosts: tuple[str, ...] = ()) -> str | None:
    """An http(s) URL Discord will accept, or None. Optionally only on the given hosts."""
    # A backslash: Python reads the host of "https://evil.example\\@github.com" as
    # github.com, browsers as evil.example.
    if not url or len(url) > 2000 or "\\" in url or any(ch.isspace() for ch in url):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if hosts and parts.hostname not in hosts:
        return None
    return url


def short_authors(authors: Sequence[str]) -> str:
    names = [safe_plain(a) for a in authors if a and a.strip()]
    shown = ", ".join(names[:AUTHORS_SHOWN])
    if len(names) > AUTHORS_SHOWN:
        shown += " et al."
    return clip(shown, AUTHOR_LIMIT)


def pick_embed(pick: Pick, *, position: int | None = None) -> discord.Embed:
    """One pick as an embed; `position` numbers it when several share a message."""
    prefix = f"{position}. " if position is not None else ""
    embed = discord.Embed(
        title=clip(prefix + safe_markdown(pick.title), TITLE_LIMIT),
        url=safe_url(pick.url),
        colour=EMBED_COLOUR,
    )
    authors = short_authors(pick.authors)
    if authors:
        embed.set_author(name=authors)
    summary = safe_markdown(pick.summary)
    if summary:
        embed.description = clip(summary, min(SUMMARY_BUDGET, DESCRIPTION_LIMIT))
    if pick.upvotes:
        embed.add_field(name="Upvotes", value=f"▲ {pick.upvotes}", inline=True)
    github = safe_url(pick.github, hosts=GITHUB_HOSTS)
    # The URL goes inside <…> link markdown, so it must not close it early.
    code = f"[GitHub](<{github.replace('>', '%3E')}>)" if github else ""
    # Past Discord's field limit the whole message is refused. A link cut short
    # leads nowhere, and one this long names no repository: leave it out.
    if code and len(code) <= FIELD_VALUE_LIMIT:
        embed.add_field(name="Code", value=code, inline=True)
    thumbnail = safe_url(pick.thumbnail)
    if thumbnail:
        embed.set_thumbnail(url=thumbnail)
    if pick.reason:
        embed.set_footer(text=clip(safe_plain(pick.reason), FOOTER_BUDGET))
    return embed


def pick_embeds(picks: Iterable[Pick], *, numbered: bool = False) -> list[discord.Embed]:
    return [pick_embed(pick, position=i + 1 if numbered else None) for i, pick in enumerate(picks)]


def pack(embeds: Sequence[discord.Embed], per_message: int = EMBEDS_PER_MESSAGE) -> list[list[int]]:
    """Group embed indexes into messages that respect the count and the 6000-character total."""
    per_message = min(per_message, EMBEDS_PER_MESSAGE)
    groups: list[list[int]] = []
    size = 0
    for i, embed in enumerate(embeds):
        length = len(embed)
        if not groups or len(groups[-1]) >= per_message or size + length > MESSAGE_EMBED_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += length
    return groups
