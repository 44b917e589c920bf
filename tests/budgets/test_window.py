"""Budget windows: calendar periods in a time zone, rolling windows in sixty steps."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meterline import (
    Budget,
)
from meterline.budgets._compiled import CompiledBudget


def ts(text: str, zone: str = "UTC") -> float:
    """An ISO local time in ``zone`` as seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("window", "zone", "now", "start", "end"),
    [
        ("minute", "UTC", "2026-03-01T10:15:42", "2026-03-01T10:15:00", "2026-03-01T10:16:00"),
        ("hour", "Asia/Kolkata", "2026-03-01T10:15:42", "2026-03-01T10:00:00", "2026-03-01T11:00:00"),
        ("day", "Europe/Paris", "2026-03-01T23:59:59", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
        ("week", "UTC", "2026-03-01T12:00:00", "2026-02-23T00:00:00", "2026-03-02T00:00:00"),
        ("month", "America/New_York", "2026-12-31T22:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        # A day that is 23 hours long: New York springs forward on 2026-03-08.
        ("day", "America/New_York", "2026-03-08T12:00:00", "2026-03-08T00:00:00", "2026-03-09T00:00:00"),
    ],
)
def test_calendar_windows_follow_the_time_zone(
    window: str, zone: str, now: str, start: str, end: str
) -> None:
    """A calendar window starts and resets at the local boundary of its time zone."""
    compiled = CompiledBudget(Budget(max_tokens=1, window=window, timezone=zone))
    current = compiled.window_at(ts(now, zone))
    assert current.start == ts(start, zone)
    assert current.resets_at == ts(end, zone)
    assert current.bucket == current.first == math.floor(ts(start, zone))


def test_dst_day_is_23_hours() -> None:
    """The window of a spring-forward day lasts 23 hours."""
    current = CompiledBudget(Budget(max_tokens=1, window="day", timezone="America/New_York")).window_at(
        ts("2026-03-08T12:00:00", "America/New_York")
    )
    assert current.end - current.start == 23 * 3600


def test_rolling_window_is_sixty_steps() -> None:
    """A rolling hour sums the last 60 one-minute buckets."""
    current = CompiledBudget(Budget(max_tokens=1, window=timedelta(hours=1))).window_at(3600 * 1000 + 125)
    assert current.bucket == 3600 * 1000 + 120
    assert current.bucket - current.first == 59 * 60
    assert current.resets_at == current.bucket + 60


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        # New York falls back on 2024-11-03: 01:00-02:00 local happens twice (05:00Z-07:00Z).
        ("hour", "2024-11-03T05:30:00+00:00", "2024-11-03T05:00:00+00:00", "2024-11-03T06:00:00+00:00"),
        ("hour", "2024-11-03T06:30:00+00:00", "2024-11-03T06:00:00+00:00", "2024-11-03T07:00:00+00:00"),
        ("minute", "2024-11-03T06:30:10+00:00", "2024-11-03T06:30:00+00:00", "2024-11-03T06:31:00+00:00"),
        # Kathmandu is UTC+5:45: its hours start at :15 past the UTC hour.
        ("hour", "2026-01-01T10:20:00+00:00", "2026-01-01T10:15:00+00:00", "2026-01-01T11:15:00+00:00"),
    ],
)
def test_hour_and_minute_windows_are_elapsed_time_across_clock_changes(
    window: str, now: str, start: str, end: str
) -> None:
    """An hour (or minute) window lasts an hour of real time, even while local clocks repeat an hour."""
    zone = "Asia/Kathmandu" if "2026" in now else "America/New_York"
    current = CompiledBudget(Budget(max_tokens=1, window=window, timezone=zone)).window_at(
        datetime.fromisoformat(now).timestamp()
    )
    assert (current.start, current.resets_at) == (
        datetime.fromisoformat(start).timestamp(),
        datetime.fromisoformat(end).timestamp(),
    )
