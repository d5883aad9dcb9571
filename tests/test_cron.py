"""PAPERBOT_INGEST_CRON is read as cron reads it, though APScheduler 3 numbers weekdays from Monday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.cron import cron_trigger
from bot.settings import Settings

SUNDAY = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def weekdays_fired(expression: str, days: int = 7) -> list[str]:
    """The weekdays (Mon..Sun) on which the trigger fires in the week after SUNDAY noon."""
    trigger = cron_trigger(expression)
    fired, previous, now = [], None, SUNDAY
    while (now := trigger.get_next_fire_time(previous, now)) < SUNDAY + timedelta(days=days):
        fired.append(f"{now:%a}")
        previous, now = now, now + timedelta(seconds=1)
    return fired


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("40 2 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("40 2 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("40 2 * * 0", ["Sun"]),
        ("40 2 * * 7", ["Sun"]),
        ("40 2 * * 6,0", ["Sat", "Sun"]),
        ("40 2 * * */2", ["Tue", "Thu", "Sat", "Sun"]),
        ("40 2 * * 1-5/2", ["Mon", "Wed", "Fri"]),
        ("40 2 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_weekdays_mean_what_they_mean_in_a_crontab(expression: str, days: list[str]) -> None:
    assert weekdays_fired(expression) == days


def test_a_weekday_cron_does_not_know_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="0 and 7 are Sunday"):
        cron_trigger("40 2 * * 8")
    with pytest.raises(ValueError, match=r"five-field cron expression .*0 and 7 are Sunday"):
        Settings(ingest_cron="40 2 * * 8")
