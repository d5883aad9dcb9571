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


@pytest.mark.parametrize(
    ("expression", "fired"),
    [
        # Both restricted: either matches, as in cron (APScheduler alone: both).
        ("40 2 1 * 1", ["Mon 23", "Mon 30", "Tue 01", "Mon 07"]),
        ("40 2 1,8 * sat", ["Sat 28", "Tue 01", "Sat 05", "Tue 08"]),
        # A field starting with "*" is not restricted: then both must match, as in
        # cron (days 1, 8, 15, 22, 29 that are Tuesdays, not Sunday the 29th).
        ("40 2 */7 * 2", ["Tue 01", "Tue 08"]),
        ("40 2 1 * *", ["Tue 01"]),
    ],
)
def test_a_day_and_a_weekday_fire_on_either_as_in_a_crontab(
    expression: str, fired: list[str]
) -> None:
    trigger = cron_trigger(expression)
    days, previous, now = [], None, SUNDAY
    while (now := trigger.get_next_fire_time(previous, now)) < SUNDAY + timedelta(days=16):
        days.append(f"{now:%a %d}")
        previous, now = now, now + timedelta(seconds=1)
    assert days == fired
