"""The spool's lines: writing product-shaped events and reading them back, beside JSON's own cost.

Run from the project root:

    .venv/bin/python bench/bench_spool.py

When the ledger is slower than the calls, most events past the writer's queue go through the
spool (`bench/bench_record_under_load.py`: about 70 %): a line written on the spooler's thread,
read back on the writer's, both sharing the GIL with the application. This times both over
`workload.events` (50 priced models, 200 orgs, 10,000 users, 100,000 sessions, 5 agents, 12
tools), best of ``BENCH_ROUNDS``, in µs an event, and the line's bytes. The floor for the same
work is JSON itself: ``json.dumps`` of each line's values (what a line holds, made ready) and
``json.loads`` of each line, with no event made and nothing checked; ours over the floor is the
price of making the events and of checking them as strictly as `Meter.record` does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workload
from meterline._delivery._spool_line import SharedDimensions, read_line, spool_lines

N = int(os.environ.get("BENCH_N", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _best(work: Callable[[], object]) -> float:
    """The shortest of `ROUNDS` runs of ``work``, in µs an event."""
    runs = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        work()
        runs.append(time.perf_counter() - began)
    return min(runs) / N * 1e6


def main() -> None:
    """Print µs an event to write and read the spool's lines, beside JSON alone, as ratios."""
    events = next(iter(workload.events(N, batch=N)))
    data = spool_lines(events)
    lines = data.splitlines()
    values = [json.loads(line) for line in lines]
    back: list[object] = []

    def read() -> None:
        shared: SharedDimensions = {}
        back[:] = [read_line(line, shared) for line in lines]

    write_us = _best(lambda: spool_lines(events))
    dumps_us = _best(lambda: [json.dumps(value, separators=(",", ":")) for value in values])
    read_us = _best(read)
    loads_us = _best(lambda: [json.loads(line) for line in lines])
    assert back == events  # every event read back as it was written
    print(f"{N:,} product-shaped events, {len(data) / N:.0f} bytes a line; best of {ROUNDS}")
    for what, ours, floor, engine in (
        ("write", write_us, dumps_us, "dumps"),
        ("read", read_us, loads_us, "loads"),
    ):
        print(
            f"{what:<6} {ours:5.2f} µs an event, json.{engine} alone {floor:5.2f}: ratio {ours / floor:.2f}"
        )


if __name__ == "__main__":
    main()
