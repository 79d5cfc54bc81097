"""Calendar-aligned windows: budget periods in a named zone, rate-limit minutes in UTC."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware. Injected everywhere so tests can move time."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO week: starts Monday 00:00
    MONTH = "month"


# The last window of each (period, zone), reused while `now` is in it: every reservation and
# usage record asks, and a window changes once a day at most. Its bounds are kept in UTC too:
# comparing `now` (UTC) with them skips the zone's offset lookups.
_LAST_WINDOW: dict[tuple[Period, str], tuple[tuple[datetime, datetime], datetime, datetime]] = {}


def budget_window(now: datetime, period: Period, tz: str = "UTC") -> tuple[datetime, datetime]:
    """[start, end) of the period containing ``now``, as aware datetimes in ``tz``; the same
    tuple for every ``now`` in it.

    Boundaries are local midnights, so a day across a DST change is 23 or 25 hours long.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    last = _LAST_WINDOW.get((period, tz))
    if last is not None and last[1] <= now < last[2]:
        return last[0]
    window = _window(now, period, tz)
    _LAST_WINDOW[(period, tz)] = (window, window[0].astimezone(UTC), window[1].astimezone(UTC))
    return window


def _window(now: datetime, period: Period, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    if period is Period.DAY:
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        end_date = start.date() + timedelta(days=1)
    elif period is Period.WEEK:
        monday = local.date() - timedelta(days=local.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
        end_date = monday + timedelta(days=7)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end_date = start.date().replace(year=year, month=month)
    end = datetime(end_date.year, end_date.month, end_date.day, tzinfo=zone)
    return start, end


def minute_window(now: datetime) -> tuple[datetime, datetime]:
    """The UTC wall-clock minute containing ``now`` (fixed rate-limit window)."""
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)
