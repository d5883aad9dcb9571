"""Multi-workspace: Bolt's OAuth flow stores tokens in slack-sdk's tables on our database;
uninstalling or revoking deletes them and cancels the workspace's subscriptions."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp

from adapters.slack import SlackAdapter, create_adapter
from adapters.slack.installations import BOTS_TABLE, INSTALLATIONS_TABLE, STATES_TABLE
from bot.domain import ChannelRef
from bot.posting import MissingPermission
from bot.settings import Settings
from tests.fakes.slack_server import FakeSlack
from tests.slack.slack_requests import (
    HERE,
    ME,
    SIGNING_SECRET,
    TEAM,
    RecordingCore,
    dispatch,
    event_body,
    reaction,
)

INSTALLED_TOKEN = f"xoxb-{TEAM}-installed"


@pytest.fixture
def adapter(papers_core: RecordingCore, fake_slack: FakeSlack) -> SlackAdapter:
    settings = Settings(
        SLACK_CLIENT_ID="111.222",
        SLACK_CLIENT_SECRET="client-secret",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        slack_mode="http",
        embedding_model="hashing",
    )
    assert settings.slack_enabled
    return create_adapter(papers_core, settings)  # type: ignore[arg-type]


def rows(core: RecordingCore, table: str) -> list[dict]:
    with core.db.read() as session:
        return [dict(r) for r in session.execute(sa.text(f"SELECT * FROM {table}")).mappings()]  # noqa: S608  (fixed table names)


async def oauth_install(app: AsyncApp) -> None:
    """What a browser does: open /slack/install, follow Slack back to /slack/oauth_redirect."""
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app.web_app())) as browser:
        page = await browser.get("/slack/install", allow_redirects=False)
        assert page.status == 200
        link = re.search(r'href="(https://slack.com/oauth/v2/authorize[^"]+)"', await page.text())
        assert link is not None
        query = parse_qs(urlparse(link.group(1).replace("&amp;", "&")).query)
        assert "chat:write" in query["scope"][0].split(",")
        cookie = page.headers["Set-Cookie"].split(";")[0]
        back = await browser.get(
            "/slack/oauth_redirect",
            params={"code": "the-code", "state": query["state"][0]},
            headers={"Cookie": cookie},
        )
        assert back.status == 200, await back.text()


async def test_install_stores_the_workspace_tokens_and_the_port_uses_them(
    adapter: SlackAdapter, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    await oauth_install(adapter.app)
    (bot,) = rows(papers_core, BOTS_TABLE)
    assert (bot["team_id"], bot["bot_token"]) == (TEAM, INSTALLED_TOKEN)
    assert rows(papers_core, STATES_TABLE) == []  # the state was consumed
    access = fake_slack.calls_to("oauth.v2.access")
    assert len(access) == 1 and access[0].params["code"] == "the-code"

    # Events from the workspace are authorised with its stored token.
    papers_core.record_posts(HERE, [("1700000001.000100", "2500.00000")])
    response = await dispatch(
        adapter.app, event_body(reaction("reaction_added", "+1", "1700000001.000100"))
    )
    assert response.status == 200
    assert papers_core.profile(ME).likes == 1

    await adapter.port.send_notice(HERE, "hello", "k")
    assert fake_slack.calls_to("chat.postMessage")[0].token == INSTALLED_TOKEN


async def test_an_event_from_a_workspace_that_never_installed_is_refused(
    adapter: SlackAdapter, papers_core: RecordingCore
) -> None:
    papers_core.record_posts(HERE, [("1700000001.000100", "2500.00000")])
    await dispatch(adapter.app, event_body(reaction("reaction_added", "+1", "1700000001.000100")))
    assert "handle_reaction" not in papers_core.called


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"oauth": ["UINSTALLER"], "bot": ["UBOT"]}},
    ],
)
async def test_uninstall_or_revoked_bot_token_deletes_tokens_and_cancels_subscriptions(
    adapter: SlackAdapter, papers_core: RecordingCore, event: dict
) -> None:
    await oauth_install(adapter.app)
    papers_core.subscribe(HERE, "09:00", "UTC")
    other = ChannelRef("slack", "T2", "C1")
    papers_core.subscribe(other, "09:00", "UTC")

    response = await dispatch(adapter.app, event_body(event, event_id="EvBye"))
    assert response.status == 200
    assert rows(papers_core, BOTS_TABLE) == []
    assert rows(papers_core, INSTALLATIONS_TABLE) == []
    assert papers_core.subscription(HERE).status == "cancelled"  # type: ignore[union-attr]
    assert papers_core.subscription(other).status == "active"  # type: ignore[union-attr]
    with pytest.raises(MissingPermission):  # no token left to post with
        await adapter.port.send_notice(HERE, "hello", "k")


async def test_revoking_only_a_user_token_keeps_the_bot(
    adapter: SlackAdapter, papers_core: RecordingCore
) -> None:
    await oauth_install(adapter.app)
    papers_core.subscribe(HERE, "09:00", "UTC")
    event = {"type": "tokens_revoked", "tokens": {"oauth": ["USOMEONE"], "bot": []}}
    assert (await dispatch(adapter.app, event_body(event))).status == 200
    assert len(rows(papers_core, BOTS_TABLE)) == 1
    assert papers_core.subscription(HERE).status == "active"  # type: ignore[union-attr]
