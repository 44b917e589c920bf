"""Budget windows: which bucket of a budget's counter a moment falls in, and when it resets.

A calendar window (minute, hour, day, week, month in an IANA time zone) is one bucket per
period; a rolling window is kept as `ROLLING_STEPS` buckets, so usage leaves it one step
(window/60) at a time. A bucket is named by its start, in whole seconds since the epoch.
"""

from __future__ import annotations as _annotations

import math
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["FOREVER", "ROLLING_STEPS", "STALE", "Window", "calendar_window", "rolling_window"]

ROLLING_STEPS: Final = 60
"""A rolling window is kept as this many buckets: usage leaves it in steps of window/60."""


class Window:
    """The current bucket of one budget's window, recomputed when the clock passes its end."""

    __slots__ = ("alert_window", "bucket", "end", "expires_at", "first", "resets_at", "start")

    start: float
    """When the current bucket began (seconds since the epoch)."""
    end: float
    """When it ends: the window is recomputed at the first moment past it."""
    bucket: int
    """The bucket charges go to."""
    first: int
    """The first bucket that counts as used (earlier than ``bucket`` for a rolling window)."""
    resets_at: float | None
    """When the window resets (a rolling window: when its next step ends)."""
    expires_at: float | None
    """When the bucket stops mattering, so a store may drop it."""
    alert_window: int
    """Which window an alert belongs to (each fires once per window, key and threshold)."""

    def __init__(
        self,
        start: float,
        end: float,
        bucket: int,
        first: int,
        resets_at: float | None,
        expires_at: float | None,
        alert_window: int,
    ) -> None:
        self.start = start
        self.end = end
        self.bucket = bucket
        self.first = first
        self.resets_at = resets_at
        self.expires_at = expires_at
        self.alert_window = alert_window


FOREVER: Final = Window(-math.inf, math.inf, 0, 0, None, None, 0)
STALE: Final = Window(math.inf, -math.inf, 0, 0, None, None, 0)
"""Matches no time: a windowed budget computes its first window on first use."""


def calendar_window(window: str, zone: ZoneInfo, now: float) -> Window:
    aware = datetime.fromtimestamp(now, tz=zone)
    if window in ("minute", "hour"):
        # In elapsed time, from the local clock's last boundary: a minute or an hour is as long
        # as ever when the clocks go back (local time repeats) or forward.
        into = aware.second + aware.microsecond / 1e6 + (aware.minute * 60 if window == "hour" else 0)
        start_ts = now - into
        end_ts = start_ts + (60 if window == "minute" else 3600)
        bucket = math.floor(start_ts)
        return Window(start_ts, end_ts, bucket, bucket, end_ts, end_ts + 86_400, bucket)
    local = aware.replace(tzinfo=None)
    if window == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif window == "week":
        start = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=7)
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    start_ts = start.replace(tzinfo=zone).timestamp()
    end_ts = end.replace(tzinfo=zone).timestamp()
    bucket = math.floor(start_ts)
    return Window(start_ts, end_ts, bucket, bucket, end_ts, end_ts + 86_400, bucket)


def rolling_window(length: timedelta, now: float) -> Window:
    total = max(1, math.ceil(length.total_seconds()))
    step = max(1, math.ceil(total / ROLLING_STEPS))
    steps = math.ceil(total / step)
    bucket = int(now // step) * step
    first = bucket - (steps - 1) * step
    return Window(
        bucket,
        bucket + step,
        bucket,
        first,
        bucket + step,
        bucket + (steps + 1) * step,
        int(now // total) * total,
    )
