"""The web adapter's routes, through a real HTTP client, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest
import sqlalchemy as sa

from adapters.web.app import CHANNEL, StartupStatus, create_app
from bot import database
from bot.domain import ChannelRef, Pick, UserRef
from bot.embedding import HashingEmbedder
from bot.errors import SORRY
from bot.local_platform import LocalPostingPort
from bot.models import Reaction
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import paper
from tests.web.conftest import ORIGIN, WebClient

ALICE = UserRef("local", "demo", "alice")
BOB = UserRef("local", "demo", "bob")


def _pressed(html: str, paper_id: str, kind: str) -> bool:
    match = re.search(
        rf'data-paper="{re.escape(paper_id)}" data-kind="{kind}" aria-pressed="(true|false)"', html
    )
    assert match, f"no {kind} button for {paper_id}"
    return match.group(1) == "true"


def test_channel_page_shows_the_daily_post_like_a_chat_message(
    client: WebClient, posted: list[Pick]
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert "# papers" in html
    for pick in posted:
        assert f">{pick.title}<" in html.replace("&#39;", "'").replace("&amp;", "&")
        assert pick.url.replace("&", "&amp;") in html
        assert pick.reason in html
    # Every post has the three feedback controls.
    assert html.count("data-kind=") == 3 * len(posted)
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "paperbot_csrf" in client.cookies


def test_a_post_shows_authors_summary_upvotes_and_github(
    client: WebClient, sample_core: PaperBot, port: LocalPostingPort
) -> None:
    sample_core.ingest(
        [paper("2510.99999", "Full card", "Abstract.", upvotes=42, github="https://github.com/a/b")]
    )
    pick = sample_core.search(ALICE, "Full card", limit=1)[0]
    assert pick.paper_id == "2510.99999"
    asyncio.run(port.send_picks(CHANNEL, [pick], "full-card"))
    html = client.get("/").text
    assert 'href="https://arxiv.org/abs/2510.99999"' in html
    assert "Ada Lovelace, Alan Turing" in html
    assert "Abstract." in html
    assert "▲ 42 upvotes" in html
    assert 'href="https://github.com/a/b"' in html


@pytest.mark.parametrize(
    "github",
    [
        "https://evil.example/login",
        "https://github.com.evil.example/a/b",
        "https://evil.example\\@github.com/a/b",  # a browser's host: evil.example
    ],
)
def test_a_github_link_to_another_site_is_not_shown_as_github(
    client: WebClient, sample_core: PaperBot, port: LocalPostingPort, github: str
) -> None:
    # The feed's githubRepo field is free text: labelled "GitHub", it must lead there.
    sample_core.ingest([paper("2510.99998", "Spoofed repo", "Abstract.", github=github)])
    pick = sample_core.search(ALICE, "Spoofed repo", limit=1)[0]
    assert pick.github == github
    asyncio.run(port.send_picks(CHANNEL, [pick], "spoofed-repo"))
    html = client.get("/").text
    assert "Spoofed repo" in html
    assert "evil.example" not in html and 'class="pick-github"' not in html


def test_thumbs_up_is_stored_per_user_and_clicking_again_takes_it_back(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    paper = posted[0].paper_id
    client.as_user("alice")
    response = client.api("/api/feedback", {"paper_id": paper, "kind": "up", "active": True})
    assert response.json() == {"up": True, "down": False, "save": False}
    assert sample_core.profile(ALICE).likes == 1
    assert _pressed(client.get("/").text, paper, "up")

    client.as_user("bob")
    assert not _pressed(client.get("/").text, paper, "up")
    assert sample_core.profile(BOB).likes == 0

    client.as_user("alice")
    response = client.api("/api/feedback", {"paper_id": paper, "kind": "up", "active": False})
    assert response.json()["up"] is False
    assert sample_core.profile(ALICE).likes == 0
    assert not _pressed(client.get("/").text, paper, "up")


def test_thumbs_down_and_bookmark_reach_the_core(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    client.as_user("alice")
    client.api("/api/feedback", {"paper_id": posted[1].paper_id, "kind": "down", "active": True})
    body = client.api(
        "/api/feedback", {"paper_id": posted[2].paper_id, "kind": "save", "active": True}
    ).json()
    assert body["save"] is True
    profile = sample_core.profile(ALICE)
    assert (profile.likes, profile.dislikes, profile.saved) == (0, 1, 1)
    html = client.get("/").text
    assert _pressed(html, posted[1].paper_id, "down")
    assert _pressed(html, posted[2].paper_id, "save")


def test_thumbs_down_replaces_thumbs_up_and_taking_it_back_leaves_neither(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    paper = posted[0].paper_id
    client.as_user("alice")
    client.api("/api/feedback", {"paper_id": paper, "kind": "up", "active": True})
    down = client.api("/api/feedback", {"paper_id": paper, "kind": "down", "active": True})
    assert down.json() == {"up": False, "down": True, "save": False}
    profile = sample_core.profile(ALICE)
    assert (profile.likes, profile.dislikes) == (0, 1)
    html = client.get("/").text
    assert _pressed(html, paper, "down") and not _pressed(html, paper, "up")

    back = client.api("/api/feedback", {"paper_id": paper, "kind": "down", "active": False})
    assert back.json() == {"up": False, "down": False, "save": False}
    profile = sample_core.profile(ALICE)
    assert (profile.likes, profile.dislikes) == (0, 0)


def test_feedback_on_an_unknown_paper_is_a_clear_error(client: WebClient) -> None:
    response = client.api("/api/feedback", {"paper_id": "nope", "kind": "up", "active": True})
    assert response.status_code == 400
    assert "I don't know the paper" in response.json()["error"]
    bad = client.api("/api/feedback", {"paper_id": "x", "kind": "love", "active": True})
    assert bad.status_code == 400
    assert client.api("/api/feedback", {"paper_id": "x", "kind": "up"}).status_code == 400


def test_feedback_while_the_database_stays_locked_is_a_503_asking_to_try_again(
    sqlite_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Give up within a second, not after the 30 s a real click waits.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    retrying = database.retrying
    monkeypatch.setattr(
        database, "retrying", lambda work, **kw: retrying(work, **{**kw, "deadline": 0.5})
    )
    database.upgrade(sqlite_url)
    core = PaperBot.open(sqlite_url, embedder=HashingEmbedder(), settings=settings)
    try:
        core.ingest([paper("2510.00001")])
        with WebClient(create_app(core, LocalPostingPort(core.db)), base_url=ORIGIN) as client:
            client.csrf()
            locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            try:
                response = client.api(
                    "/api/feedback", {"paper_id": "2510.00001", "kind": "up", "active": True}
                )
            finally:
                locker.rollback()
                locker.close()
        assert response.status_code == 503
        assert response.json() == {"error": SORRY}
        assert "try again" in SORRY
        assert core.feedback_states(ALICE) == {}  # nothing half-stored
    finally:
        core.close()


def test_feedback_on_a_read_only_database_says_sorry_at_once_and_logs_why(
    sqlite_url: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only file is not waited for (bot.database); the click still gets an answer.
    database.upgrade(sqlite_url)
    core = PaperBot.open(sqlite_url, embedder=HashingEmbedder(), settings=settings)
    try:
        core.ingest([paper("2510.00001")])
        sa.event.listen(
            core.db.engine, "connect", lambda conn, _: conn.execute("PRAGMA query_only=1")
        )
        core.db.engine.dispose()  # new connections, read-only
        with WebClient(create_app(core, LocalPostingPort(core.db)), base_url=ORIGIN) as client:
            client.csrf()
            with caplog.at_level("ERROR", logger="adapters.web.app"):
                response = client.api(
                    "/api/feedback", {"paper_id": "2510.00001", "kind": "up", "active": True}
                )
        assert (response.status_code, response.json()) == (503, {"error": SORRY})
        logged = [r for r in caplog.records if r.name == "adapters.web.app"]
        assert [(r.levelname, r.exc_info is not None) for r in logged] == [("ERROR", True)]
        assert "readonly" in caplog.text
    finally:
        core.close()


def test_today_command_replies_only_to_the_user_with_picks(client: WebClient) -> None:
    client.as_user("alice")
    response = client.api("/api/command", {"text": "/papers today 3"})
    assert response.status_code == 200
    html = response.text
    assert "Only visible to you" in html
    assert "Your picks for today:" in html
    assert html.count('class="pick"') == 3
    assert "/papers today 3" in html  # the command as typed, echoed


def test_follow_changes_the_profile_and_the_reason(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    # Following a topic worded like one of today's papers makes it a pick, and says why.
    topic = " ".join(re.sub(r"[^\w ]", " ", posted[-1].title).split())[:150]
    client.as_user("bob")
    html = client.api("/api/command", {"text": f"/papers follow {topic}"}).text
    assert f"Following: {topic}" in html.replace("&#39;", "'")
    assert sample_core.profile(BOB).follows == (topic,)
    assert topic in client.get("/profile").text.replace("&#39;", "'")
    today = client.api("/api/command", {"text": "/papers today"}).text.replace("&#39;", "'")
    assert f"matches your follow: {topic[:20]}" in today


def test_forget_asks_first_then_deletes(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    client.as_user("alice")
    client.api("/api/feedback", {"paper_id": posted[0].paper_id, "kind": "up", "active": True})
    ask = client.api("/api/command", {"text": "/papers forget"}).text
    assert "data-forget-confirm" in ask
    assert sample_core.profile(ALICE).likes == 1  # nothing deleted before confirming
    done = client.api("/api/forget", {}).text
    assert "Done: I deleted" in done
    assert sample_core.profile(ALICE).likes == 0


def test_a_subscribed_channel_has_its_own_page_where_its_posts_show(
    client: WebClient, sample_core: PaperBot, port: LocalPostingPort, posted: list[Pick]
) -> None:
    client.api("/api/command", {"text": "/papers subscribe #general 10:30 UTC 3"})
    home = client.get("/").text
    assert 'href="/channels/general"' in home  # listed before its first post
    general = ChannelRef("local", "demo", "#general")
    pick = sample_core.channel_picks(general, limit=3)[-1]
    asyncio.run(port.send_picks(general, [pick], "general-post"))
    page = client.get("/channels/general")
    assert page.status_code == 200 and "# general" in page.text
    assert page.text.count("data-paper-card=") == 1 and pick.paper_id in page.text
    assert page.text.count("data-paper-card=") != home.count("data-paper-card=")
    assert 'data-channel="#general"' in page.text and 'aria-current="page"' in page.text
    # One address per channel, and a name that is no channel is no page.
    for alias, target in (("/channels/papers", "/"), ("/channels/General", "/channels/general")):
        moved = client.get(alias, follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (307, target)
    assert client.get("/channels/no.such").status_code == 404


def test_commands_and_reactions_happen_in_the_channel_they_are_sent_from(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    html = client.api("/api/command", {"text": "/papers subscribe 07:15 UTC", "channel": "#lab"})
    assert "07:15 UTC in this channel" in html.text
    assert sample_core.subscription(ChannelRef("local", "demo", "#lab")) is not None
    assert sample_core.subscription(CHANNEL) is None  # not #papers, where no channel is named
    paper_id = posted[0].paper_id
    client.as_user("alice")
    body = {"paper_id": paper_id, "kind": "up", "active": True, "channel": "#lab"}
    assert client.api("/api/feedback", body).status_code == 200
    with sample_core.db.read() as session:
        channels = session.scalars(
            sa.select(Reaction.channel_id).where(Reaction.paper_id == paper_id)
        ).all()
    assert channels == ["#lab"]
    for bad in ("lab", "#no/such", 7):
        refused = client.api("/api/command", {"text": "/papers today", "channel": bad})
        assert refused.status_code == 400 and "a channel is #" in refused.json()["error"]


def test_subscribe_settings_and_unsubscribe_work_on_named_channels(
    client: WebClient, sample_core: PaperBot
) -> None:
    html = client.api("/api/command", {"text": "/papers subscribe #general 10:30 UTC 3"}).text
    assert "3 papers at 10:30 UTC in #general" in html
    info = sample_core.subscription(ChannelRef("local", "demo", "#general"))
    assert info is not None and info.status == "active"
    assert "10:30" in client.api("/api/command", {"text": "/papers settings #general"}).text
    assert "stopped" in client.api("/api/command", {"text": "/papers unsubscribe #general"}).text
    bad = client.api("/api/command", {"text": "/papers subscribe #no/such"}).text
    assert "I can&#39;t find the channel #no/such." in bad


def test_while_setting_up_today_says_so_and_the_page_polls_instead_of_reloading(
    core: PaperBot,
) -> None:
    status = StartupStatus(message="Empty database: embedding 18 bundled sample papers…")
    app = create_app(core, LocalPostingPort(core.db), status=status)
    with WebClient(app, base_url=ORIGIN) as client:
        page = client.get("/").text
        assert 'http-equiv="refresh"' not in page  # a reload would wipe what the user typed
        assert status.message in page
        assert client.get("/api/status").json() == {
            "ready": False,
            "message": status.message,
            "problems": [],
        }
        today = client.api("/api/command", {"text": "/papers today"}).text
        assert f"I&#39;m still setting up ({status.message}). Try again in a moment." in today

        status.ready = True
        assert client.get("/api/status").json()["ready"] is True
        today = client.api("/api/command", {"text": "/papers today"}).text
        assert "No papers yet. They arrive every day" in today


def test_help_search_and_plain_text(client: WebClient) -> None:
    help_html = client.api("/api/command", {"text": "/papers help"}).text
    assert "<code>/papers today [count]</code>" in help_html
    found = client.api("/api/command", {"text": "/papers search diffusion"}).text
    assert "Papers matching" in found and 'class="pick"' in found
    first = re.search(r'data-paper-card="([^"]+)"', found).group(1)  # type: ignore[union-attr]
    client.api("/api/feedback", {"paper_id": first, "kind": "save", "active": True})
    again = client.api("/api/command", {"text": "/papers search diffusion"}).text
    assert _pressed(again, first, "save")  # a result already saved shows as saved
    chat = client.api("/api/command", {"text": "hello there"}).text
    assert "I answer <code>/papers</code> commands here" in chat


def test_user_picker_switches_user_and_rejects_bad_names(client: WebClient) -> None:
    client.as_user("bob")
    assert '<option value="bob" selected>' in client.get("/").text
    assert client.api("/api/user", {"user": "<script>"}).status_code == 400
    assert client.api("/api/user", {"user": "Bob Smith"}).status_code == 400
    client.cookies.set("paperbot_user", "bad-name!", domain="127.0.0.1")
    assert '<option value="alice" selected>' in client.get("/").text


def test_profile_map_draws_todays_papers_and_highlights_likes(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    client.as_user("alice")
    client.api("/api/feedback", {"paper_id": posted[0].paper_id, "kind": "up", "active": True})
    html = client.get("/profile").text
    assert "<svg" in html
    paper_map = sample_core.paper_map(ALICE)
    assert html.count('<circle class="dot') == len(paper_map.papers) > 5
    assert html.count('<circle class="dot liked') == 1
    assert f'data-paper="{posted[0].paper_id}"' in html
    assert "👍 1" in html


def test_saved_papers_are_listed_on_the_profile_and_by_command(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    client.as_user("alice")
    assert "Nothing saved yet" in client.get("/profile").text
    client.api("/api/feedback", {"paper_id": posted[1].paper_id, "kind": "save", "active": True})
    html = client.get("/profile").text
    saved = html[html.index("<h2>Saved</h2>") : html.index("<h2>Map")]
    assert saved.count("<li>") == 1 and f'href="{posted[1].url}"' in saved
    assert "you saved it on" in saved
    listed = client.api("/api/command", {"text": "/papers saved"}).text
    assert "Your saved papers, newest first:" in listed
    assert _pressed(listed, posted[1].paper_id, "save")  # shown as saved: pressing takes it back


def test_unknown_host_is_refused(client: WebClient) -> None:
    # DNS rebinding: a hostile name resolving to 127.0.0.1 must not reach the app.
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("bind_host", ["0.0.0.0", "::"])
def test_bound_to_every_interface_a_rebound_name_cannot_use_the_page(
    sample_core: PaperBot, port: LocalPostingPort, bind_host: str
) -> None:
    # DNS rebinding: evil.example first serves the attacker's page, then resolves to
    # this machine. The page's origin is then http://evil.example:8080, which the
    # Origin check accepts as our own, and it can read the CSRF token from "/".
    rebound = "http://evil.example:8080"
    app = create_app(sample_core, port, bind_host=bind_host)
    with WebClient(app, base_url=rebound) as attacker:
        assert attacker.get("/").status_code == 400
        # The origin is the attacker's, so its script may set the double-submit cookie.
        attacker.cookies.set("paperbot_csrf", "x" * 43)
        followed = attacker.post(
            "/api/command",
            json={"text": "/papers follow attacker topics"},
            headers={"Origin": rebound, "X-CSRF-Token": "x" * 43},
        )
        assert followed.status_code == 400
    assert sample_core.profile(UserRef("local", "demo", "alice")).follows == ()
    # A LAN visitor using the machine's address, and the operator on loopback, still can.
    for origin in ("http://192.168.1.20:8080", "http://localhost:8080", "http://[::1]:8080"):
        with WebClient(app, base_url=origin) as visitor:
            assert visitor.get("/").status_code == 200
            followed = visitor.api("/api/command", {"text": "/papers follow diffusion"})
            assert followed.status_code == 200


def test_request_body_must_be_a_json_object(client: WebClient) -> None:
    response = client.post(
        "/api/command",
        content=b"[1, 2]",
        headers={"Origin": ORIGIN, "X-CSRF-Token": client.csrf()},
    )
    assert response.status_code == 400


def test_a_huge_body_is_refused_without_reading_it_all(client: WebClient) -> None:
    huge = client.post(
        "/api/command",
        content=b'{"text": "' + b"a" * 5_000_000 + b'"}',
        headers={"Origin": ORIGIN, "X-CSRF-Token": client.csrf()},
    )
    assert huge.status_code == 413
    assert huge.json() == {"error": "request too large"}


def test_an_unexpected_error_shows_no_trace_or_secret(
    sample_core: PaperBot, port: LocalPostingPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(user: UserRef) -> None:
        raise RuntimeError("xoxb-secret-token in a traceback")

    monkeypatch.setattr(sample_core, "profile", broken)
    with WebClient(
        create_app(sample_core, port), base_url=ORIGIN, raise_server_exceptions=False
    ) as client:
        response = client.get("/profile")
    assert response.status_code == 500
    assert "xoxb" not in response.text and "Traceback" not in response.text


@pytest.mark.parametrize("bind_host", ["::1", "2001:db8::5"])
def test_an_ipv6_address_is_served_under_the_url_printed_for_it(
    sample_core: PaperBot, port: LocalPostingPort, bind_host: str
) -> None:
    origin = f"http://[{bind_host}]:8080"  # as WebAdapter.url() prints it
    app = create_app(sample_core, port, bind_host=bind_host)
    with WebClient(app, base_url=origin) as client:
        assert client.get("/").status_code == 200
        assert client.api("/api/user", {"user": "bob"}).status_code == 200
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("path", ["/", "/profile"])
def test_pages_declare_an_icon_so_browsers_do_not_ask_for_a_missing_favicon(
    client: WebClient, path: str
) -> None:
    # Chromium asks for /favicon.ico unless the page names an icon; that was a 404
    # and a console error on every page load. data: is allowed by img-src.
    html = client.get(path).text
    assert '<link rel="icon" href="data:,">' in html
    assert "img-src 'self' data:" in client.get(path).headers["content-security-policy"]
