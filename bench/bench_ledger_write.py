"""Benchmarks of the ledger's write path, with the targets of the ledger issue.

Run from the project root:

    .venv/bin/python bench/bench_ledger_write.py

1. Latency at a steady 10,000 events/s: ``record()`` of a meter without a ledger, the same
   with a SQLite ledger attached (batch mode), and ``LedgerWriter.submit`` alone. Each call
   is timed on its own (``perf_counter_ns``) on a fixed schedule; between calls the loop
   sleeps, as an application waiting on its model calls would (so the writer thread gets
   the GIL). Target: median with a ledger within 1.5x of the ledger-less median, p99 under
   100 us.
2. Sustained throughput in batch mode from the first call to the last committed row:
   ``record()`` with a SQLite ledger, and ``submit`` of ready events. Both outrun the writer,
   so the events past its queue go through the spool and are replayed (``flush()`` returns
   once they are stored or spooled; the run ends when the ledger holds them all). Target: at
   least 100,000 events/s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline import Meter, Usage
from meterline._delivery import Spool
from meterline.ledger._sqlite import SQLiteLedger
from meterline.ledger._writer import LedgerWriter

RATE = int(os.environ.get("BENCH_RATE", "10000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
THROUGHPUT_N = int(os.environ.get("BENCH_THROUGHPUT_N", "300000"))
USAGE = Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300)


def paced(call: Callable[[], object], rate: int, seconds: float) -> list[float]:
    """Call ``call`` ``rate`` times a second for ``seconds``; return each call's duration in us."""
    period = 1e9 / rate
    count = int(rate * seconds)
    samples = [0.0] * count
    clock = time.perf_counter_ns
    sleep = time.sleep
    start = clock() + 1_000_000
    for index in range(count):
        due = start + index * period
        while True:  # sleep (releasing the GIL) until the call is due
            ahead = due - clock()
            if ahead <= 0:
                break
            sleep(ahead / 2e9 if ahead > 200_000 else 0)
        begin = clock()
        call()
        samples[index] = (clock() - begin) / 1000
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (
        statistics.median(ordered),
        ordered[int(len(ordered) * 0.99)],
        ordered[int(len(ordered) * 0.999)],
    )


def latency(directory: Path) -> None:
    print(f"latency at {RATE:,} events/s for {SECONDS:g} s each (us per call: median / p99 / p99.9)")
    plain = Meter()
    results: dict[str, tuple[float, float, float]] = {}

    def run(label: str, call: Callable[[], object]) -> None:
        for _ in range(2000):  # warm up
            call()
        results[label] = summary(paced(call, RATE, SECONDS))
        median, p99, p999 = results[label]
        print(f"  {label:<42} {median:7.2f} / {p99:7.2f} / {p999:8.2f}")

    run("record(), no ledger", lambda: plain.record(USAGE, model="gpt-4o", provider="openai"))
    metered = Meter(ledger=f"sqlite:///{directory / 'latency.db'}")
    run("record(), SQLite ledger (batch)", lambda: metered.record(USAGE, model="gpt-4o", provider="openai"))
    assert metered.flush(60)
    metered.close()

    ledger = SQLiteLedger(directory / "submit.db")
    writer = LedgerWriter(ledger, spool=Spool(directory / "spool"))
    source = Meter()
    events = iter([source.record(USAGE, model="gpt-4o", provider="openai") for _ in range(RATE * 6)])
    run("LedgerWriter.submit alone, SQLite", lambda: writer.submit(next(events)))
    assert writer.close(60)
    ledger.close()

    base = results["record(), no ledger"][0]
    median, p99, _ = results["record(), SQLite ledger (batch)"]
    print(
        f"  -> record() with a ledger: median {median / base:.2f}x the ledger-less median (target <= 1.5x),"
        f" p99 {p99:.1f} us (target < 100 us)"
    )


def throughput(directory: Path) -> None:
    print(f"throughput, batch mode, {THROUGHPUT_N:,} events, first call to the last row stored")
    meter = Meter(ledger=f"sqlite:///{directory / 'record.db'}")
    record = meter.record
    begin = time.perf_counter()
    for _ in range(THROUGHPUT_N):
        record(USAGE, model="gpt-4o", provider="openai")
    submitted = time.perf_counter()
    assert meter.flush(600)  # every event stored or spooled (past the queue) ...
    ledger = meter.ledger
    assert ledger is not None
    deadline = time.monotonic() + 600
    while ledger.stats().events < THROUGHPUT_N and time.monotonic() < deadline:
        time.sleep(0.05)  # ... and the spooled ones replayed into the ledger
    done = time.perf_counter()
    assert ledger.stats().events == THROUGHPUT_N
    meter.close()
    print(
        f"  record() -> SQLite rows: {THROUGHPUT_N / (done - begin):>10,.0f} events/s"
        f"  (calls took {submitted - begin:.2f} s, commits done {done - submitted:.2f} s later)"
    )

    source = Meter()
    events = [source.record(USAGE, model="gpt-4o", provider="openai") for _ in range(THROUGHPUT_N)]
    ledger2 = SQLiteLedger(directory / "submit-throughput.db")
    writer = LedgerWriter(ledger2, spool=Spool(directory / "spool2"))
    submit = writer.submit
    begin = time.perf_counter()
    for event in events:
        submit(event)
    submitted = time.perf_counter()
    assert writer.flush(600)  # stored or spooled (past the queue) ...
    deadline = time.monotonic() + 600
    while ledger2.stats().events < THROUGHPUT_N and time.monotonic() < deadline:
        time.sleep(0.05)  # ... and the spooled ones replayed
    done = time.perf_counter()
    stats = writer.stats()
    assert ledger2.stats().events == THROUGHPUT_N, stats
    writer.close()
    ledger2.close()
    print(
        f"  submit() -> SQLite rows: {THROUGHPUT_N / (done - begin):>10,.0f} events/s"
        f"  (submits took {submitted - begin:.2f} s, blocked waits {stats.blocked})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="meterline-bench-") as tmp:
        directory = Path(tmp)
        latency(directory)
        throughput(directory)


if __name__ == "__main__":
    main()
