"""`paperbot run` with Slack credentials starts this adapter (HTTP mode), as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import sys
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


# `paperbot run` in which SIGTERM arrives while a finaliser runs, as it may when
# the garbage collector happens to free an object at that moment.
SIGTERM_IN_A_FINALISER = """
import asyncio, gc, os, signal, sys
from bot import cli, runner

serve = runner.serve


class SendsSigterm:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):  # Python runs signal handlers between bytecodes: here
            pass


def collect_one() -> None:
    garbage = SendsSigterm()
    garbage.cycle = garbage  # freed by the collector, as aiohttp's sessions were
    del garbage
    gc.collect()


async def serving(*args, **kwargs):
    asyncio.get_running_loop().call_later(2.0, collect_one)
    await serve(*args, **kwargs)


runner.serve = serving
sys.argv = ["paperbot", "run"]
cli.app()
"""


async def test_sigterm_stops_paperbot_run_even_when_it_arrives_in_a_finaliser(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # Slack's HTTP mode leaves signals to us (uvicorn, under the web page, has its own).
    env = subprocess_env(
        PAPERBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'paperbot.db'}",
        PAPERBOT_EMBEDDING_MODEL="hashing",
        PAPERBOT_SLACK_MODE="http",
        PAPERBOT_HTTP_PORT=str(unused_port()),
        PAPERBOT_SLACK_API_URL=fake_slack.api_url,
        PAPERBOT_WEB="0",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SIGTERM_IN_A_FINALISER,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Before, the KeyboardInterrupt it became was printed as "Exception ignored
        # in" and dropped, and the process served on: this timed out.
        async with asyncio.timeout(60):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
    logs = stderr.decode()
    assert process.returncode == 0, logs[-2000:]
    assert "stopped" in logs and "Exception ignored" not in logs
