"""Reserve + settle latency of every budget store, with three lines (three nested scopes).

Run from the project root, with PostgreSQL and Redis on 127.0.0.1 (skipped when unreachable):

    .venv/bin/python bench/bench_budget_stores.py

Each iteration reserves against three lines (org, user, session: three budgets limiting
cost) and settles the actual amount; the figures are the median and 99th percentile of the
iterations, in microseconds, one thread. For Redis it also counts the commands redis-py
sends (each a round trip) per reserve and per settle, and the server's own ``EVALSHA``
count, which must both be 1.
"""

from __future__ import annotations

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

from meterline.budgets import MemoryBudgetStore, SQLiteBudgetStore
from meterline.budgets._store import BudgetStore, Line

N = int(os.environ.get("BENCH_N", "3000"))
WARMUP = 200
LINES = [
    Line("org", ("o1",), 0, 0, (None, None, None, 10**15, None, None)),
    Line("user", ("u1",), 0, 0, (None, None, None, 10**14, None, None)),
    Line("session", ("s1",), 0, 0, (None, None, None, 10**13, None, None)),
]
RESERVE = [(1000, 800, 200, 5_000_000, 1, 0)] * 3
ACTUAL = [(700, 600, 100, 3_100_000, 1, 0)] * 3


def measure(store: BudgetStore) -> tuple[float, float, float, float]:
    """Median and p99 of reserve + settle, and the medians of each alone (µs)."""
    both, reserves, settles = [], [], []
    clock = time.perf_counter
    for index in range(WARMUP + N):
        rid = f"r{index}"
        now = time.time()
        start = clock()
        assert store.reserve(rid, LINES, RESERVE, now, 60) is None
        middle = clock()
        store.settle(rid, LINES, ACTUAL, now)
        end = clock()
        if index >= WARMUP:
            both.append((end - start) * 1e6)
            reserves.append((middle - start) * 1e6)
            settles.append((end - middle) * 1e6)
    both.sort()
    return (
        statistics.median(both),
        both[int(len(both) * 0.99)],
        statistics.median(reserves),
        statistics.median(settles),
    )


def redis_round_trips(url: str, prefix: str) -> tuple[int, int, int]:
    """Commands sent per reserve and per settle, and the server's EVALSHA calls for both."""
    import redis

    from meterline.budgets._redis import RedisBudgetStore

    store = RedisBudgetStore(url, prefix)
    admin = redis.Redis.from_url(url)
    sent: list[str] = []
    original = redis.connection.AbstractConnection.send_command

    def counting(connection: Any, *args: Any, **options: Any) -> None:
        sent.append(str(args[0]))
        original(connection, *args, **options)  # type: ignore[no-untyped-call]

    def evalshas() -> int:
        return int(admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    before = evalshas()
    setattr(redis.connection.AbstractConnection, "send_command", counting)  # noqa: B010
    try:
        store.reserve("count", LINES, RESERVE, time.time(), 60)
        reserve = len(sent)
        store.settle("count", LINES, ACTUAL, time.time())
        settle = len(sent) - reserve
    finally:
        setattr(redis.connection.AbstractConnection, "send_command", original)  # noqa: B010
    server = evalshas() - before
    store.close()
    admin.close()
    return reserve, settle, server


def main() -> None:
    """Print one row per store."""
    stores: list[tuple[str, Callable[[], BudgetStore], Callable[[], None]]] = []
    folder = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    stores.append(("memory", MemoryBudgetStore, lambda: None))
    stores.append(("sqlite", lambda: SQLiteBudgetStore(folder / "budgets.db"), lambda: None))
    postgres_url = (
        os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    )
    redis_url = os.environ.get("METERLINE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    prefix = f"bench-{uuid.uuid4().hex[:10]}"

    def postgres() -> BudgetStore:
        from meterline.budgets._postgres import PostgresBudgetStore

        return PostgresBudgetStore(postgres_url, schema)

    def drop_schema() -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    def redis_store() -> BudgetStore:
        from meterline.budgets._redis import RedisBudgetStore

        return RedisBudgetStore(redis_url, prefix)

    def drop_prefix() -> None:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    stores.append(("postgresql", postgres, drop_schema))
    stores.append(("redis", redis_store, drop_prefix))
    print(f"reserve + settle, 3 lines, {N} iterations, one thread (µs)")
    print(f"{'store':<12}{'median':>10}{'p99':>10}{'reserve':>10}{'settle':>10}")
    for name, make, cleanup in stores:
        try:
            store = make()
        except Exception as exc:  # noqa: BLE001 - a missing service skips its row
            print(f"{name:<12}skipped: {exc}")
            continue
        try:
            median, p99, reserve, settle = measure(store)
            print(f"{name:<12}{median:>10.1f}{p99:>10.1f}{reserve:>10.1f}{settle:>10.1f}")
        finally:
            store.close()
            cleanup()
    try:
        reserve, settle, server = redis_round_trips(redis_url, prefix)
    except Exception as exc:  # noqa: BLE001 - no Redis: no count
        print(f"redis round trips: skipped: {exc}")
    else:
        print(
            f"redis round trips: reserve {reserve}, settle {settle} (server EVALSHA calls for both: {server})"
        )
        drop_prefix()


if __name__ == "__main__":
    main()
