"""The web adapter in a real browser: Debian's chromium driven by Playwright.

`paperbot run` starts as a subprocess on a fresh database, exactly as a
newcomer would run it; the browser then uses the page like a person.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from adapters.web.app import CHANNEL, StartupStatus, create_app
from bot.database import Database
from bot.domain import ChannelRef, Pick, UserRef
from bot.local_platform import LocalPostingPort
from bot.models import Paper, PaperEmbedding, Reaction
from bot.paperbot import PaperBot
from bot.sources.sample import SampleSource
from tests.helpers import topical_papers
from tests.web.running_app import log_of, running_paperbot, serving_in_thread

# How long a newcomer may wait for the first picks after `make run` (issue 8).
FIRST_PICKS_DEADLINE = 60.0
ALICE = UserRef("local", "demo", "alice")


def _reasons(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator(".ephemeral").last.locator(".pick-reason").all_inner_texts()


def _pick_ids(reply) -> list[str]:  # type: ignore[no-untyped-def]
    return [card.get_attribute("data-paper-card") for card in reply.locator("article.pick").all()]


def _similarity_to(database_url: str, paper_id: str) -> tuple[dict[str, float], set[str]]:
    """Cosine similarity of every stored paper to one paper (the server's own vectors),
    and the ids of the papers listed on the newest day."""
    with Database(database_url).read() as session:
        rows = session.execute(sa.select(PaperEmbedding.paper_id, PaperEmbedding.vector)).all()
        newest = session.scalar(sa.select(sa.func.max(Paper.listed_on)))
        todays = set(session.scalars(sa.select(Paper.id).where(Paper.listed_on == newest)))
    vectors = {pid: np.frombuffer(v, dtype=np.float32) for pid, v in rows}
    return {pid: float(v @ vectors[paper_id]) for pid, v in vectors.items()}, todays


def _mean(closeness: dict[str, float], ids: Iterable[str]) -> float:
    ids = list(ids)
    return sum(closeness[i] for i in ids) / len(ids)


def _command(page, text: str):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    before = page.locator(".ephemeral").count()
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    expect(page.locator(".ephemeral")).to_have_count(before + 1, timeout=30_000)
    return page.locator(".ephemeral").last


@pytest.mark.browser
def test_like_a_pick_then_today_leans_towards_it_and_users_are_separate(
    browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    db = f"sqlite:///{tmp_path / 'paperbot.db'}"
    with running_paperbot(tmp_path, db, PAPERBOT_EMBEDDING_MODEL="hashing") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        # The first start posts today's picks; the page reloads itself once they are there.
        page.wait_for_selector("#messages article.pick", timeout=60_000)
        posts = page.locator("#messages > .message article.pick")
        assert posts.count() == 5
        log = log_of(tmp_path)
        sample = len(list(SampleSource().fetch()))
        assert f"empty database: ingesting the {sample} bundled sample papers" in log
        assert "subscribed local:demo:#papers" in log
        assert "first-start tick: posted today's picks to #papers" in log

        # Before any feedback, alice's picks are not personal.
        reply = _command(page, "/papers today")
        expect(reply.locator(".only-you")).to_have_text("👁 Only visible to you")
        assert not any("you liked" in r for r in _reasons(page))
        before = _pick_ids(reply)

        liked = posts.first
        liked_id = liked.get_attribute("data-paper-card")
        liked_title = liked.locator(".pick-title").inner_text()
        thumbs_up = liked.locator('button[data-kind="up"]')
        thumbs_up.click()
        expect(thumbs_up).to_have_attribute("aria-pressed", "true")

        after = _pick_ids(_command(page, "/papers today"))
        reasons = _reasons(page)
        assert any(
            re.search(
                f"(close to|nearer than most new papers to) '{re.escape(liked_title[:30])}", r
            )
            for r in reasons
        ), reasons
        # The new picks are, on average, closer in meaning to the liked paper
        # than the papers they were chosen from (today's, not yet shown to alice).
        closeness, todays = _similarity_to(db, liked_id)
        pool = todays - set(before) - {liked_id}
        assert set(after) <= pool
        assert _mean(closeness, after) > _mean(closeness, pool)

        # Clicking 👍 again takes it back, and the profile says so.
        thumbs_up.click()
        expect(thumbs_up).to_have_attribute("aria-pressed", "false")
        thumbs_up.click()
        expect(thumbs_up).to_have_attribute("aria-pressed", "true")
        page.goto(f"{url}/profile")
        expect(page.locator(".counts")).to_contain_text("👍 1")
        expect(page.locator("circle.dot.liked")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "profile-alice.png"), full_page=True)

        # bob: alice's 👍 is not his, and his picks are not leaning towards her like.
        page.goto(url)
        page.select_option("#user-picker", "bob")
        page.wait_for_load_state("load")
        expect(page.locator("#user-picker")).to_have_value("bob")
        bob_first = page.locator("#messages > .message article.pick").first
        expect(bob_first.locator('button[data-kind="up"]')).to_have_attribute(
            "aria-pressed", "false"
        )
        _command(page, "/papers today")
        assert not any("you liked" in r for r in _reasons(page))
        page.screenshot(path=str(tmp_path / "channel-bob.png"))
        assert (tmp_path / "channel-bob.png").stat().st_size > 10_000
        assert errors == []


@pytest.mark.slow
def test_make_run_on_a_fresh_database_shows_picks_within_60_seconds(tmp_path: Path) -> None:
    """`make run` is `paperbot run` with the bundled model; nothing else is set."""
    started = time.monotonic()
    db = f"sqlite:///{tmp_path / 'data' / 'paperbot.db'}"
    with running_paperbot(tmp_path, db, deadline=FIRST_PICKS_DEADLINE) as url:
        html = ""
        while 'class="pick"' not in html:
            assert time.monotonic() - started < FIRST_PICKS_DEADLINE, (
                "no picks on the page within 60 s:\n" + log_of(tmp_path)[-4000:]
            )
            time.sleep(0.5)
            html = httpx.get(url, timeout=10).text
        assert re.search(
            r"embedded \d+ papers with sentence-transformers/all-MiniLM", log_of(tmp_path)
        )
        assert html.count('class="pick"') == 5


@pytest.mark.browser
def test_thumbs_up_and_down_exclude_each_other_and_the_page_shows_what_counts(
    sample_core: PaperBot,
    port: LocalPostingPort,
    posted: list[Pick],
    browser,  # after `posted`, which runs its own event loop: Playwright's is running here
) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    with serving_in_thread(create_app(sample_core, port)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        card = page.locator(f'#messages article[data-paper-card="{posted[0].paper_id}"]')
        up, down, save = (card.locator(f'button[data-kind="{k}"]') for k in ("up", "down", "save"))

        up.click()
        save.click()
        expect(up).to_have_attribute("aria-pressed", "true")
        expect(save).to_have_attribute("aria-pressed", "true")
        down.click()
        expect(down).to_have_attribute("aria-pressed", "true")
        expect(up).to_have_attribute("aria-pressed", "false")
        expect(save).to_have_attribute("aria-pressed", "true")  # 🔖 is independent of the thumbs
        expect(card.locator("button.react:not([disabled])")).to_have_count(3)
        profile = sample_core.profile(ALICE)
        assert (profile.likes, profile.dislikes, profile.saved) == (0, 1, 1)

        # Taking 👎 back leaves no thumb counting: 👍 does not come back unseen.
        down.click()
        expect(down).to_have_attribute("aria-pressed", "false")
        expect(up).to_have_attribute("aria-pressed", "false")
        up.click()
        expect(up).to_have_attribute("aria-pressed", "true")

        # A reload shows the same, and so does the profile.
        page.reload()
        expect(up).to_have_attribute("aria-pressed", "true")
        expect(down).to_have_attribute("aria-pressed", "false")
        page.goto(f"{url}/profile")
        expect(page.locator(".counts")).to_contain_text("👍 1 · 👎 0 · 🔖 1")
        assert errors == []


@pytest.mark.browser
def test_a_channel_page_runs_commands_and_takes_reactions_in_that_channel(
    sample_core: PaperBot,
    port: LocalPostingPort,
    posted: list[Pick],
    browser,  # after `posted`, which runs its own event loop: Playwright's is running here
) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    lab = ChannelRef("local", "demo", "#lab")
    with serving_in_thread(create_app(sample_core, port)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/channels/lab")
        expect(page.locator("h1")).to_have_text("# lab")
        reply = _command(page, "/papers subscribe 07:00 UTC 1")
        expect(reply).to_contain_text("1 paper at 07:00 UTC in this channel")
        assert sample_core.subscription(lab) is not None
        assert sample_core.subscription(CHANNEL) is None

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, port.send_picks(lab, posted[:1], "lab-post")).result()
        page.reload()
        expect(page.locator(".sidebar a[aria-current=page]")).to_have_text("# lab")
        up = page.locator('#messages button[data-kind="up"]')
        expect(up).to_have_count(1)
        up.click()
        expect(up).to_have_attribute("aria-pressed", "true")
        with sample_core.db.read() as session:
            where = session.scalars(sa.select(Reaction.channel_id)).all()
        assert where == ["#lab"]

        page.click(".sidebar a[href='/']")
        expect(page.locator("h1")).to_have_text("# papers")
        expect(page.locator("#messages article.pick")).to_have_count(len(posted))
        assert errors == []


def _post_todays_picks(core: PaperBot, port: LocalPostingPort) -> None:
    """Post today's picks to #papers from a worker thread: Playwright's loop runs on this one."""
    picks = core.channel_picks(CHANNEL, limit=5)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, port.send_picks(CHANNEL, picks, "first-post")).result()


@pytest.mark.browser
def test_while_setting_up_the_page_keeps_what_the_user_typed_and_says_when_ready(
    core: PaperBot, browser
) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    port = LocalPostingPort(core.db)  # on an empty database, as a first start begins
    status = StartupStatus(message="Empty database: embedding 18 bundled sample papers…")
    with serving_in_thread(create_app(core, port, status=status)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        loads: list[str] = []
        page.on("load", lambda _: loads.append(page.url))
        page.goto(url)
        banner = page.get_by_role("status")
        expect(banner).to_have_text(status.message)

        reply = _command(page, "/papers today")
        expect(reply.locator(".reply-text")).to_have_text(
            f"I'm still setting up ({status.message}). Try again in a moment."
        )
        page.fill("#composer-text", "/papers follow diffusion")
        status.message = "Posting today's picks to #papers…"
        expect(banner).to_have_text(status.message)
        page.wait_for_timeout(4000)  # longer than the page used to take to reload itself
        expect(page.locator("#composer-text")).to_have_value("/papers follow diffusion")
        expect(page.locator(".ephemeral")).to_have_count(1)

        core.ingest(topical_papers(per_topic=3))
        _post_todays_picks(core, port)
        status.ready = True
        # Set up, but a reload would lose the typed text and the reply: the user decides.
        expect(banner).to_contain_text("#papers is set up. Reload the page to see it.")
        expect(page.locator("#composer-text")).to_have_value("/papers follow diffusion")
        assert len(loads) == 1
        banner.get_by_role("link").click()
        expect(page.locator("#messages article.pick")).to_have_count(5)

        # With nothing to lose, the page reloads by itself once set-up is done.
        status.ready = False
        idle = browser.new_page()
        idle.goto(url)
        expect(idle.get_by_role("status")).to_have_count(1)
        status.ready = True
        expect(idle.get_by_role("status")).to_have_count(0, timeout=10_000)
        expect(idle.locator("#messages article.pick")).to_have_count(5)
        assert errors == []
