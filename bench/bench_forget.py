"""Benchmark of `Meter.forget` on a busy day: one finished session at a time out of 100,000 live.

Run from the project root:

    .venv/bin/python bench/bench_forget.py

A meter holds 100,000 sessions of 2,000 users (one row each, the cube's shape after a day of
short chats), then forgets 1,000 of them one call at a time, as an application does when a
session ends. Beside it, the floor for the same work: deleting the same 1,000 keys from a
plain dict of 100,000. Target (issue 16): under 1 ms per key removed. Medians of rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline import Meter, Usage

SESSIONS = int(os.environ.get("BENCH_SESSIONS", "100000"))
FORGOTTEN = 1000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def busy_meter() -> Meter:
    """A meter holding one row per session."""
    meter = Meter(max_live_keys=SESSIONS * 2)
    usage = Usage(input_tokens=1200, output_tokens=300)
    for session in range(SESSIONS):
        with meter.scope(user=f"u{session % 2000}", session=f"s{session}"):
            meter.record(usage, model="gpt-4o-mini", provider="openai")
    return meter


def forget_round() -> float:
    """Seconds per session forgotten."""
    meter = busy_meter()
    start = time.perf_counter()
    for session in range(0, SESSIONS, SESSIONS // FORGOTTEN):
        meter.forget(session=f"s{session}")
    elapsed = time.perf_counter() - start
    assert meter.stats().live_keys == SESSIONS - FORGOTTEN
    return elapsed / FORGOTTEN


def floor_round() -> float:
    """Seconds per key deleted from a plain dict of the same size."""
    table = {f"s{session}": session for session in range(SESSIONS)}
    start = time.perf_counter()
    for session in range(0, SESSIONS, SESSIONS // FORGOTTEN):
        del table[f"s{session}"]
    return (time.perf_counter() - start) / FORGOTTEN


def main() -> int:
    """Print the medians; exit 1 when the target is missed."""
    ours = statistics.median(forget_round() for _ in range(ROUNDS))
    floor = statistics.median(floor_round() for _ in range(ROUNDS))
    print(f"forget(session=) at {SESSIONS:,} live rows: {ours * 1e6:8.1f} us per key removed (target < 1000)")
    print(f"plain dict delete, same keys:            {floor * 1e6:8.2f} us per key ({ours / floor:,.0f}x)")
    return 0 if ours < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
