"""Benchmark of a flood of new model names: the cost of a record() with a name never seen before.

Run from the project root:

    .venv/bin/python bench/bench_names.py

Three figures, microseconds per ``record()`` outside any scope: a known model (the steady
state), a new name of a provider genai-prices knows (``openai``: every new name is looked up
in its price data once, the lookup being genai-prices' own work), and a new name of a
self-hosted provider (``ollama``: no price data to search, so what meterline itself adds for
a new name: a row, a memo entry). And the memory 20,000 more names add once the memos are
full (``max_live_keys=1000``), which must stay flat.
"""

from __future__ import annotations

import gc
import logging
import os
import statistics
import sys
import time
import tracemalloc
import warnings

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from meterline import Meter, Usage

USAGE = Usage(input_tokens=1200, output_tokens=300)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def per_record(provider: str, names: list[str]) -> float:
    """Microseconds per record() over ``names`` on a fresh meter."""
    meter = Meter(max_live_keys=1000)
    meter.record(USAGE, model="gpt-4o-mini", provider="openai")
    start = time.perf_counter()
    for name in names:
        meter.record(USAGE, model=name, provider=provider)
    return (time.perf_counter() - start) / len(names) * 1e6


def growth() -> float:
    """Bytes 20,000 more new names keep once the memos are full (traced from the start)."""
    tracemalloc.start()
    meter = Meter(max_live_keys=1000)
    for index in range(20_000):
        meter.record(USAGE, model=f"llama-{index}", provider="ollama")
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(20_000, 40_000):
        meter.record(USAGE, model=f"llama-{index}", provider="ollama")
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before)


def main() -> int:
    """Print the figures."""
    warnings.simplefilter("ignore")  # one UnpricedModelWarning per new name
    logging.disable(logging.WARNING)  # and the roll-ups' overflow warning, once per meter
    known = statistics.median(per_record("openai", ["gpt-4o-mini"] * 20_000) for _ in range(ROUNDS))
    priced = statistics.median(
        per_record("openai", [f"gpt-new-{round_}-{i}" for i in range(2000)]) for round_ in range(ROUNDS)
    )
    hosted = statistics.median(
        per_record("ollama", [f"llama-{round_}-{i}" for i in range(20_000)]) for round_ in range(ROUNDS)
    )
    print(f"record(), a known model:                         {known:8.1f} us")
    print(f"record(), a new name (openai: genai-prices lookup): {priced:8.1f} us")
    print(f"record(), a new name (ollama: meterline's own work): {hosted:8.1f} us")
    print(f"memory kept by 20,000 more new names:            {growth() / 1e6:8.3f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
