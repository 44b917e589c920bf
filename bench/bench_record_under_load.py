"""``record()`` with a ledger, two threads flat out, product-shaped dimensions: does it ever wait?

Run from the project root:

    .venv/bin/python bench/bench_record_under_load.py

Two application threads call ``record()`` as fast as they can, each call timed on its own
(``perf_counter_ns``), with the dimensions of a real product: 200 orgs, 10,000 users,
100,000 sessions, 5 agents, 50 priced models. The same run is made on a meter without a
ledger (the floor: what ``record()`` costs by itself under the same contention) and on one
with a SQLite ledger (``sqlite:///``, batch mode, the default ``when_full="spool"``), which
cannot store events as fast as two threads make them: the queue fills, and the events past
it go through the overflow buffer to the spool and back into the ledger. Both are run three
times: with the default ``max_live_keys`` (100,000: past them, each new key's share goes to
its call shape's overflow row); with every key live (1,000,000: almost every call makes a
row of its own, as each draws its agent and model); and with every key live and sessions
that keep their agent and model, as a product's do, so that a session's calls (four on
average) share a row, whose pending shares wait for its next tally. The figures are
p50/p99/p99.9/max per call in microseconds, the share of calls over 0.2 ms, the longest full
collection of the cyclic collector in milliseconds and its time in all, in seconds (a full
collection walks every tracked object while it holds the GIL: each live row, its pending
shares, each event waiting for the ledger), the ledger's over the floor's as a ratio, and
the check that every event reached the ledger exactly once (after ``flush``). Goal of the
ledger issue: p99.9 at most 0.2 ms, no event lost.

What sets the tail: with two threads flat out, CPython hands the GIL over by force every
switch interval (``sys.getswitchinterval()``, 5 ms), and a call preempted then waits for the
other thread's turn (and the ledger's threads') to end: about 200 calls a second, of those
under way at that instant, so the share of calls preempted is about 200 times a call's time
(5 µs a call: 0.1 %). A call that makes a row also leaves containers behind, and the
collector's young collections (one per 700 of them; every tenth walks what the last ten kept,
0.37 ms at the median while the first 100,000 keys make their rows) land in some of those
calls: with the collector off, the default run's floor has a p99.9 of 0.15 ms. With a
ledger, its threads take about half the GIL's time (each event bound for SQLite on the
writer thread, or, past the queue, written as a spool line and read back from it), so the
calls are half as many a second while as many are preempted: their share over 0.2 ms
doubles or triples.
"""

from __future__ import annotations

import bisect
import gc
import logging
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from array import array
from pathlib import Path

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline import Meter, Usage

PER_THREAD = int(os.environ.get("BENCH_N", "200000"))
THREADS = 2
GOAL_NS = 200_000
"""The ledger issue's goal for p99.9: 0.2 ms."""
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o4-mini",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
)
"""Priced models (ten here; the ledger's cost does not depend on how many)."""


def _run(meter: Meter, *, one_row_a_session: bool = False) -> tuple[float, ...]:
    """Both threads flat out; `_figures` of every call's duration and of the collector's pauses.

    Each call's arguments are drawn just before it, outside its timing: holding all 400,000
    calls' dictionaries in memory beforehand would give the collector millions of objects to
    walk that a real application does not have, and its pauses would be the benchmark's own.
    ``one_row_a_session``: a session keeps its agent and model, as a product's does, so that
    its calls (four on average) share a row; else each call draws them, and almost every
    call makes a row of its own.
    """
    samples: list[array[int]] = [array("q") for _ in range(THREADS)]  # ints the collector skips
    start = threading.Barrier(THREADS)

    def thread(index: int) -> None:
        rng = random.Random(index)
        out = samples[index]
        record = meter.record
        clock = time.perf_counter_ns
        start.wait()
        for _ in range(PER_THREAD):
            session = rng.randrange(100_000)
            user = session % 10_000 if one_row_a_session else rng.randrange(10_000)
            dims = {
                "org": f"org{user % 200}",
                "user": f"user{user}",
                "session": f"s{session}",
                "agent": f"agent{session % 5 if one_row_a_session else rng.randrange(5)}",
            }
            usage = Usage(input_tokens=rng.randrange(100, 5000), output_tokens=rng.randrange(10, 800))
            model = MODELS[session % len(MODELS) if one_row_a_session else rng.randrange(len(MODELS))]
            began = clock()
            record(usage, model=model, provider=None, tags=dims)
            out.append(clock() - began)

    threads = [threading.Thread(target=thread, args=(index,)) for index in range(THREADS)]
    gc.collect()  # the last run's meter (a reference cycle) and its rows, freed now, not in this run
    with _CollectorWatch() as watch:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return _figures(sorted(sample for part in samples for sample in part), watch)


class _CollectorWatch:
    """The cyclic collector's pauses while a run lasts: the longest full collection, the total.

    A full collection walks every object the process tracks (a live row, its pending list,
    an event waiting for the ledger...) while holding the GIL: the longest is the longest a
    call can be made to wait by the collector, whichever thread's allocation started it.
    """

    def __init__(self) -> None:
        self.started = 0
        self.longest_full_ns = 0
        self.total_ns = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter_ns()
            return
        took = time.perf_counter_ns() - self.started
        self.total_ns += took
        if info["generation"] == 2:
            self.longest_full_ns = max(self.longest_full_ns, took)

    def __enter__(self) -> _CollectorWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _figures(samples: list[int], watch: _CollectorWatch) -> tuple[float, ...]:
    """p50, p99, p99.9 and max in microseconds, the share of calls over the goal (0.2 ms) in %,
    the longest full collection in ms and the collector's time in s."""

    def at(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] / 1e3

    over = len(samples) - bisect.bisect_right(samples, GOAL_NS)
    return (
        at(0.5),
        at(0.99),
        at(0.999),
        samples[-1] / 1e3,
        100 * over / len(samples),
        watch.longest_full_ns / 1e6,
        watch.total_ns / 1e9,
    )


def _with_ledger(max_live_keys: int, *, one_row_a_session: bool) -> tuple[tuple[float, ...], str]:
    """The run with a SQLite ledger: its figures, and what became of the events."""
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'ledger.db'}"
        meter = Meter(ledger=url, max_live_keys=max_live_keys)
        began = time.perf_counter()
        ours = _run(meter, one_row_a_session=one_row_a_session)
        calls = time.perf_counter() - began
        stats_before = meter.stats().ledger
        assert meter.flush(timeout=600)
        ledger = meter.ledger
        assert ledger is not None
        deadline = time.monotonic() + 600
        while (
            sum(row.events for row in ledger.totals()) < THREADS * PER_THREAD and time.monotonic() < deadline
        ):
            time.sleep(0.2)  # the spool replays into the ledger
        stored = sum(row.events for row in ledger.totals())
        settled = time.perf_counter() - began
        meter.close()
    total = THREADS * PER_THREAD
    assert stats_before is not None
    fate = (
        f"calls took {calls:.1f} s ({total / calls:,.0f}/s); overflowed past the queue: "
        f"{stats_before.overflowed:,}; all {stored:,} of {total:,} events in the ledger after {settled:.1f} s"
        + ("" if stored == total else "  <-- EVENTS MISSING")
    )
    return ours, fate


SCENARIOS: tuple[tuple[str, int, bool], ...] = (
    ("default max_live_keys (100,000)", 100_000, False),
    ("every key live", 1_000_000, False),
    ("sessions of several calls, every key live", 1_000_000, True),
)
"""(label, ``max_live_keys``, whether a session's calls share a row): the runs, in order."""


def main() -> None:
    """Print both runs and their ratio for each of `SCENARIOS`."""
    warnings.simplefilter("ignore")
    logging.getLogger("meterline").setLevel(logging.ERROR)  # the bound reached, once per meter
    print(f"{THREADS} threads x {PER_THREAD:,} record() calls, 10,000 users / 100,000 sessions / 200 orgs")
    for label, max_live_keys, one_row_a_session in SCENARIOS:
        floor = _run(Meter(max_live_keys=max_live_keys), one_row_a_session=one_row_a_session)
        ours, fate = _with_ledger(max_live_keys, one_row_a_session=one_row_a_session)
        print(f"\n{label}")
        print(
            f"{'':<22}{'p50 µs':>9}{'p99 µs':>9}{'p99.9 µs':>10}{'max µs':>10}{'>0.2 ms %':>11}"
            f"{'full GC ms':>12}{'GC s':>7}"
        )
        print(_line("no ledger (floor)", floor))
        print(_line("SQLite ledger", ours))
        ratios = [o / f for o, f in zip(ours[:4], floor[:4], strict=True)]
        print(f"{'ratio':<22}{ratios[0]:>9.2f}{ratios[1]:>9.2f}{ratios[2]:>10.2f}{ratios[3]:>10.2f}")
        print(fate)


def _line(label: str, figures: tuple[float, ...]) -> str:
    """One row of the table: the label, then `_figures`' figures."""
    p50, p99, p999, most, over, full_ms, collector_s = figures
    return (
        f"{label:<22}{p50:>9.1f}{p99:>9.1f}{p999:>10.1f}{most:>10.1f}{over:>11.3f}"
        f"{full_ms:>12.1f}{collector_s:>7.2f}"
    )


if __name__ == "__main__":
    main()
