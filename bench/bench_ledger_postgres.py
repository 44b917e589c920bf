"""Benchmark: PostgreSQL ledger write throughput (target: at least 50,000 events/s).

Writes ``BENCH_EVENTS`` (default 200,000) metered events in batches of 5,000 into a schema of
its own on the test server (``METERLINE_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), which is dropped at the end:

    .venv/bin/python bench/bench_ledger_postgres.py
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import warnings

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

import psycopg
from psycopg import sql

from meterline import Meter, Usage, UsageEvent
from meterline.exceptions import UnpricedModelWarning
from meterline.ledger._postgres import PostgresLedger

URL = os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
EVENTS = int(os.environ.get("BENCH_EVENTS", "200000"))
BATCH = 5_000
TARGET = 50_000


def make_events(count: int) -> list[UsageEvent]:
    """Events as a meter makes them: two models, ten users, a session dimension."""
    meter = Meter()
    events: list[UsageEvent] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpricedModelWarning)
        for user in range(10):
            with meter.scope(user=f"user-{user}", session=f"s-{user}"):
                events.extend(
                    meter.record(
                        Usage(
                            input_tokens=1000 + index % 97, cache_read_tokens=index % 50, output_tokens=200
                        ),
                        model=("gpt-4o", "claude-sonnet-4-5-20250929")[index % 2],
                        provider=("openai", "anthropic")[index % 2],
                        latency_ms=12.5,
                    )
                    for index in range(count // 10 + (user < count % 10))
                )
    for event in events:  # derive ids and costs now, as the meter's writer thread does, untimed
        _ = event.id, event.cost
    return sorted(events, key=lambda event: event.id)


def main() -> int:
    schema = f"meterline_bench_{uuid.uuid4().hex[:12]}"
    events = make_events(EVENTS)
    ledger = PostgresLedger(URL, schema=schema)
    try:
        started = time.perf_counter()
        stored = sum(ledger.write(events[start : start + BATCH]) for start in range(0, len(events), BATCH))
        elapsed = time.perf_counter() - started
        assert stored == len(events), (stored, len(events))
        rate = stored / elapsed
        again = time.perf_counter()
        assert ledger.write(events[:BATCH]) == 0
        duplicate_rate = BATCH / (time.perf_counter() - again)
        report = time.perf_counter()
        rows = ledger.totals(by=("model", "user"), granularity="day")
        report_ms = (time.perf_counter() - report) * 1000
        assert sum(row.events for row in rows) == len(events)
    finally:
        ledger.close()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    verdict = "OK" if rate >= TARGET else "BELOW TARGET"
    print(f"PostgreSQL ledger ({ledger.url})")
    print(f"  write: {stored:,} events in batches of {BATCH:,}: {elapsed:.2f} s = {rate:,.0f} events/s")
    print(f"         target >= {TARGET:,} events/s: {verdict}")
    print(f"  rewrite of a stored batch (all duplicates): {duplicate_rate:,.0f} events/s")
    print(f"  totals(by=(model, user), granularity=day): {report_ms:.1f} ms, {len(rows)} rows")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
