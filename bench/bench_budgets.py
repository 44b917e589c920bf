"""Benchmark of budgets at the meter: reserve + settle with three nested scopes, per store.

Run from the project root:

    .venv/bin/python bench/bench_budgets.py [memory|sqlite|postgres|redis ...]

Each round runs ``with meter.reserve(...): meter.record(...)`` inside three nested scopes
(org, user, session), each with its own budget, and subtracts the same loop's ``record()``
alone without budgets: the figure is what budgets add to a call, reserve plus settle.
Medians of several rounds, in microseconds per call. Targets (issue 4): memory at most
10 µs, SQLite at most 500 µs. PostgreSQL and Redis use the test services on 127.0.0.1
(``METERLINE_TEST_POSTGRES_URL`` / ``METERLINE_TEST_REDIS_URL``); a store that cannot be
opened is reported and skipped.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import TypedDict

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

import meterline
from meterline import Budget, Meter, Usage

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
USAGE = Usage(input_tokens=1200, output_tokens=300)


class _Call(TypedDict):
    model: str
    provider: str


CALL: _Call = {"model": "gpt-4o", "provider": "openai"}


def _budgets() -> list[Budget]:
    return [
        Budget(per=("org",), max_cost="1000000", window="month", name="org"),
        Budget(per=("user",), max_cost="1000000", window="day", name="user"),
        Budget(per=("session",), max_tokens=10**15, name="session"),
    ]


def _loop(meter: Meter, number: int, *, reserve: bool) -> float:
    """Seconds per call of ``number`` calls in three nested scopes."""
    with meter.scope(org="acme"), meter.scope(user=f"u-{uuid.uuid4().hex[:6]}"), meter.scope(session="s1"):
        start = time.perf_counter()
        if reserve:
            for _ in range(number):
                with meter.reserve(input_tokens=1200, max_output_tokens=400, **CALL):
                    meter.record(USAGE, **CALL)
        else:
            for _ in range(number):
                meter.record(USAGE, **CALL)
        return (time.perf_counter() - start) / number


def bench(store: object, number: int) -> tuple[float, float]:
    """(median µs added by reserve + settle, median µs of record alone)."""
    budgeted = Meter(budget_store=store)  # type: ignore[arg-type]
    for budget in _budgets():
        budgeted.add_budget(budget)
    plain = Meter()
    _loop(budgeted, min(number, 200), reserve=True)
    _loop(plain, min(number, 200), reserve=False)
    added = []
    alone = []
    for _ in range(ROUNDS):
        with_budgets = _loop(budgeted, number, reserve=True)
        without = _loop(plain, number, reserve=False)
        added.append((with_budgets - without) * 1e6)
        alone.append(without * 1e6)
    budgeted.close()
    return statistics.median(added), statistics.median(alone)


def _store(kind: str, directory: str) -> object:
    if kind == "memory":
        return None
    if kind == "sqlite":
        return f"sqlite:///{directory}/budgets.db"
    if kind == "postgres":
        return os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    return os.environ.get("METERLINE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def main(kinds: list[str]) -> None:
    """Print the figures for each store kind."""
    numbers = {"memory": 20_000, "sqlite": 2_000, "postgres": 500, "redis": 1_000}
    targets = {"memory": 10.0, "sqlite": 500.0}
    print(f"meterline {meterline.__version__}: reserve + settle, three nested scopes, {ROUNDS} rounds")
    with tempfile.TemporaryDirectory() as directory:
        for kind in kinds:
            try:
                added, alone = bench(_store(kind, directory), numbers[kind])
            except meterline.MeterlineError as exc:
                print(f"  {kind:8s} skipped: {exc}")
                continue
            target = targets.get(kind)
            verdict = (
                ""
                if target is None
                else f"  (target <= {target:g} µs: {'met' if added <= target else 'MISSED'})"
            )
            print(f"  {kind:8s} reserve + settle {added:9.2f} µs   record alone {alone:6.2f} µs{verdict}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["memory", "sqlite", "postgres", "redis"])
