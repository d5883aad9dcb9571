"""Tenant isolation with generated, colliding tenants; `forget` over every user table in the metadata."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_for_hypothesis
from hypothesis import strategies as st
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers every table in SQLModel.metadata)
from bot import database
from bot.domain import ChannelRef, UserRef
from bot.embedding import HashingEmbedder
from bot.models import Subscription
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.helpers import topical_papers

pytestmark = pytest.mark.reliability

# Few values, so user ids and workspace ids collide across platforms and workspaces.
PLATFORMS = ("slack", "discord", "local")
WORKSPACES = ("T1", "1")
USER_IDS = ("U1", "1")
OPERATIONS = ("like", "dislike", "unlike", "save", "follow", "today", "forget")
TOPICS = ("diffusion", "graphs")

tenant_users = st.tuples(
    st.sampled_from(PLATFORMS), st.sampled_from(WORKSPACES), st.sampled_from(USER_IDS)
)
operations = st.lists(
    st.tuples(tenant_users, st.sampled_from(OPERATIONS), st.integers(0, 5)), max_size=14
)


def apply(core: PaperBot, user: UserRef, operation: str, n: int, papers: list[str]) -> None:
    paper = papers[n % len(papers)]
    if operation == "like":
        core.react(user, paper, +1)
    elif operation == "dislike":
        core.react(user, paper, -1)
    elif operation == "unlike":
        core.react(user, paper, +1, active=False)
    elif operation == "save":
        core.save(user, paper)
    elif operation == "follow":
        core.follow(user, TOPICS[n % len(TOPICS)])
    elif operation == "today":
        core.today(user)
    else:
        core.forget(user)


def observed(core: PaperBot, user: UserRef) -> tuple[object, ...]:
    """Everything a user can see of their own state."""
    profile = core.profile(user)
    return (profile.likes, profile.dislikes, profile.saved, profile.shown, sorted(profile.follows))


def test_generated_colliding_tenants_never_see_each_others_data(
    sqlite_url: str, settings: Settings, tmp_path: Path
) -> None:
    database.upgrade(sqlite_url)
    seeded = PaperBot.open(sqlite_url, embedder=HashingEmbedder(), settings=settings)
    seeded.ingest(topical_papers(2))
    seeded.close()
    papers = [p.id for p in topical_papers(2)]
    copies = itertools.count()

    def fresh_core() -> PaperBot:
        # A copy of the seeded file: a database of its own, so no leak can hide in a shared one.
        path = tmp_path / f"copy{next(copies)}.db"
        shutil.copyfile(sqlite_url.removeprefix("sqlite:///"), path)
        return PaperBot.open(f"sqlite:///{path}", embedder=HashingEmbedder(), settings=settings)

    @settings_for_hypothesis(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(ops=operations)
    def check(ops: list[tuple[tuple[str, str, str], str, int]]) -> None:
        together = fresh_core()
        for key, operation, n in ops:
            apply(together, UserRef(*key), operation, n, papers)
        # Replay each tenant's operations alone: what it sees must be exactly the same,
        # whatever the tenants that share its user id or workspace id did meanwhile.
        for key in {key for key, _, _ in ops}:
            alone = fresh_core()
            for other, operation, n in ops:
                if other == key:
                    apply(alone, UserRef(*key), operation, n, papers)
            assert observed(together, UserRef(*key)) == observed(alone, UserRef(*key)), key
            alone.close()
        together.close()

    check()


# The one table that must outlive a forget: the request itself, as a digest of the
# id, so that reading back the emoji left on recent posts does not undo it.
FORGET_REQUESTS = "forget_requests"


def user_tables() -> list[sa.Table]:
    """Every table with a column naming a user, found independently of bot.privacy."""
    return [
        table
        for table in SQLModel.metadata.sorted_tables
        if any("user" in column.name for column in table.columns) and table.name != FORGET_REQUESTS
    ]


def forget_requests(core: PaperBot) -> list[tuple[str, ...]]:
    table = SQLModel.metadata.tables[FORGET_REQUESTS]
    with core.db.read() as session:
        return [tuple(map(str, row)) for row in session.execute(sa.select(table))]


def rows_of(core: PaperBot, user: UserRef) -> dict[str, int]:
    with core.db.read() as session:
        return {
            table.name: session.scalar(
                sa.select(sa.func.count())
                .select_from(table)
                .where(
                    table.c.platform == user.platform,
                    table.c.workspace == user.workspace,
                    table.c.user_id == user.user,
                )
            )
            or 0
            for table in user_tables()
        }


def test_every_user_table_is_keyed_by_tenant() -> None:
    # forget can only find a user's rows where the tenant is part of the key.
    assert user_tables(), "no user table found: the metadata was not loaded"
    for table in user_tables():
        assert {"platform", "workspace", "user_id"} <= set(table.columns.keys()), table.name


def test_forget_clears_every_user_table_in_that_tenant_only_and_twice_is_harmless(
    core: PaperBot,
) -> None:
    core.ingest(topical_papers(2))
    papers = [p.id for p in topical_papers(2)]
    target = UserRef("slack", "T1", "U1")
    same_id_elsewhere = [
        replace(target, workspace="T2"),
        replace(target, platform="discord"),
        UserRef("local", "T1", "U1"),
    ]
    for user in [target, *same_id_elsewhere]:
        core.react(user, papers[0], +1)
        core.react(user, papers[1], -1)
        core.save(user, papers[2])
        core.follow(user, "diffusion")
        core.today(user)
        core.profile(user)  # keeps the learned interests in user_interest_profiles

    before = {user: rows_of(core, user) for user in same_id_elsewhere}
    # The scenario must put rows in every user table, or forget is not tested there:
    # a new table with a user column fails here until the scenario fills it too.
    empty = [name for name, count in rows_of(core, target).items() if count == 0]
    assert not empty, f"extend this test to store rows in: {empty}"

    assert core.forget(target) > 0
    assert set(rows_of(core, target).values()) == {0}
    assert {user: rows_of(core, user) for user in same_id_elsewhere} == before
    # Only the request is left: one row, in the tenant, without the id in the clear.
    (request,) = forget_requests(core)
    assert request[:2] == (target.platform, target.workspace)
    assert not any(target.user in value for value in request[2:])

    assert core.forget(target) == 0  # twice is harmless
    assert len(forget_requests(core)) == 1
    assert set(rows_of(core, target).values()) == {0}
    assert {user: rows_of(core, user) for user in same_id_elsewhere} == before


def test_forget_erases_the_user_as_author_in_their_tenant_only(core: PaperBot) -> None:
    target = UserRef("slack", "T1", "U1")
    made = [
        ChannelRef("slack", "T1", "C1"),
        ChannelRef("slack", "T2", "C1"),
        ChannelRef("discord", "T1", "C1"),
    ]
    for channel in made:
        core.subscribe(channel, "09:00", "UTC", by=target.user)
    assert core.forget(target) == 1  # the subscription stays for the channel, without its author
    with core.db.read() as session:
        rows = session.execute(
            sa.select(Subscription.platform, Subscription.workspace, Subscription.created_by)
        ).all()
    authors = {(platform, workspace): by for platform, workspace, by in rows}
    assert authors == {("slack", "T1"): None, ("slack", "T2"): "U1", ("discord", "T1"): "U1"}
    assert all(core.subscription(channel) is not None for channel in made)
