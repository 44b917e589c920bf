"""Benchmark of the SQLite ledger's report path, with the target of the ledger issue (#3).

Builds a ledger of 1,000,000 events (``BENCH_EVENTS`` overrides the count) spread over 30
days, ~20 models and ~50 users (a dimension), written with ``write`` in batches of 5,000,
then times ``totals(by=("model",), granularity="day")`` (median of 5; target <= 0.5 s).
Also prints the write rate reached while building. Run from the project root:

    .venv/bin/python bench/bench_ledger_read.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline import Usage, UsageEvent
from meterline._dimensions import Dimensions
from meterline.ledger._sqlite import SQLiteLedger

EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
BATCH = 5000
DAYS = 30
MODELS = [f"model-{i:02d}" for i in range(20)]
USERS = [Dimensions({"user": f"user-{i:02d}", "team": f"team-{i % 5}"}) for i in range(50)]
START_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
TARGET_S = 0.5
ROUNDS = 5


def make_events(count: int) -> list[list[UsageEvent]]:
    """``count`` events in time order (ids sort by time), in batches of `BATCH`."""
    rng = random.Random(3)
    usages = [
        Usage(input_tokens=100 * k, output_tokens=20 * k, cache_read_tokens=10 * k) for k in range(1, 9)
    ]
    prices = [Decimal(f"0.00000{i + 1}") for i in range(len(MODELS))]
    costs = [[price * usage.input_tokens for usage in usages] for price in prices]
    step = DAYS * 86_400 * 10**9 // count
    batches: list[list[UsageEvent]] = []
    batch: list[UsageEvent] = []
    for n in range(count):
        time_ns = START_NS + n * step
        model = rng.randrange(len(MODELS))
        size = rng.randrange(len(usages))
        batch.append(
            UsageEvent(
                id=f"{time_ns // 1_000_000:012x}{n:020x}",
                time_ns=time_ns,
                operation="chat",
                provider="openai",
                model=MODELS[model],
                request_model=None,
                usage=usages[size],
                cost=costs[model][size],
                price_version="bench",
                latency_ms=100.0 + size,
                status="ok",
                dimensions=USERS[rng.randrange(len(USERS))],
            )
        )
        if len(batch) == BATCH:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def main() -> None:
    print(f"building a ledger of {EVENTS:,} events ({DAYS} days, {len(MODELS)} models, {len(USERS)} users)")
    started = time.perf_counter()
    batches = make_events(EVENTS)
    print(f"  made the events in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as directory:
        ledger = SQLiteLedger(Path(directory) / "bench.db")
        try:
            started = time.perf_counter()
            for batch in batches:
                ledger.write(batch)
            elapsed = time.perf_counter() - started
            stats = ledger.stats()
            assert stats.events == EVENTS, stats
            size = os.path.getsize(Path(directory) / "bench.db") / 1e6
            print(
                f"  write: {EVENTS / elapsed:,.0f} events/s ({elapsed:.1f} s, batches of {BATCH:,};"
                f" {stats.rollup_rows:,} roll-up rows, {size:.0f} MB)"
            )
            del batches
            timings = []
            rows = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                rows = ledger.totals(by=("model",), granularity="day")
                timings.append(time.perf_counter() - started)
            assert sum(row.events for row in rows) == EVENTS
            median = statistics.median(timings)
            verdict = "ok" if median <= TARGET_S else "MISSED"
            print(
                f"  totals(by=('model',), granularity='day'): median {median:.3f} s of {ROUNDS}"
                f" ({len(rows)} rows) - target <= {TARGET_S} s: {verdict}"
            )
            started = time.perf_counter()
            rows = ledger.totals(by=("user",), granularity="day")
            print(
                f"  totals(by=('user',), granularity='day'): {time.perf_counter() - started:.3f} s"
                f" ({len(rows)} rows; groups by a dimension, in Python)"
            )
        finally:
            ledger.close()


if __name__ == "__main__":
    main()
