"""SIGKILL `paperbot tick` at each step of the delivery protocol, restart it: one post per day.

The steps are hooks in bot/deliveries.py (PAPERBOT_TEST_CRASH_AT): before the
claim, after the claim, after the send, after recording the messages.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter

import pytest
import sqlalchemy as sa

from bot import database, deliveries
from bot.domain import ChannelRef
from bot.embedding import HashingEmbedder
from bot.models import Delivery, LocalMessage, PostedMessage
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource
from tests.helpers import PAPERBOT, subprocess_env

CHANNELS = [ChannelRef("local", "crash", f"#c{i}") for i in range(3)]
PICKS = 3
DAY = "2025-11-24"


def tick(url: str, at: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(PAPERBOT_DATABASE_URL=url, PAPERBOT_EMBEDDING_MODEL="hashing")
    if crash_at:
        env[deliveries.CRASH_ENV] = crash_at
    return subprocess.run(
        [*PAPERBOT, "tick", "--now", f"{DAY}T{at}Z"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def subscribed(migrated_url: str) -> str:
    core = PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=Settings())
    core.ingest(SampleSource().fetch())
    for channel in CHANNELS:
        core.subscribe(channel, "09:00", "UTC", limit=PICKS)
    core.close()
    return migrated_url


@pytest.mark.slow
@pytest.mark.parametrize("step", deliveries.CRASH_STEPS)
def test_killed_at_any_step_then_restarted_posts_each_channel_day_once(
    subscribed: str, step: str
) -> None:
    killed = tick(subscribed, "09:00", crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    # A restart while the dead claimer's lease still runs must not touch its row.
    early = tick(subscribed, "09:01")
    assert early.returncode == 0, early.stderr[-2000:]
    # After the lease, the row is taken over and finished with the same picks and key.
    late = tick(subscribed, "09:12")
    assert late.returncode == 0, late.stderr[-2000:]

    db = database.Database(subscribed)
    with db.read() as session:
        messages = session.scalars(sa.select(LocalMessage)).all()
        rows = session.scalars(sa.select(Delivery)).all()
        posted = session.scalars(sa.select(PostedMessage)).all()
    db.dispose()
    per_channel = Counter(m.channel_id for m in messages)
    assert per_channel == {c.channel: PICKS for c in CHANNELS}
    assert len({m.idempotency_key for m in messages}) == len(messages)
    assert sorted((r.channel_id, r.status) for r in rows) == [
        (c.channel, "confirmed") for c in CHANNELS
    ]
    for row in rows:
        shown = [m.paper_id for m in messages if m.channel_id == row.channel_id]
        assert shown == row.paper_ids  # the retry re-sent the picks chosen at claim time
    assert Counter(p.channel_id for p in posted) == per_channel
