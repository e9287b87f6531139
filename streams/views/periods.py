"""Reporting periods of the area statistics: ISO weeks in UTC, when each closes, when it may publish.

A week "2026-W11" runs from Monday 00:00 UTC to the next Monday 00:00 UTC. It may be published
(frozen, once) only after it has closed AND a lag has passed AND nothing has changed in it for a
quiet interval (`streams.views.snapshots`): the lag leaves time for events recorded late (partners
record incidents hours or days after they happen), the quiet interval keeps a backlog that is still
being loaded from freezing half-counted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["is_closed", "next_week", "parse_week", "week_close", "week_start"]

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_week(week: str) -> tuple[int, int]:
    """(ISO year, ISO week) of "2026-W11"; ValueError for anything else, or a week the year lacks."""
    match = _WEEK.match(week)
    if match is None:
        raise ValueError(f"not an ISO week: {week!r} (expected e.g. 2026-W11)")
    year, number = int(match[1]), int(match[2])
    date.fromisocalendar(year, number, 1)  # raises ValueError for W00, W54, or W53 of a 52-week year
    return year, number


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of the week."""
    year, number = parse_week(week)
    return datetime.combine(date.fromisocalendar(year, number, 1), time(0), UTC)


def week_close(week: str) -> datetime:
    """The instant the week ends (the next Monday 00:00 UTC)."""
    return week_start(week) + timedelta(days=7)


def next_week(week: str) -> str:
    """The ISO week after `week` ("2026-W52" -> "2026-W53" or "2027-W01", as the calendar has it)."""
    year, number, _ = week_close(week).date().isocalendar()
    return f"{year}-W{number:02d}"


def is_closed(week: str, now: datetime, lag: timedelta = timedelta(0)) -> bool:
    """Has the week ended, and has `lag` passed since?"""
    return week_close(week) + lag <= now
