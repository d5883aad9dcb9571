"""State-changing requests must come from our own page: Origin and the CSRF token."""

from __future__ import annotations

import pytest

from bot import logs
from bot.domain import Pick, UserRef
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.web.conftest import ORIGIN, WebClient

ALICE = UserRef("local", "demo", "alice")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing Origin header"),
        ({"Origin": "http://evil.example"}, "cross-origin request"),
        ({"Origin": "http://127.0.0.1:9999"}, "cross-origin request"),
        ({"Origin": ORIGIN}, "missing or wrong CSRF token"),
        ({"Origin": ORIGIN, "X-CSRF-Token": "x" * 43}, "missing or wrong CSRF token"),
    ],
)
def test_unsafe_requests_without_proof_are_refused_and_change_nothing(
    client: WebClient,
    sample_core: PaperBot,
    posted: list[Pick],
    headers: dict[str, str],
    why: str,
) -> None:
    client.csrf()  # the browser has a valid cookie; the attacker cannot read it
    body = {"paper_id": posted[0].paper_id, "kind": "up", "active": True}
    response = client.post("/api/feedback", json=body, headers=headers)
    assert response.status_code == 403
    assert why in response.text
    assert sample_core.profile(ALICE).likes == 0
    for path, payload in [
        ("/api/command", {"text": "/papers follow x"}),
        ("/api/forget", {}),
        ("/api/user", {"user": "bob"}),
    ]:
        assert client.post(path, json=payload, headers=headers).status_code == 403
    assert sample_core.profile(ALICE).follows == ()


def test_token_without_its_cookie_is_refused(
    client: WebClient, sample_core: PaperBot, posted: list[Pick]
) -> None:
    token = client.csrf()
    client.cookies.clear()
    response = client.post(
        "/api/feedback",
        json={"paper_id": posted[0].paper_id, "kind": "up", "active": True},
        headers={"Origin": ORIGIN, "X-CSRF-Token": token},
    )
    assert response.status_code == 403
    assert sample_core.profile(ALICE).likes == 0


def test_page_carries_the_cookie_token_and_keeps_it(client: WebClient) -> None:
    first = client.get("/")
    token = client.cookies["paperbot_csrf"]
    assert f'<meta name="csrf-token" content="{token}">' in first.text
    second = client.get("/")
    assert "set-cookie" not in second.headers  # one token per browser session
    assert f'content="{token}"' in second.text
    assert "HttpOnly" in first.headers["set-cookie"]
    assert "SameSite=Strict" in first.headers["set-cookie"]


def test_a_cross_site_request_cannot_forge_a_line_in_the_operators_log(
    client: WebClient, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    # Any page the user visits can send this POST; the refusal logs its path, decoded.
    logs.configure(Settings())
    forged = "/api/feedback%0A2026-01-01 00:00:00,000 INFO adapters.web: all is well"
    assert client.post(forged, json={}).status_code == 403
    # (The test client's own httpx line is printed too: only the refusal is ours.)
    lines = [line for line in capsys.readouterr().err.splitlines() if "httpx" not in line]
    assert len(lines) == 1
    assert lines[0].endswith(
        "refused POST /api/feedback\\n2026-01-01 00:00:00,000 INFO adapters.web: all is well: "
        "missing Origin header"
    )
