"""Every row about a user, channel, reaction or subscription is keyed by (platform, workspace)."""

import pytest
from sqlmodel import SQLModel

import bot.models  # noqa: F401
from bot.paperbot import PaperBot
from tests.helpers import channel, topical_papers, user

TENANT_TABLES = [
    "users",
    "reactions",
    "follows",
    "user_interest_profiles",
    "impressions",
    "channels",
    "subscriptions",
    "posted_messages",
    "processed_events",
]


@pytest.mark.parametrize("name", TENANT_TABLES)
def test_tenant_columns_lead_the_primary_key(name: str) -> None:
    table = SQLModel.metadata.tables[name]
    keys = [c.name for c in table.primary_key.columns]
    assert keys[:2] == ["platform", "workspace"], keys


def test_deliveries_are_unique_per_tenant_channel_and_day() -> None:
    table = SQLModel.metadata.tables["deliveries"]
    uniques = [
        tuple(c.name for c in con.columns)
        for con in table.constraints
        if con.__class__.__name__ == "UniqueConstraint"
    ]
    assert ("platform", "workspace", "channel_id", "day") in uniques


def test_same_user_id_in_two_workspaces_never_mixes(core: PaperBot) -> None:
    core.ingest(topical_papers())
    a, b = user("U1", "T1"), user("U1", "T2")
    core.react(a, "2500.00001", +1)
    core.follow(b, "graph neural networks")
    assert core.profile(a).likes == 1 and core.profile(a).follows == ()
    assert core.profile(b).likes == 0 and core.profile(b).follows == ("graph neural networks",)
    assert core.forget(b) > 0
    assert core.profile(a).likes == 1


def test_taking_back_feedback_in_one_tenant_leaves_the_same_id_elsewhere(core: PaperBot) -> None:
    core.ingest(topical_papers())
    here = user("U1", "T1")
    others = [user("U1", "T2"), user("U1", "T1", platform="discord")]
    for who in (here, *others):
        core.react(who, "2500.00001", +1)
        core.save(who, "2500.00001")
    core.react(here, "2500.00001", +1, active=False)
    core.save(here, "2500.00001", active=False)
    assert core.feedback_states(here) == {}
    for who in others:
        assert (core.profile(who).likes, core.profile(who).saved) == (1, 1)


def test_subscriptions_are_per_tenant(core: PaperBot) -> None:
    core.subscribe(channel("C1", "T1"), "09:00", "Europe/Berlin")
    assert core.subscription(channel("C1", "T2")) is None
    assert core.subscription(channel("C1", "T1", platform="discord")) is None
    assert core.subscription(channel("C1", "T1")) is not None


def test_cancel_tenant_cancels_only_that_tenant(core: PaperBot) -> None:
    core.subscribe(channel("C1", "T1"), "09:00", "UTC")
    core.subscribe(channel("C2", "T1"), "10:00", "UTC")
    core.subscribe(channel("C1", "T2"), "09:00", "UTC")
    assert core.cancel_tenant("slack", "T1") == 2
    assert core.subscription(channel("C1", "T1")).status == "cancelled"  # type: ignore[union-attr]
    assert core.subscription(channel("C1", "T2")).status == "active"  # type: ignore[union-attr]
