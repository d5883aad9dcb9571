"""Start `paperbot run` (this checkout's code) as a subprocess and find the URL it prints."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import PAPERBOT, subprocess_env, unused_port

_URL = re.compile(r"open (http://127\.0\.0\.1:\d+)")


@contextmanager
def running_paperbot(
    workdir: Path,
    database_url: str,
    *,
    deadline: float = 60.0,
    stop: signal.Signals = signal.SIGINT,
    **env: str,
) -> Iterator[str]:
    """Yield the base URL of a `paperbot run` serving the web adapter on a free port.

    Output goes to files in `workdir`, shown in the failure message if the
    process dies or prints no URL before `deadline` seconds. At the end it is
    sent `stop` and must exit cleanly.
    """
    out, err = workdir / "paperbot.out", workdir / "paperbot.err"
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*PAPERBOT, "run"],
            cwd=workdir,
            stdout=stdout,
            stderr=stderr,
            env=subprocess_env(
                PAPERBOT_DATABASE_URL=database_url,
                PAPERBOT_HTTP_PORT="0",  # the adapter prints the port it bound
                # No feed is reachable, as on an offline laptop: a closed local port.
                PAPERBOT_HF_API_URL=f"http://127.0.0.1:{unused_port()}/api/daily_papers",
                **env,
            ),
        )
        try:
            url = None
            while url is None:
                match = _URL.search(out.read_text())
                if match:
                    url = match.group(1)
                elif process.poll() is not None or time.monotonic() - started > deadline:
                    raise AssertionError(
                        f"paperbot run printed no URL (exit {process.poll()}):\n"
                        + err.read_text()[-4000:]
                    )
                else:
                    time.sleep(0.2)
            yield url
            # Ctrl-C (or SIGTERM) stops everything cleanly, even with an ingest in progress.
            process.send_signal(stop)
            assert process.wait(timeout=60) == 0, err.read_text()[-4000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def log_of(workdir: Path) -> str:
    return (workdir / "paperbot.err").read_text()


@contextmanager
def serving_in_thread(app: object) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yield its URL."""
    import asyncio
    import threading

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")  # type: ignore[arg-type]
    )
    # (uvicorn leaves signal handling alone outside the main thread.)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - started > 30:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
