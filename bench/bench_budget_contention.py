"""Budget stores under contention: 1 to 16 processes, one shared counter, beside the engine's floor.

Run from the project root, with PostgreSQL and Redis on 127.0.0.1 (a store is skipped when its
server is unreachable):

    .venv/bin/python bench/bench_budget_contention.py          # BENCH_SECONDS=3, BENCH_ROUNDS=3
    BENCH_STORES=sqlite,redis BENCH_PROCESSES=1,16 .venv/bin/python bench/bench_budget_contention.py

Each process loops for ``BENCH_SECONDS``: reserve one call against a global budget (one line,
the counter every process shares), then settle it, as `Meter.reserve` and `Meter.record` do.
The floor is the least the same engine needs for the same work, from the same processes on
the same counter: two write transactions of one ``UPDATE`` each on SQLite, two ``UPDATE``
statements on PostgreSQL, two script calls (``EVALSHA`` of one ``HINCRBY``) on Redis.

Each cell is measured ``BENCH_ROUNDS`` times, the store and its floor taking turns, so that a
change in the machine's load (two cores, shared) falls on both. Printed per store and process
count: the median reserve+settle pairs per second (all processes), the floor's median, their
ratio, and the latency of one pair over every round (p50, p99.9 and the longest, in
milliseconds: a waiter starved for seconds shows there), with the floor's p99.9 and longest
beside it: with more processes than cores, the operating system's scheduling is in both.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline.budgets._store import BudgetStore, Line

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROCESSES = [int(n) for n in os.environ.get("BENCH_PROCESSES", "1,2,4,8,16").split(",")]
STORES = os.environ.get("BENCH_STORES", "sqlite,postgres,redis").split(",")
POSTGRES = os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS = os.environ.get("METERLINE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
LINE = Line("global", (), 0, 0, (None, None, None, 10**18, None, None))
HOLD = (1000, 800, 200, 5_000_000, 1, 0)
ACTUAL = (700, 600, 100, 3_100_000, 1, 0)

Step = Callable[[], None]
"""One reserve+settle pair (or the floor's two writes) of one process."""


def _run(make: Callable[[], Step], start_at: float, results: Any) -> None:
    """In a child: build the step, wait for the common start, loop for SECONDS, send latencies (ns)."""
    step = make()
    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    clock = time.perf_counter_ns
    end = clock() + int(SECONDS * 1e9)
    while (before := clock()) < end:
        step()
        latencies.append(clock() - before)
    results.put(latencies)


def run(make: Callable[[], Step], processes: int) -> tuple[float, list[int]]:
    """(pairs per second, every pair's latency in ns) of ``processes`` processes running ``make()``'s step."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5 + 0.05 * processes
    workers = [context.Process(target=_run, args=(make, start_at, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    latencies: list[int] = []
    for _ in workers:
        latencies.extend(results.get(timeout=SECONDS + 120))
    for worker in workers:
        worker.join()
    return len(latencies) / SECONDS, latencies


def tail(latencies: list[int]) -> tuple[float, float, float]:
    """(p50, p99.9, longest) of ``latencies`` (ns), in milliseconds."""
    latencies.sort()
    count = len(latencies)
    return (
        latencies[count // 2] / 1e6,
        latencies[min(count - 1, int(count * 0.999))] / 1e6,
        latencies[-1] / 1e6,
    )


def _pair(store: BudgetStore) -> Step:
    counter = iter(range(10**12))
    prefix = f"{os.getpid()}-"

    def step() -> None:
        rid = prefix + str(next(counter))
        now = time.time()
        store.reserve(rid, [LINE], [HOLD], now, 60)
        store.settle(rid, [LINE], [ACTUAL], now)

    return step


# -- SQLite ------------------------------------------------------------------------------


def sqlite_cells(directory: Path) -> tuple[Callable[[], Step], Callable[[], Step]]:
    import sqlite3

    from meterline.budgets import SQLiteBudgetStore

    path = directory / "budgets.db"
    SQLiteBudgetStore(path).close()
    floor_path = directory / "floor.db"
    conn = sqlite3.connect(floor_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute("INSERT INTO c VALUES (1, 0)")
    conn.close()

    def ours() -> Step:
        return _pair(SQLiteBudgetStore(path))

    def floor() -> Step:
        db = sqlite3.connect(floor_path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=NORMAL")

        def step() -> None:
            for _ in range(2):
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE c SET n = n + 1 WHERE id = 1")
                db.execute("COMMIT")

        return step

    return ours, floor


# -- PostgreSQL --------------------------------------------------------------------------


def postgres_cells() -> tuple[Callable[[], Step], Callable[[], Step]] | None:
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return None
    from meterline.budgets import PostgresBudgetStore

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        PostgresBudgetStore(POSTGRES, schema).close()
    except Exception as exc:  # noqa: BLE001 - no server: the store is skipped
        print(f"postgres: skipped ({exc})")
        return None
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {}.floor (id INT PRIMARY KEY, n BIGINT)").format(sql.Identifier(schema))
        )
        conn.execute(sql.SQL("INSERT INTO {}.floor VALUES (1, 0)").format(sql.Identifier(schema)))

    def ours() -> Step:
        return _pair(PostgresBudgetStore(POSTGRES, schema))

    def floor() -> Step:
        db = psycopg.connect(POSTGRES, autocommit=True)
        update = sql.SQL("UPDATE {} SET n = n + 1 WHERE id = 1").format(sql.Identifier(schema, "floor"))

        def step() -> None:
            db.execute(update)
            db.execute(update)

        return step

    return ours, floor


# -- Redis -------------------------------------------------------------------------------


def redis_cells() -> tuple[Callable[[], Step], Callable[[], Step]] | None:
    try:
        import redis
    except ImportError:
        return None
    from meterline.budgets import RedisBudgetStore

    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        RedisBudgetStore(REDIS, prefix).close()
    except Exception as exc:  # noqa: BLE001 - no server: the store is skipped
        print(f"redis: skipped ({exc})")
        return None

    def ours() -> Step:
        return _pair(RedisBudgetStore(REDIS, prefix))

    def floor() -> Step:
        client = redis.Redis.from_url(REDIS)
        script = client.register_script("return redis.call('HINCRBY', KEYS[1], 'n', 1)")
        key = f"{{{prefix}}}:floor"

        def step() -> None:
            script(keys=[key])
            script(keys=[key])

        return step

    return ours, floor


def main() -> None:
    print(
        f"{SECONDS:g} s per cell, {ROUNDS} rounds (medians); one shared counter;"
        " pairs = reserve+settle (floor: two writes)"
    )
    columns = (
        "procs",
        "pairs/s",
        "floor/s",
        "ratio",
        "p50 ms",
        "p99.9 ms",
        "max ms",
        "floor p99.9",
        "floor max",
    )
    print(f"{'store':<9} " + " ".join(f"{column:>11}" for column in columns))
    with tempfile.TemporaryDirectory() as directory:
        makers = {
            "sqlite": lambda: sqlite_cells(Path(directory)),
            "postgres": postgres_cells,
            "redis": redis_cells,
        }
        for name in STORES:
            cells = makers[name]()
            if cells is None:
                continue
            ours, floor = cells
            for processes in PROCESSES:
                rates, floor_rates, latencies, floor_latencies = [], [], [], []
                for _ in range(ROUNDS):
                    rate, seen = run(ours, processes)
                    rates.append(rate)
                    latencies += seen
                    rate, seen = run(floor, processes)
                    floor_rates.append(rate)
                    floor_latencies += seen
                rate, floor_rate = statistics.median(rates), statistics.median(floor_rates)
                p50, p999, longest = tail(latencies)
                _, floor_p999, floor_longest = tail(floor_latencies)
                figures = (
                    f"{rate:,.0f}",
                    f"{floor_rate:,.0f}",
                    f"{floor_rate / rate:.2f}",
                    f"{p50:.2f}",
                    f"{p999:.2f}",
                    f"{longest:.1f}",
                    f"{floor_p999:.2f}",
                    f"{floor_longest:.1f}",
                )
                print(
                    f"{name:<9} {processes:>11} " + " ".join(f"{figure:>11}" for figure in figures),
                    flush=True,
                )


if __name__ == "__main__":
    main()
