from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ext_proc.state.periods import Period, budget_window, minute_window


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "period", "tz", "start", "end"),
    [
        (utc(2025, 3, 14, 12), Period.DAY, "UTC", utc(2025, 3, 14), utc(2025, 3, 15)),
        # Friday -> ISO week from Monday 10th
        (utc(2025, 3, 14, 12), Period.WEEK, "UTC", utc(2025, 3, 10), utc(2025, 3, 17)),
        (utc(2025, 12, 31, 23, 59), Period.MONTH, "UTC", utc(2025, 12, 1), utc(2026, 1, 1)),
        (utc(2024, 2, 29, 1), Period.MONTH, "UTC", utc(2024, 2, 1), utc(2024, 3, 1)),
        # 01:00 UTC on the 1st is still the previous month in Los Angeles (UTC-8)
        (
            utc(2025, 3, 1, 1),
            Period.MONTH,
            "America/Los_Angeles",
            utc(2025, 2, 1, 8),
            utc(2025, 3, 1, 8),
        ),
        # The day DST starts in Europe is 23 hours long
        (
            utc(2025, 3, 30, 12),
            Period.DAY,
            "Europe/Paris",
            utc(2025, 3, 29, 23),
            utc(2025, 3, 30, 22),
        ),
        (
            utc(2025, 1, 1, 12),
            Period.WEEK,
            "Asia/Tokyo",
            utc(2024, 12, 29, 15),
            utc(2025, 1, 5, 15),
        ),
    ],
)
def test_budget_windows(
    now: datetime, period: Period, tz: str, start: datetime, end: datetime
) -> None:
    assert budget_window(now, period, tz) == (start, end)


def test_a_reused_window_follows_time_both_ways() -> None:
    """The last window is reused only while `now` is inside it (a test clock may go back)."""
    day = budget_window(utc(2025, 3, 14, 12), Period.DAY)
    assert budget_window(utc(2025, 3, 14, 23, 59), Period.DAY) is day
    assert budget_window(utc(2025, 3, 15), Period.DAY) == (utc(2025, 3, 15), utc(2025, 3, 16))
    assert budget_window(utc(2025, 3, 14, 1), Period.DAY) == day
    assert budget_window(utc(2025, 3, 14, 1), Period.DAY, "Asia/Tokyo") == (
        utc(2025, 3, 13, 15), utc(2025, 3, 14, 15))


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        budget_window(datetime(2025, 1, 1), Period.DAY)


def test_minute_window() -> None:
    assert minute_window(utc(2025, 1, 1, 10, 59, second=59)) == (
        utc(2025, 1, 1, 10, 59),
        utc(2025, 1, 1, 11, 0),
    )
