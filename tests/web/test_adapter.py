"""The web adapter as `paperbot run` loads it: first start, serving, stopping, restarting."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from rich.console import Console
from starlette.testclient import TestClient

from adapters.web import create_adapter
from adapters.web.app import CHANNEL
from adapters.web.first_start import newest_first_batch
from bot.embedding import HashingEmbedder
from bot.local_platform import LocalPostingPort
from bot.models import Paper
from bot.paperbot import PaperBot
from bot.runner import demo, enabled_adapters
from bot.settings import Settings, SettingsError, load_settings
from bot.sources.sample import SampleSource
from tests.helpers import DAY, PROJECT_ROOT, paper, unused_port
from tests.web.running_app import log_of, running_paperbot


async def _serve_once(core: PaperBot) -> str:
    """Start the adapter, wait for the first post, fetch the page, stop it."""
    # No feed is reachable (a closed local port), as on an offline laptop.
    unreachable = f"http://127.0.0.1:{unused_port()}/api/daily_papers"
    adapter = create_adapter(core, Settings(http_port=0, hf_api_url=unreachable))
    assert adapter.name == "web" and adapter.port.platform == "local"
    task = asyncio.create_task(adapter.run())
    async with asyncio.timeout(120):
        # uvicorn's `started` is a plain flag, no event to await.
        while not (adapter.status.ready and adapter._server.started):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as client:
        html = (await client.get(adapter.url() + "/")).text
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return html


async def test_first_start_posts_once_and_a_restart_does_not_post_again(
    core: PaperBot, capsys: pytest.CaptureFixture[str]
) -> None:
    html = await _serve_once(core)
    assert "paperbot is running: open http://127.0.0.1:" in capsys.readouterr().out
    assert html.count('class="pick"') == core.settings.picks_per_post
    info = core.subscription(CHANNEL)
    assert info is not None and info.status == "active"
    port = LocalPostingPort(core.db)
    first = port.history(CHANNEL)

    again = await _serve_once(core)

    assert port.history(CHANNEL) == first  # the ledger kept the second start from posting
    assert again.count('class="pick"') == len(first)


def _stored_with_another_model(core: PaperBot) -> set[str]:
    """A team's own papers, embedded by a model other than `core`'s (as after a change
    of PAPERBOT_EMBEDDING_MODEL): the core's catalogue is empty, the database is not."""
    earlier = HashingEmbedder()
    earlier.name = "an-earlier-model"
    before = PaperBot.open(core.db.url, embedder=earlier, settings=core.settings)
    papers = [
        paper(f"2510.{i:05d}", f"Our paper number {i}", f"On topic {i % 4} and more.")
        for i in range(20)
    ]
    before.ingest(papers)
    before.close()
    assert core.latest_day() is None
    return {p.id for p in papers}


async def test_first_start_embeds_stored_papers_rather_than_adding_the_sample(
    core: PaperBot,
) -> None:
    ours = _stored_with_another_model(core)

    html = await _serve_once(core)

    with core.db.read() as session:
        stored = set(session.scalars(sa.select(Paper.id)))
    assert stored == ours  # no sample paper among them
    assert core.latest_day() == DAY
    assert html.count('class="pick"') == core.settings.picks_per_post


def test_the_terminal_demo_embeds_stored_papers_rather_than_adding_the_sample(
    core: PaperBot,
) -> None:
    ours = _stored_with_another_model(core)
    out = io.StringIO()

    demo(core, Console(file=out, width=200))

    with core.db.read() as session:
        assert set(session.scalars(sa.select(Paper.id))) == ours
    assert "Empty database" not in out.getvalue()
    assert "Our paper number" in out.getvalue()


def test_the_terminal_demo_prints_a_title_with_rich_markup_as_text(core: PaperBot) -> None:
    # "[/]" closes nothing (rich raised), "[link=…]" would make a terminal hyperlink.
    title = "Why [/] breaks [link=https://evil.example]rich[/link] output"
    core.ingest([paper(title=title)])
    out = io.StringIO()
    demo(core, Console(file=out, width=200))
    assert title in out.getvalue()


async def test_an_unsubscribed_channel_stays_unsubscribed_after_a_restart(core: PaperBot) -> None:
    core.ingest([paper("2510.00001", "One paper", "Text.", day=DAY)])
    core.subscribe(CHANNEL, "09:00", "UTC")
    core.unsubscribe(CHANNEL)
    html = await _serve_once(core)
    info = core.subscription(CHANNEL)
    assert info is not None and info.status == "cancelled"
    assert 'class="pick"' not in html and "No posts in #papers yet." in html


def test_web_runs_without_credentials_and_only_on_request_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert enabled_adapters(load_settings()) == ["web"]
    monkeypatch.setenv("DISCORD_TOKEN", "x" * 30)
    assert enabled_adapters(load_settings()) == ["discord"]
    monkeypatch.setenv("PAPERBOT_WEB", "1")
    assert enabled_adapters(load_settings()) == ["discord", "web"]


def test_the_newest_days_go_first_until_a_full_post_is_possible() -> None:
    papers = list(SampleSource().fetch())
    first, rest = newest_first_batch(papers, picks=5)
    assert len(first) + len(rest) == len(papers)
    assert len(first) >= 15
    assert min(p.listed_on for p in first) > max(p.listed_on for p in rest)
    # A thin newest day pulls in the day before it.
    from datetime import timedelta

    thin = [paper("a", day=DAY), *(paper(f"b{i}", day=DAY - timedelta(days=1)) for i in range(20))]
    first, rest = newest_first_batch(thin, picks=5)
    assert len(first) == 21 and rest == []


FAKE_FEED_INGEST = """
from bot.embedding import HashingEmbedder
from bot.models import Paper
from bot.paperbot import PaperBot
from tests.helpers import paper
core = PaperBot.open(embedder=HashingEmbedder())
core.ingest([paper(f"2510.0000{i}", f"Feed paper {i}", "From the feed.") for i in range(6)])
"""


@pytest.mark.parametrize("feed_works", [True, False])
async def test_first_start_tries_the_feed_before_the_sample(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch, feed_works: bool
) -> None:
    """With a feed source in the build, one short `paperbot ingest --source hf` comes first."""
    from adapters.web import first_start

    real_find_spec = first_start.importlib.util.find_spec
    monkeypatch.setattr(
        first_start.importlib.util,
        "find_spec",
        lambda name: object() if name == "bot.sources.hf" else real_find_spec(name),
    )
    script = FAKE_FEED_INGEST if feed_works else "raise SystemExit('feed unreachable')"
    monkeypatch.setattr(first_start, "INGEST_COMMAND", [sys.executable, "-c", script])
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))

    html = await _serve_once(core)

    titles = re.findall(r'<h3 class="pick-title">.*?<bdi>(.*?)</bdi>', html, flags=re.S)
    assert len(titles) == 5
    assert all(t.startswith("Feed paper") for t in titles) == feed_works
    sample_ids = {p.id for p in SampleSource().fetch()}
    with core.db.read() as session:
        stored = set(session.scalars(sa.select(Paper.id)))
    assert bool(stored & sample_ids) != feed_works


async def test_on_postgresql_the_leading_scheduler_makes_the_first_post(
    postgres_url: str,
) -> None:
    """Another scheduler holds the leader lock: the page waits for its post, then shows it."""
    from bot import database
    from bot.embedding import HashingEmbedder
    from bot.scheduler import Leadership, tick

    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    leader = Leadership.posting(core.db, "local")
    assert await asyncio.to_thread(leader.acquire)
    unreachable = f"http://127.0.0.1:{unused_port()}/api/daily_papers"
    adapter = create_adapter(core, Settings(http_port=0, hf_api_url=unreachable))
    task = asyncio.create_task(adapter.run())
    try:
        async with asyncio.timeout(60):
            while "Waiting for the scheduler" not in adapter.status.message:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not adapter.status.ready
        report = await tick(core, {"local": adapter.port}, leadership={"local": leader})
        assert report.posted == 1
        async with asyncio.timeout(60):
            while not adapter.status.ready:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as client:
            html = (await client.get(adapter.url() + "/")).text
        assert html.count('class="pick"') == core.settings.picks_per_post
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(leader.release)
        core.close()


async def test_on_postgresql_paperbot_run_posts_through_its_own_scheduler_at_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`paperbot run`'s scheduler holds the posting lock; the web first start posts
    through it at once, instead of waiting up to a minute for its next tick."""
    from bot import database, runner

    database.upgrade(postgres_url)
    core = PaperBot.open(postgres_url, embedder=HashingEmbedder(), settings=Settings())
    unreachable = f"http://127.0.0.1:{unused_port()}/api/daily_papers"
    settings = Settings(http_port=0, hf_api_url=unreachable)
    port = LocalPostingPort(core.db)
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(runner.serve(core, settings, ["web"]))
    try:
        async with asyncio.timeout(120):
            # The first start's tick is done when it logs what came of it.
            while not (outcome := [m for m in caplog.messages if _first_start_outcome(m)]):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert outcome == ["first-start tick: posted today's picks to #papers"]
        assert not [m for m in caplog.messages if "another process is posting" in m]
        posts = await asyncio.to_thread(port.history, CHANNEL, 50)
        assert len(posts) == core.settings.picks_per_post
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        core.close()


def _first_start_outcome(message: str) -> bool:
    """A log line saying what came of the first start's tick."""
    return message.startswith("first-start tick") or "posts to #papers when it is due" in message


def test_next_to_slack_in_http_mode_the_web_adapter_needs_its_own_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapters.web import web_port
    from bot.settings import SettingsError

    monkeypatch.setenv("PAPERBOT_SLACK_MODE", "http")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s" * 32)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-" + "1" * 20)
    monkeypatch.setenv("PAPERBOT_WEB", "1")
    with pytest.raises(SettingsError, match="PAPERBOT_WEB_PORT"):
        web_port(load_settings())
    monkeypatch.setenv("PAPERBOT_WEB_PORT", "8081")
    assert web_port(load_settings()) == 8081
    monkeypatch.delenv("PAPERBOT_SLACK_MODE")
    monkeypatch.delenv("PAPERBOT_WEB_PORT")
    assert web_port(load_settings()) == 8080  # Socket Mode serves no port


def test_the_adapter_compiles_every_template_before_serving(
    sample_core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request compiles a template (or loads uvicorn's config) on the event loop."""
    adapter = create_adapter(sample_core, Settings(http_port=0))
    assert adapter._server.config.loaded  # serve() will not import its HTTP protocol on the loop
    env = adapter.app.state.templates.env

    def compiling_on_a_request(*args: object) -> None:
        pytest.fail(f"a request compiled a template: {args[-1]}")

    monkeypatch.setattr(env.loader, "get_source", compiling_on_a_request)
    with TestClient(adapter.app, base_url="http://127.0.0.1") as client:
        assert client.get("/").status_code == 200
        assert client.get("/profile").status_code == 200
        token = client.cookies["paperbot_csrf"]
        reply = client.post(
            "/api/command",
            json={"text": "/papers today"},
            headers={"Origin": "http://127.0.0.1", "X-CSRF-Token": token},
        )
    assert reply.status_code == 200 and 'class="pick"' in reply.text


@pytest.mark.parametrize("setting", ["PAPERBOT_HTTP_PORT", "PAPERBOT_WEB_PORT"])
async def test_a_taken_port_is_one_clear_settings_error(core: PaperBot, setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        field = setting.removeprefix("PAPERBOT_").lower()
        adapter = create_adapter(core, Settings(**{field: port}))
        with pytest.raises(
            SettingsError, match=rf"^{setting}: cannot listen on 127\.0\.0\.1:{port} "
        ):
            await adapter.run()


# A name that does not resolve, and an address no machine has (TEST-NET-1, RFC 5737).
@pytest.mark.parametrize("host", ["999.1.1.1", "192.0.2.1"])
async def test_an_address_that_is_not_this_machines_blames_the_host_not_the_port(
    core: PaperBot, host: str
) -> None:
    adapter = create_adapter(core, Settings(http_host=host, http_port=0))
    with pytest.raises(SettingsError) as raised:
        await adapter.run()
    assert str(raised.value).startswith(f"PAPERBOT_HTTP_HOST: cannot listen on {host} (")
    assert "PORT" not in str(raised.value) and "free port" not in str(raised.value)


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_binding_beyond_loopback_warns_that_the_page_has_no_login(
    core: PaperBot, caplog: pytest.LogCaptureFixture, host: str, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapters.web"):
        create_adapter(core, Settings(http_host=host, http_port=0))
    warnings = [r.getMessage() for r in caplog.records if "there is no login" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith(f"PAPERBOT_HTTP_HOST={host}: anyone who can reach")


def test_sigterm_stops_paperbot_run_as_cleanly_as_ctrl_c(tmp_path: Path) -> None:
    with running_paperbot(tmp_path, f"sqlite:///{tmp_path}/p.db", stop=signal.SIGTERM):
        pass  # leaving the block sends SIGTERM and requires exit status 0
    assert "Scheduler has been shut down" in log_of(tmp_path)
