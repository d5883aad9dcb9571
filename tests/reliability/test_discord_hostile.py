"""Hostile input against the Discord adapter: paper text, reaction and interaction payloads.

Paper text comes from public feeds and must never ping, break a message or
exceed Discord's limits. Gateway payloads are generated with hypothesis
(missing fields, wrong types, unknown emoji, huge strings): no handler may
raise, every interaction gets an answer, and the database stays consistent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.discord import DiscordPostingPort, embeds, events
from adapters.discord.client import PaperClient
from adapters.discord.replies import SORRY
from bot.domain import ChannelRef, Pick
from bot.models import Follow, Reaction, Subscription
from bot.normalise import clean_text
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.discord.helpers import (
    MANAGE_CHANNELS,
    OTHER_USER_ID,
    SEND,
    USER_ID,
    answer_texts,
    answers,
    command,
    fake_discord,
    invoke,
    logged_in,
    posted_messages,
)
from tests.fakes.discord_server import BOT_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.helpers import paper

pytestmark = pytest.mark.reliability

HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))
HOSTILE = [
    "@everyone read this",
    "@here now",
    "<@&123456789012345678> and <@&123>",
    "<@123456789012345678> <@!123456789012345678>",
    "@\u200beveryone hidden by a zero-width space",
    "**bold** __underline__ ~~strike~~ `code` ||spoiler|| [click](https://evil.example)",
    "as in [1], [get the weights](https://evil.example/w.exe) and \\[login](https://evil.example)",
    "> quote\n# heading\n-# subtext\n- list",
    "\u202eevil right-to-left override\u202c and \u2066isolate\u2069",
    "zero\u200bwidth\u200c\u200d\ufeffjoiners",
    "control \x00\x07\x1b[31m chars",
    "broken utf-8 " + b"\xff\xfe\xed\xa0\x80".decode("utf-8", "surrogateescape"),
    "trailing backslashes \\\\\\",
    "<#123456789012345678> <t:0:R> <:custom:123>",
    "A" * 10_000,
    ("@everyone " * 1500),
    "word " * 3000,
]
_INVISIBLE = re.compile("[\u200c-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_MARKDOWN = "*_~`|"


def texts(embed: discord.Embed) -> Iterator[tuple[str, str]]:
    """(kind, text) for every piece of text an embed shows; kind says whether markdown renders."""
    data = embed.to_dict()
    yield "markdown", data.get("title", "")
    yield "markdown", data.get("description", "")
    yield "plain", data.get("author", {}).get("name", "")
    yield "plain", data.get("footer", {}).get("text", "")
    for field in data.get("fields", []):
        yield "plain", field["name"]


def assert_inert(kind: str, text: str) -> None:
    assert "@everyone" not in text and "@here" not in text
    assert not re.search(r"<@[!&]?\d", text), text[:80]
    assert not _INVISIBLE.search(text)
    assert all(ch in "\n\t" or not (ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF) for ch in text)
    if kind == "markdown":
        for match in re.finditer(r"(\\*)([*_~`|\[\]])", text):
            assert len(match[1]) % 2 == 1, f"unescaped {match[2]!r} in {text[:80]!r}"
        assert not re.search(r"^[ \t]*[>#-]", text, re.MULTILINE), text[:80]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_paper_text_renders_inert_and_within_limits(hostile: str) -> None:
    pick = Pick(
        "2510.00001",
        hostile,
        "https://arxiv.org/abs/2510.00001",
        0.5,
        hostile,
        authors=(hostile, hostile, hostile, hostile),
        summary=hostile,
        github="javascript:alert(1)",
        thumbnail=hostile,
    )
    embed = embeds.pick_embed(pick, position=1)
    for kind, text in texts(embed):
        assert_inert(kind, text)
    data = embed.to_dict()
    assert len(data["title"]) <= embeds.TITLE_LIMIT
    assert len(data.get("description", "")) <= embeds.DESCRIPTION_LIMIT
    assert len(data["footer"]["text"]) <= embeds.FOOTER_LIMIT
    assert len(data["author"]["name"]) <= embeds.AUTHOR_LIMIT
    assert len(embed) <= embeds.MESSAGE_EMBED_CHARS
    assert "thumbnail" not in data and not data.get("fields")  # no unsafe URLs
    json.dumps(data).encode("utf-8")  # no lone surrogates left


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "https://evil.example\\@github.com/evil/repo",  # a browser's host: evil.example
        "https://github.com.evil.example/x",
        "https://github.com/a b",
    ],
)
def test_only_real_github_links_become_the_code_field(url: str) -> None:
    assert embeds.safe_url(url, hosts=("github.com",)) is None
    assert embeds.safe_url("https://github.com/a/b", hosts=("github.com",)) is not None


def test_a_github_link_cannot_close_its_own_link_markup() -> None:
    pick = Pick("p", "T", None, 0.1, "r", github="https://github.com/a/b>)[x](https://evil.example")
    (field,) = (f for f in embeds.pick_embed(pick).fields if f.name == "Code")
    assert field.value == "[GitHub](<https://github.com/a/b%3E)[x](https://evil.example>)"


def test_a_github_link_too_long_for_a_field_is_left_out() -> None:
    # The feed allows URLs of 2,000 characters; Discord refuses a field over 1,024.
    def code_field(github: str) -> list[dict[str, object]]:
        card = embeds.pick_embed(Pick("p", "T", "https://x.example", 0.1, "r", github=github))
        return [f for f in card.to_dict().get("fields", []) if f["name"] == "Code"]

    assert code_field("https://github.com/a/b") == [
        {"name": "Code", "value": "[GitHub](<https://github.com/a/b>)", "inline": True}
    ]
    assert code_field("https://github.com/a/" + "b" * 1_960) == []  # 1,981 characters


def test_a_cut_never_leaves_an_escape_that_would_swallow_the_ellipsis() -> None:
    title = embeds.safe_markdown("A" * 250 + "*starred*")
    assert title[250:252] == "\\*"
    assert embeds.clip(title, 252) == "A" * 250 + "…"  # the cut fell between "\" and "*"
    assert embeds.clip("AAAA\\\\**", 7) == "AAAA\\\\…"  # an escaped backslash stays whole


def test_many_hostile_cards_are_packed_within_message_limits() -> None:
    cards = [
        embeds.pick_embed(Pick(f"p{i}", t, "https://x.example", 0.1, t, summary=t * 3))
        for i, t in enumerate(HOSTILE * 2)
    ]
    groups = embeds.pack(cards)
    assert sorted(i for g in groups for i in g) == list(range(len(cards)))
    for group in groups:
        assert len(group) <= embeds.EMBEDS_PER_MESSAGE
        assert sum(len(cards[i]) for i in group) <= embeds.MESSAGE_EMBED_CHARS


async def test_hostile_titles_posted_to_a_channel_ping_nobody(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored papers went through the sources' normaliser, as in production.
    core.ingest(
        [paper(f"2510.{i:05d}", clean_text(t), clean_text(t)) for i, t in enumerate(HOSTILE)]
    )
    async with fake_discord(monkeypatch) as fake, logged_in(core, Settings()) as client:
        picks = core.channel_picks(HERE, limit=10)
        await DiscordPostingPort(client).send_picks(HERE, picks, "2025-10-06")
        posts = fake.calls("POST", f"/channels/{CHANNEL_ID}/messages")
        assert len(posts) == len(picks)
        for post in posts:
            assert post.body["allowed_mentions"] == {"parse": []}
            for embed in post.body["embeds"]:
                assert_inert("markdown", embed["title"])


# ---------------------------------------------------------------- generated payloads
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
snowflake = st.integers(min_value=0, max_value=2**64 - 1)
emoji_names = st.sampled_from(["👍", "👎", "🔖", "👍🏽", "+1", "🎉", "thumbsup"]) | st.text(
    max_size=200
)
huge = st.text(min_size=1000, max_size=5000)


@st.composite
def reaction_payloads(draw: st.DrawFn, message_ids: list[str]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "user_id": draw(
            st.sampled_from([str(USER_ID), str(OTHER_USER_ID), str(BOT_ID)]) | snowflake.map(str)
        ),
        "channel_id": draw(st.just(str(CHANNEL_ID)) | snowflake.map(str)),
        "message_id": draw(st.sampled_from(message_ids) | snowflake.map(str)),
        "guild_id": draw(st.just(str(GUILD_ID)) | snowflake.map(str)),
        "emoji": draw(
            st.fixed_dictionaries(
                {"id": st.none() | snowflake.map(str), "name": st.none() | emoji_names | huge}
            )
        ),
        "burst": draw(st.booleans()),
        "type": draw(st.integers(0, 1)),
    }
    for key in draw(st.lists(st.sampled_from(["guild_id", "burst"]), unique=True)):
        del payload[key]  # optional in Discord's payload
    return payload


# Objects that are not even what discord.py builds: every attribute of any type.
malformed_events = st.builds(
    SimpleNamespace,
    guild_id=anything,
    user_id=anything,
    channel_id=anything,
    message_id=anything,
    event_type=anything,
    emoji=st.builds(SimpleNamespace, id=anything, name=anything) | anything,
)


def raw_event(payload: dict[str, Any], add: bool) -> discord.RawReactionActionEvent:
    """Parse as discord.py's gateway parser does; payloads it cannot parse never reach us."""
    emoji = discord.PartialEmoji.from_dict(payload["emoji"])
    return discord.RawReactionActionEvent(
        payload, emoji, "REACTION_ADD" if add else "REACTION_REMOVE"
    )


def test_generated_reaction_payloads_never_raise_and_keep_the_database_consistent(
    core: PaperBot,
) -> None:
    core.ingest([paper(f"2510.{i:05d}") for i in range(3)])
    core.record_posts(HERE, [(f"5000{i}", f"2510.{i:05d}") for i in range(3)])
    posted = posted_messages(core)
    handler = events.ReactionHandler(core)
    runner = asyncio.Runner()

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(payload=reaction_payloads(list(posted)), add=st.booleans(), junk=malformed_events)
    def check(payload: dict[str, Any], add: bool, junk: SimpleNamespace) -> None:
        result = runner.run(handler.handle(raw_event(payload, add), BOT_ID))
        if result is not None:
            assert posted[payload["message_id"]] == result
            assert payload["user_id"] != str(BOT_ID)
        assert runner.run(handler.handle(junk, BOT_ID)) is None  # type: ignore[arg-type]

    try:
        check()
    finally:
        runner.close()
    with core.db.read() as session:
        rows = session.scalars(sa.select(Reaction)).all()
    for row in rows:
        assert (row.platform, row.workspace) == ("discord", str(GUILD_ID))
        assert row.paper_id in posted.values()
        assert row.user_id != str(BOT_ID)


@st.composite
def interaction_payloads(draw: st.DrawFn) -> dict[str, Any]:
    sub = draw(
        st.sampled_from(
            [
                "today",
                "follow",
                "search",
                "profile",
                "forget",
                "subscribe",
                "unsubscribe",
                "settings",
                "help",
            ]
        )
        | st.text(max_size=40)
    )
    names = st.sampled_from(["count", "topics", "query", "channel", "time", "timezone"]) | st.text(
        max_size=20
    )
    options = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.integers(0, 12),
                    "name": names,
                    "value": anything | huge | st.integers(),
                }
            ),
            max_size=4,
        )
    )
    return command(
        sub,
        *options,
        user_id=draw(st.sampled_from([USER_ID, OTHER_USER_ID])),
        permissions=draw(st.sampled_from([SEND, MANAGE_CHANNELS, 0])),
        guild_id=draw(st.sampled_from([GUILD_ID, None])),
    )


def test_generated_interactions_are_always_answered_and_never_raise(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.ingest([paper(f"2510.{i:05d}", f"paper {i}") for i in range(3)])
    runner = asyncio.Runner()
    # Hypothesis calls a sync function per example, so the loop is driven by hand.
    fake_cm, client_cm = fake_discord(monkeypatch), logged_in(core, Settings())
    fake: FakeDiscord = runner.run(fake_cm.__aenter__())
    client: PaperClient = runner.run(client_cm.__aenter__())
    managers: set[str] = set()

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payload=interaction_payloads())
    def check(payload: dict[str, Any]) -> None:
        if payload.get("member", {}).get("permissions") == str(MANAGE_CHANNELS):
            managers.add(payload["member"]["user"]["id"])
        runner.run(invoke(client, payload))
        assert answers(fake, payload), "the interaction got no answer"
        # Bad input is explained; the apology is only for failures on our side.
        assert SORRY not in answer_texts(fake, payload)

    try:
        check()
        with core.db.read() as session:
            creators = set(session.scalars(sa.select(Subscription.created_by)))
            workspaces = set(session.scalars(sa.select(Follow.workspace)))
        assert creators <= managers
        assert workspaces <= {str(GUILD_ID)}
    finally:
        runner.run(client_cm.__aexit__(None, None, None))
        runner.run(fake_cm.__aexit__(None, None, None))
        runner.close()
