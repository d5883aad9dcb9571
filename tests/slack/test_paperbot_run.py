"""`paperbot run` with Slack credentials starts this adapter (HTTP mode), as a real process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from tests.fakes.slack_server import FakeSlack
from tests.helpers import PAPERBOT, subprocess_env, unused_port
from tests.slack.slack_requests import BOT_TOKEN, SIGNING_SECRET, signed_headers, slash_body


async def wait_until_listening(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.post(url, data="") as response:
                    if response.status == 401:  # up, and refusing unsigned requests
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"paperbot run exited with {process.returncode}")


async def test_paperbot_run_serves_slack_events(fake_slack: FakeSlack, tmp_path: Path) -> None:
    port = unused_port()
    env = subprocess_env(
        PAPERBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'paperbot.db'}",
        PAPERBOT_EMBEDDING_MODEL="hashing",
        PAPERBOT_SLACK_MODE="http",
        PAPERBOT_HTTP_PORT=str(port),
        PAPERBOT_SLACK_API_URL=fake_slack.api_url,
        PAPERBOT_WEB="0",
        PAPERBOT_LOG_LEVEL="DEBUG",  # even debug logs must not show secrets
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
    )
    process = await asyncio.create_subprocess_exec(
        *PAPERBOT,
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        await wait_until_listening(url, process)
        body = slash_body("follow speech recognition", fake_slack.response_url())
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=signed_headers(body)) as response,
        ):
            assert response.status == 200
        await fake_slack.wait_for(lambda: fake_slack.responses)
        assert fake_slack.responses[0]["text"].startswith("Following: speech recognition")
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    logs = stderr.decode()
    assert "DEBUG" in logs and "slack: serving /slack/events" in logs
    assert BOT_TOKEN not in logs and SIGNING_SECRET not in logs
