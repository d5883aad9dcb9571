"""Block Kit cards: what they show, escaping of untrusted paper text, and Slack's limits."""

from __future__ import annotations

from adapters.slack.blocks import (
    ACTION_DOWN,
    ACTION_SAVE,
    ACTION_UP,
    MAX_BLOCKS,
    mrkdwn,
    pick_blocks,
    reply_message,
)
from bot.commands import Reply
from bot.domain import Pick
from tests.slack.blockkit_checks import assert_safe

URL = "https://arxiv.org/abs/2510.00001"


def pick(
    title: str = "Attention", reason: str = "because you liked transformers", **extra: object
) -> Pick:
    fields: dict[str, object] = {"authors": ("Ada", "Alan"), "summary": "We attend.", **extra}
    return Pick("2510.00001", title, URL, 0.9, reason, **fields)  # type: ignore[arg-type]


def test_card_has_linked_title_authors_summary_reason_and_buttons() -> None:
    section, context, actions = pick_blocks(pick(thumbnail="https://cdn.example/t.png"))
    assert section["text"]["text"] == f"*<{URL}|Attention>*\n_Ada, Alan_\nWe attend."
    assert section["accessory"] == {
        "type": "image",
        "image_url": "https://cdn.example/t.png",
        "alt_text": "Attention",
    }
    assert context["elements"][0]["text"] == "because you liked transformers"
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in actions["elements"]] == [
        (ACTION_UP, "2510.00001", "👍"),
        (ACTION_DOWN, "2510.00001", "👎"),
        (ACTION_SAVE, "2510.00001", "🔖"),
    ]


def test_no_thumbnail_no_accessory_and_unsafe_urls_are_not_linked() -> None:
    (section, *_) = pick_blocks(pick())
    assert "accessory" not in section
    (section, *_) = pick_blocks(
        Pick("p", "T", "javascript:alert(1)", 0.1, "r", thumbnail="ftp://x/y.png")
    )
    assert section["text"]["text"] == "*T*" and "accessory" not in section


def test_a_link_cannot_bring_its_own_text_and_keeps_its_query_intact() -> None:
    # "|" would end the URL inside <url|title> and make the rest the link's text.
    (section, *_) = pick_blocks(Pick("p", "Attention", "https://evil.example/|arXiv.org", 0.1, "r"))
    assert section["text"]["text"] == "*Attention*"
    (section, *_) = pick_blocks(Pick("p", "Attention", "https://example.org/p?a=1&b=2", 0.1, "r"))
    assert section["text"]["text"] == "*<https://example.org/p?a=1&amp;b=2|Attention>*"


def test_mentions_and_links_in_titles_are_shown_not_acted_on() -> None:
    title = "Hi <!channel> <!here> <@U123> <http://evil.example|click> & co"
    (section, *_) = pick_blocks(pick(title))
    assert section["text"]["text"].startswith(
        f"*<{URL}|Hi &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; "
        "&lt;http://evil.example|click&gt; &amp; co>*"
    )
    assert_safe({"blocks": pick_blocks(pick(title, summary=title, reason=title))}, {URL})


def test_escaping_never_cuts_an_entity_and_respects_the_limit() -> None:
    text = mrkdwn("&" * 5000, 3000)
    assert len(text) <= 3000 and text.endswith("&amp;…")


def test_a_long_reply_stays_within_fifty_blocks() -> None:
    many = [pick(f"Paper {i}") for i in range(30)]
    message = reply_message(Reply(text="Results", picks=many))
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert sum(1 for b in message["blocks"] if b["type"] == "actions") == 12
    assert_safe(message, {URL})


def test_forget_reply_has_a_confirmation_button() -> None:
    message = reply_message(Reply(text="Sure?", confirm_forget=True))
    actions = message["blocks"][-1]
    assert [b["action_id"] for b in actions["elements"]] == [
        "paperbot_forget_confirm",
        "paperbot_forget_cancel",
    ]
    assert message["response_type"] == "ephemeral"
