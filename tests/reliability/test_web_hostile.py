"""Hostile paper text through the web adapter: escaped, harmless, and the layout bounded.

Sources are supposed to clean titles, but the page must be safe even when one
does not: the papers here go into the core raw, and one message is stored
directly, the way a message from an older version would sit in the database.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from adapters.web.app import CHANNEL, create_app
from bot.domain import Pick
from bot.local_platform import LocalPostingPort
from bot.models import LocalMessage, Reaction
from bot.paperbot import PaperBot
from tests.helpers import paper

pytestmark = pytest.mark.reliability

ORIGIN = "http://127.0.0.1:8080"
LONG = "Attention " * 1000  # 10,000 characters, no break opportunity problems hidden
UNBROKEN = "A" * 10_000  # 10,000 characters without a single space
HOSTILE = {
    "2601.00001": "@everyone @here <script>alert('title')</script> free GPUs",
    "2601.00002": '<img src=x onerror="alert(1)"> "><svg onload=alert(2)>',
    "2601.00003": "<@&123456> <!channel> <https://evil.example|click me> *bold* _it_ ~st~ `code`",
    "2601.00004": "zero\u200bwidth\u200d joiners and \u202eright-to-left override\u202c end",
    "2601.00005": LONG,
    "2601.00006": UNBROKEN,
    "2601.00007": "{{ 7*7 }} {% raw %} ${7*7} </title></textarea></bdi>",
}
ABSTRACT = "<script>alert('abstract')</script> " + "An abstract. " * 900


def _core_with_hostile_posts(core: PaperBot) -> list[Pick]:
    core.ingest(
        paper(pid, title, ABSTRACT, github="javascript:alert(3)", upvotes=1)
        for pid, title in HOSTILE.items()
    )
    picks = core.channel_picks(CHANNEL, limit=10)
    assert {p.paper_id for p in picks} == set(HOSTILE)
    port = LocalPostingPort(core.db)
    asyncio.run(port.send_picks(CHANNEL, picks, "hostile"))
    raw = Pick(
        "2601.00001",
        HOSTILE["2601.00001"],
        "javascript:alert(4)",
        1.0,
        "<b>reason</b> \u202e",
        authors=("<i>Mallory</i>", "@everyone"),
        summary="<script>alert('summary')</script>",
    )
    asyncio.run(port.send_picks(CHANNEL, [raw], "raw"))
    return picks


def _visible_text_of_titles(html: str) -> list[str]:
    return re.findall(r'<h3 class="pick-title">.*?<bdi>(.*?)</bdi>', html, flags=re.S)


def test_hostile_titles_render_escaped_and_bounded(core: PaperBot) -> None:
    _core_with_hostile_posts(core)
    with TestClient(create_app(core, LocalPostingPort(core.db)), base_url=ORIGIN) as client:
        html = client.get("/").text
        reply = client.post(
            "/api/command",
            json={"text": "/papers search everyone script"},
            headers={"Origin": ORIGIN, "X-CSRF-Token": client.cookies.get("paperbot_csrf")},
        ).text
        profile = client.get("/profile").text
    for page in (html, reply, profile):
        # The only script is our own file; no injected element or handler survives.
        assert len(re.findall(r"<script", page)) == (1 if "<html" in page else 0)
        assert "<img" not in page and "<svg onload" not in page
        assert "onerror=" not in page.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
        assert "javascript:" not in page.replace("javascript:alert(3)", "").replace(
            "javascript:alert(4)", ""
        )
        assert 'href="javascript:' not in page
        assert "<@&" not in page and "<!channel>" not in page
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
    assert "@everyone" in html  # shown as text: a web page has no one to ping
    assert "{{ 7*7 }}" in html and "49" not in _visible_text_of_titles(html)
    # Right-to-left overrides are isolated in <bdi>, so they cannot flip the text around them.
    assert "<bdi>zero\u200bwidth" in html
    # 10,000-character titles are cut for display; the page stays small.
    titles = _visible_text_of_titles(html)
    assert titles and max(len(t) for t in titles) <= 301
    assert len(html) < 100_000
    assert html.count("data-kind=") == 3 * (len(HOSTILE) + 1)


@pytest.fixture
def hostile_sqlite_core(sqlite_core: PaperBot) -> PaperBot:
    # Posted before the browser starts: Playwright's sync API runs its own event loop.
    _core_with_hostile_posts(sqlite_core)
    return sqlite_core


@pytest.mark.browser
def test_hostile_titles_in_a_real_browser_run_no_script_and_keep_the_layout(
    hostile_sqlite_core: PaperBot, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.web.running_app import serving_in_thread

    sqlite_core = hostile_sqlite_core
    app = create_app(sqlite_core, LocalPostingPort(sqlite_core.db))
    with serving_in_thread(app) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("article.pick")
        cards = page.locator("#messages article.pick")
        assert cards.count() == len(HOSTILE) + 1
        main_width = page.locator("#messages").bounding_box()["width"]
        for i in range(cards.count()):
            box = cards.nth(i).bounding_box()
            assert box["width"] <= main_width
            assert box["height"] < 700, f"card {i} is {box['height']} px tall"
        # Nothing overflows sideways: the page never scrolls horizontally.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1200
        page.screenshot(path=str(tmp_path / "hostile-channel.png"))
        page.goto(f"{url}/profile")
        page.wait_for_selector("svg circle")
        page.screenshot(path=str(tmp_path / "hostile-profile.png"))
    assert dialogs == []


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FEEDBACK = st.fixed_dictionaries(
    {},
    optional={
        "paper_id": st.one_of(st.sampled_from(list(HOSTILE)), st.text(max_size=200), JSON),
        "kind": st.one_of(st.sampled_from(["up", "down", "save"]), JSON),
        "active": st.one_of(st.booleans(), JSON),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/api/feedback", "/api/command", "/api/user", "/api/forget"]),
    body=st.one_of(FEEDBACK, JSON, st.fixed_dictionaries({"text": st.text(max_size=3000)})),
)
def test_generated_request_bodies_never_crash_a_route(
    sqlite_core: PaperBot, path: str, body: object
) -> None:
    if not sqlite_core.latest_day():
        sqlite_core.ingest(paper(pid, title) for pid, title in HOSTILE.items())
    with TestClient(
        create_app(sqlite_core, LocalPostingPort(sqlite_core.db)),
        base_url=ORIGIN,
        raise_server_exceptions=False,
    ) as client:
        client.get("/")
        response = client.post(
            path,
            json=body,
            headers={"Origin": ORIGIN, "X-CSRF-Token": client.cookies["paperbot_csrf"]},
        )
    assert response.status_code in (200, 400, 413), response.text
    assert "Traceback" not in response.text
    # Whatever came in: feedback only on real papers, and no request posts to the channel.
    with sqlite_core.db.read() as session:
        rated = set(session.scalars(sa.select(Reaction.paper_id)))
        messages = session.scalar(sa.select(sa.func.count()).select_from(LocalMessage))
    assert rated <= set(HOSTILE)
    assert messages == 0
