"""How long record() and reserve() wait on a store that stops answering (frozen, not down).

Run from the project root, with PostgreSQL and Redis on 127.0.0.1:

    .venv/bin/python bench/bench_frozen_store.py

Each store is reached through the relay of ``tests/storage/freezer.py``, which freezes it: the
connection stays open and acknowledged, and no answer comes (what a SIGSTOPped server, a
paused VM or a silent partition looks like). With the default timeouts, it times 20 calls
after the freeze: a sync ``record()`` on a PostgreSQL ledger, and ``reserve()`` on a
PostgreSQL and a Redis budget store. Printed: the first call's wait, and the longest of the
next 19, in seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))
    sys.path.insert(0, os.path.abspath("."))

from tests.storage.freezer import frozen_relay

from meterline import Budget, Meter, Usage
from meterline.budgets import PostgresBudgetStore, RedisBudgetStore
from meterline.ledger import PostgresLedger

POSTGRES = os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS = os.environ.get("METERLINE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def waits(call: Callable[[], object], count: int = 20) -> list[float]:
    """Seconds each of ``count`` calls took."""
    out = []
    for _ in range(count):
        start = time.monotonic()
        call()
        out.append(time.monotonic() - start)
    return out


def report(what: str, seconds: list[float]) -> None:
    print(f"{what:<48} first {seconds[0]:6.2f} s   next {len(seconds) - 1}: max {max(seconds[1:]):6.3f} s")


def main() -> None:
    logging.disable(logging.CRITICAL)  # every failure is logged: not what is measured here
    warnings.simplefilter("ignore")
    os.environ["METERLINE_SPOOL_DIR"] = tempfile.mkdtemp()
    with frozen_relay(POSTGRES, 5432) as relay:
        ledger = PostgresLedger(relay.url(POSTGRES), schema=f"frozen_{uuid.uuid4().hex[:8]}")
        meter = Meter(ledger, durability="sync")
        meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
        relay.freeze()
        seconds = waits(lambda: meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai"))
        report("sync record(), frozen PostgreSQL ledger", seconds)
        relay.thaw()
        meter.close()
        ledger.close()

    def postgres(url: str) -> PostgresBudgetStore:
        return PostgresBudgetStore(url, f"frozen_{uuid.uuid4().hex[:8]}")

    def redis(url: str) -> RedisBudgetStore:
        return RedisBudgetStore(url, f"frozen-{uuid.uuid4().hex[:8]}")

    for name, url, port, make in (("PostgreSQL", POSTGRES, 5432, postgres), ("Redis", REDIS, 6379, redis)):
        with frozen_relay(url, port) as relay:
            store = make(relay.url(url))
            budgeted = Meter(budget_store=store, budgets=[Budget(max_requests=10**6, name="global")])

            def reserve(budgeted: Meter = budgeted) -> None:
                budgeted.reserve(model="gpt-4o", provider="openai", input_tokens=1).release()

            reserve()
            relay.freeze()
            report(f"reserve(), frozen {name} budget store", waits(reserve))
            relay.thaw()
            store.close()


if __name__ == "__main__":
    main()
