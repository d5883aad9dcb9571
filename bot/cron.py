"""Crontab expressions as cron reads them, for APScheduler 3.

Two differences from cron, both silent:

- APScheduler 3 numbers weekdays from Monday (0 = mon), while cron numbers them
  from Sunday (0 and 7 = sun): `40 2 * * 1-5` would run Tuesday to Saturday.
  Numeric weekdays are rewritten as names, which mean the same to both.
- Where both the day of the month and the weekday are restricted, cron runs
  on a day that matches either (`0 9 1 * 1`: the 1st, and every Monday);
  APScheduler only on a day that matches both. Such an expression becomes two
  triggers, one per field, either of which fires.
"""

from __future__ import annotations

import re
from datetime import UTC

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")


def cron_trigger(expression: str) -> BaseTrigger:
    """A five-field crontab expression (minute hour day month weekday), in UTC."""
    fields = expression.split()
    if len(fields) != 5:
        return CronTrigger.from_crontab(expression, timezone=UTC)  # its error names the fields
    fields[4] = weekdays_as_names(fields[4])
    minute, hour, day, month, weekday = fields
    # cron counts a field as restricted unless it starts with "*" ("*/2" is not).
    if not day.startswith("*") and not weekday.startswith("*"):
        return OrTrigger(
            [
                CronTrigger.from_crontab(f"{minute} {hour} {day} {month} *", timezone=UTC),
                CronTrigger.from_crontab(f"{minute} {hour} * {month} {weekday}", timezone=UTC),
            ]
        )
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)


def weekdays_as_names(field: str) -> str:
    """Cron's weekday field with every numeric part spelled out: "1-5" is "mon,tue,wed,thu,fri",
    "*/2" is "sun,tue,thu,sat". Named parts ("mon-fri") are kept; "*" alone stays "*"."""
    if field == "*":
        return field
    days: list[str] = []
    for part in field.split(","):
        match = _NUMERIC.fullmatch(part)
        if match is None:
            days.append(part)  # a name or a range of names: APScheduler reads those as cron does
            continue
        base, step = match.group(1), int(match.group(2) or 1)
        if base == "*":
            first, last = 0, 6
        else:
            start, _, end = base.partition("-")
            first, last = int(start), int(end or (7 if match.group(2) else start))
        if not 0 <= first <= last <= 7 or step < 1:
            raise ValueError(f"weekday {part!r} is not within 0-7 (0 and 7 are Sunday)")
        days += [_DAYS[d % 7] for d in range(first, last + 1, step)]
    return ",".join(dict.fromkeys(days))
