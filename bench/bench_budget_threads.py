"""``record()`` from two threads flat out under in-memory budgets: the tail, and calls a second.

Run from the project root:

    .venv/bin/python bench/bench_budget_threads.py                  # as shipped
    .venv/bin/python bench/bench_budget_threads.py --blocking-lock  # the store's lock a threading.Lock

Two threads each record ``BENCH_N`` calls (default 100,000) in a scope of their own, under two
budgets of the in-memory store (a daily cost and daily requests per user), which every call
charges under the store's lock. Each call is timed on its own; the figures are p50, p99 and
p99.9 in microseconds and the calls a second, for three runs. ``--blocking-lock`` swaps the
store's lock for a `threading.Lock`, as it was: two threads blocking on it fall into taking
turns at every call (a lock convoy, see `meterline._yielding_lock`).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from array import array

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

import meterline
from meterline import Meter, Usage

PER_THREAD = int(os.environ.get("BENCH_N", "100000"))


def _run(blocking: bool) -> tuple[float, float, float, float]:
    """One run: p50, p99, p99.9 (µs) and calls a second."""
    meter = Meter()
    meter.add_budget(meterline.Budget(max_cost="9000000", window="day"))
    meter.add_budget(meterline.Budget(max_requests=10**9, window="day", per=("user",)))
    if blocking:
        meter._engine().store._lock = threading.Lock()  # type: ignore[attr-defined]
    samples = [array("q") for _ in range(2)]
    start = threading.Barrier(2)

    def thread(index: int) -> None:
        rng = random.Random(index)
        out = samples[index]
        clock = time.perf_counter_ns
        start.wait()
        with meter.scope(user=f"user{index}"):
            for _ in range(PER_THREAD):
                usage = Usage(input_tokens=rng.randrange(100, 5000), output_tokens=rng.randrange(10, 800))
                began = clock()
                meter.record(usage, model="gpt-4o", provider="openai")
                out.append(clock() - began)

    threads = [threading.Thread(target=thread, args=(index,)) for index in range(2)]
    began = time.perf_counter()
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()
    seconds = time.perf_counter() - began
    calls = sorted(sample for part in samples for sample in part)

    def at(q: float) -> float:
        return calls[int(q * len(calls))] / 1e3

    return at(0.5), at(0.99), at(0.999), len(calls) / seconds


def main() -> None:
    """Print three runs."""
    blocking = "--blocking-lock" in sys.argv
    print(
        f"2 threads x {PER_THREAD:,} record() calls, 2 in-memory budgets, the store's lock:"
        f" {'threading.Lock' if blocking else 'as shipped'}"
    )
    print(f"{'run':<6}{'p50 µs':>9}{'p99 µs':>9}{'p99.9 µs':>10}{'calls/s':>10}")
    for run in range(1, 4):
        p50, p99, p999, rate = _run(blocking)
        print(f"{run:<6}{p50:>9.1f}{p99:>9.1f}{p999:>10.1f}{rate:>10,.0f}")


if __name__ == "__main__":
    main()
