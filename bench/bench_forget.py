"""Benchmark of `Meter.forget` on a busy day: one finished session at a time out of 100,000 live.

Run from the project root:

    .venv/bin/python bench/bench_forget.py

A meter holds 100,000 sessions of 2,000 users (one row each, the cube's shape after a day of
short chats), then forgets 1,000 of them one call at a time, as an application does when a
session ends. Beside it, the floor for the same work: deleting the same 1,000 keys from a
plain dict of 100,000. Target (issue 16): under 1 ms per key removed. Medians of rounds.

Then what those 100,000 rows cost the application's garbage collector: a full collection
(``gc.collect()``) just after one more session has ended and once nothing has changed, beside
the same collection with a meter that holds one row (the interpreter's and meterline's own
objects): every thread of the application waits while it runs.
"""

from __future__ import annotations

import gc
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


def _collection() -> float:
    began = time.perf_counter()
    gc.collect()
    return time.perf_counter() - began


def collection_round(sessions: int) -> tuple[float, float]:
    """Seconds of a full collection with a meter of ``sessions`` rows: just after a change, and after none."""
    meter = busy_meter() if sessions else Meter()
    usage = Usage(input_tokens=1200, output_tokens=300)
    with meter.scope(user="u-last", session="s-last"):  # one more session ends: the rows change
        meter.record(usage, model="gpt-4o-mini", provider="openai")
    changed = _collection()
    unchanged = min(_collection() for _ in range(3))
    assert meter.stats().live_keys == sessions + 1
    return changed, unchanged


def main() -> int:
    """Print the medians; exit 1 when the target is missed."""
    ours = statistics.median(forget_round() for _ in range(ROUNDS))
    floor = statistics.median(floor_round() for _ in range(ROUNDS))
    print(f"forget(session=) at {SESSIONS:,} live rows: {ours * 1e6:8.1f} us per key removed (target < 1000)")
    print(f"plain dict delete, same keys:            {floor * 1e6:8.2f} us per key ({ours / floor:,.0f}x)")
    full = [collection_round(SESSIONS) for _ in range(ROUNDS)]
    bare = [collection_round(0) for _ in range(ROUNDS)]
    for at, label in ((0, "just after a session ended"), (1, "nothing changed since the last")):
        rows, one = statistics.median(run[at] for run in full), statistics.median(run[at] for run in bare)
        print(
            f"gc.collect(), {label}: {rows * 1e3:6.1f} ms with {SESSIONS:,} rows,"
            f" {one * 1e3:6.1f} ms with one ({(rows - one) * 1e3:+.1f} ms)"
        )
    return 0 if ours < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
