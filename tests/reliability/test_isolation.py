"""Tenant isolation and the right to be forgotten (issue 9), on SQLite and PostgreSQL.

A tenant is (platform, workspace). The generated tenants deliberately reuse the
same user and channel ids across platforms and workspaces: "U1" in Slack team
T1, in Slack team T2 and in Discord guild T1 are three different people.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel

from bot import ChannelRef, PaperBot, UserRef, database, privacy
from bot.embedding import HashingEmbedder
from bot.feedback import ReactionEvent
from bot.settings import Settings
from tests.helpers import topical_papers

pytestmark = pytest.mark.reliability

PLATFORMS = ("slack", "discord")
WORKSPACES = ("T1", "T2")
IDS = ("U1", "U2")
CHANNELS = ("C1", "C2")
PAPERS = [p.id for p in topical_papers(per_topic=3)]
TITLES = {p.id: p.title for p in topical_papers(per_topic=3)}


@pytest.fixture
def url(database_url: str) -> str:
    database.upgrade(database_url)
    return database_url


@pytest.fixture
def bot(url: str) -> Iterator[PaperBot]:
    core = PaperBot.open(url, embedder=HashingEmbedder(), settings=Settings(lookback_days=0))
    core.ingest(topical_papers(per_topic=3))
    yield core
    core.close()


# ---------------------------------------------------------------------- property: isolation
@dataclass(frozen=True)
class React:
    user: UserRef
    paper: str
    signal: int
    active: bool


@dataclass(frozen=True)
class ChannelReact:
    channel: ChannelRef
    user: str
    paper: str


@dataclass(frozen=True)
class Follow:
    user: UserRef
    topic: str


users = st.builds(
    UserRef, st.sampled_from(PLATFORMS), st.sampled_from(WORKSPACES), st.sampled_from(IDS)
)
channels = st.builds(
    ChannelRef, st.sampled_from(PLATFORMS), st.sampled_from(WORKSPACES), st.sampled_from(CHANNELS)
)
operations = st.lists(
    st.one_of(
        st.builds(React, users, st.sampled_from(PAPERS), st.sampled_from((1, -1)), st.booleans()),
        st.builds(ChannelReact, channels, st.sampled_from(IDS), st.sampled_from(PAPERS)),
        st.builds(Follow, users, st.sampled_from(("diffusion", "speech", "graphs"))),
    ),
    max_size=25,
)


def _reset(core: PaperBot) -> None:
    """Empty every table about people and channels; keep the papers."""
    with core.db.write() as session:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if "platform" in table.columns:
                session.execute(sa.delete(table))


def _expected_signal(ops: list[object], who: UserRef, paper: str) -> int:
    """What the user's feedback on `paper` must be, from THEIR operations only."""
    up = down = None
    for step, op in enumerate(ops):
        if isinstance(op, React) and op.user == who and op.paper == paper:
            stamp = step if op.active else None
            if op.signal > 0:
                up = stamp
            else:
                down = stamp
        if isinstance(op, ChannelReact) and op.paper == paper:
            c = op.channel
            if UserRef(c.platform, c.workspace, op.user) == who:
                up = step
    if up is not None and (down is None or up >= down):
        return 1
    return -1 if down is not None else 0


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_no_read_or_write_crosses_a_tenant(bot: PaperBot, ops: list[object]) -> None:
    _reset(bot)
    for i, op in enumerate(ops):
        if isinstance(op, React):
            bot.react(op.user, op.paper, op.signal, op.active)
        elif isinstance(op, ChannelReact):
            c = op.channel
            message = f"m-{op.paper}"
            bot.record_posts(c, [(message, op.paper)])
            event = ReactionEvent(
                c.platform, c.workspace, c.channel, message, op.user, "👍", True, f"e{i}"
            )
            assert bot.handle_reaction(event) == op.paper
        else:
            bot.follow(op.user, op.topic)

    for platform in PLATFORMS:
        for workspace in WORKSPACES:
            for uid in IDS:
                who = UserRef(platform, workspace, uid)
                expected = [_expected_signal(ops, who, p) for p in PAPERS]
                profile = bot.profile(who)
                assert (profile.likes, profile.dislikes) == (expected.count(1), expected.count(-1))
                follows = {op.topic for op in ops if isinstance(op, Follow) and op.user == who}
                assert set(profile.follows) == follows
                liked_titles = {TITLES[p] for p, s in zip(PAPERS, expected, strict=True) if s > 0}
                for pick in bot.today(who, limit=5):
                    # A "you liked" reason can only name a paper THIS user liked.
                    if pick.reason.startswith("close to '"):
                        quoted = pick.reason.removeprefix("close to '").rsplit("' that", 1)[0]
                        assert any(t.startswith(quoted.rstrip("…")) for t in liked_titles)
            for cid in CHANNELS:
                room = ChannelRef(platform, workspace, cid)
                posted = {
                    op.paper for op in ops if isinstance(op, ChannelReact) and op.channel == room
                }
                # Posts in a same-named channel of another tenant hide nothing here.
                picks = {p.paper_id for p in bot.channel_picks(room, limit=10)}
                if len(posted) < len(PAPERS):
                    assert not picks & posted
                else:  # everything was posted here: repeat rather than post nothing
                    assert len(picks) == 10


# ---------------------------------------------------------------------- forget
def _user_column_tables() -> list[sa.Table]:
    """Every table with a user column, straight from the metadata: new tables are covered."""
    return [
        t
        for t in SQLModel.metadata.sorted_tables
        if "platform" in t.columns and ("user_id" in t.columns or "created_by" in t.columns)
    ]


def _rows_about(core: PaperBot, table: sa.Table, who: UserRef) -> int:
    column = table.c.user_id if "user_id" in table.columns else table.c.created_by
    with core.db.read() as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                table.c.platform == who.platform,
                table.c.workspace == who.workspace,
                column == who.user,
            )
        )


def _use_everything(core: PaperBot, who: UserRef) -> None:
    """Leave a row about `who` in every table that can hold one."""
    room = ChannelRef(who.platform, who.workspace, f"C-{who.user}")
    core.react(who, PAPERS[0], +1)
    core.react(who, PAPERS[5], -1)
    core.save(who, PAPERS[7])
    core.follow(who, "diffusion models")
    core.today(who, limit=3)
    core.subscribe(room, "09:00", "UTC", by=who.user)
    core.record_posts(room, [("m1", PAPERS[9])])
    event = ReactionEvent(
        who.platform, who.workspace, room.channel, "m1", who.user, "👍", True, f"ev-{who.user}"
    )
    core.handle_reaction(event)
    core.profile(who)  # keeps the learned interests in user_interest_profiles


def test_forget_covers_every_user_table_and_only_that_tenant(bot: PaperBot) -> None:
    me = UserRef("slack", "T1", "U1")
    namesakes = [UserRef("slack", "T2", "U1"), UserRef("discord", "T1", "U1")]
    neighbour = UserRef("slack", "T1", "U2")
    for who in (me, *namesakes, neighbour):
        _use_everything(bot, who)
    tables = _user_column_tables()
    assert {t.name for t in privacy.user_tables()} <= {t.name for t in tables}
    for table in tables:  # the scenario really reaches every table, or this test is blind
        assert _rows_about(bot, table, me) > 0, table.name
    others_before = {(t.name, w): _rows_about(bot, t, w) for t in tables for w in namesakes}
    neighbour_before = {t.name: _rows_about(bot, t, neighbour) for t in tables}

    removed = bot.forget(me)

    assert removed == sum(others_before[(t.name, namesakes[0])] for t in tables)
    for table in tables:
        assert _rows_about(bot, table, me) == 0, table.name
        assert _rows_about(bot, table, neighbour) == neighbour_before[table.name]
        for w in namesakes:
            assert _rows_about(bot, table, w) == others_before[(table.name, w)]
    assert bot.forget(me) == 0  # twice is harmless
    assert bot.subscription(ChannelRef("slack", "T1", "C-U1")) is not None  # the channel keeps it
    profile = bot.profile(me)
    assert (profile.likes, profile.dislikes, profile.saved, profile.shown) == (0, 0, 0, 0)
    assert profile.follows == () and profile.interests == ()
    assert bot.profile(namesakes[0]).likes == 2
