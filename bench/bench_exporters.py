"""Benchmark of ``record()`` with the OpenTelemetry and Prometheus exporters on, against off.

Run from the project root:

    .venv/bin/python bench/bench_exporters.py

Figures are microseconds per ``record()`` (the median of ``BENCH_ROUNDS`` rounds of
``BENCH_N`` calls), for a priced call inside a two-level scope:

- ``off``: no exporter;
- ``otel api-only``: `OTelExporter` with no SDK installed (the global proxies record nothing);
- ``otel sdk``: `OTelExporter` into an SDK ``MeterProvider`` with an in-memory reader;
- ``otel sdk+span``: the same inside a recording SDK span (the attributes are set on it, and
  the SDK's default trace-based exemplar filter then samples exemplars: most of the cost);
- ``prometheus``: `PrometheusExporter` into its own registry;
- ``both``: the SDK OpenTelemetry exporter and Prometheus together;
- ``billing sink``: a `BillingSink` queueing events (its thread posts to a port nobody
  listens on, and spools), to show what ``record()`` pays for the live feed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from meterline import Meter, Usage
from meterline.exporters import BillingSink, CloudEvents, OTelExporter, PrometheusExporter

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
NUMBER = int(os.environ.get("BENCH_N", "20000"))
USAGE = Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)


def measure(setup: Callable[[Meter], object], *, in_span: bool = False) -> float:
    """Median microseconds per record() with ``setup(meter)`` applied."""
    meter = Meter()
    setup(meter)
    tracer = TracerProvider().get_tracer("bench")

    def run() -> None:
        with meter.scope(user="u1", session="s1"):
            for _ in range(NUMBER):
                meter.record(USAGE, model="gpt-4o", provider="openai", latency_ms=812.0)

    def timed() -> None:
        if in_span:
            with tracer.start_as_current_span("chat gpt-4o"):
                run()
        else:
            run()

    timed()  # warm caches (price plans, label children)
    return statistics.median(timeit.repeat(timed, number=1, repeat=ROUNDS)) / NUMBER * 1e6


def main() -> None:
    spool = tempfile.mkdtemp(prefix="meterline-bench-")
    cases: list[tuple[str, Callable[[Meter], object], bool]] = [
        ("off", lambda meter: None, False),
        ("otel api-only", lambda meter: OTelExporter().attach(meter), False),
        (
            "otel sdk",
            lambda meter: OTelExporter(
                meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
            ).attach(meter),
            False,
        ),
        (
            "otel sdk+span",
            lambda meter: OTelExporter(
                meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])
            ).attach(meter),
            True,
        ),
        ("prometheus", lambda meter: PrometheusExporter(registry=CollectorRegistry()).attach(meter), False),
        (
            "both",
            lambda meter: (
                OTelExporter(meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()])).attach(
                    meter
                ),
                PrometheusExporter(registry=CollectorRegistry()).attach(meter),
            ),
            True,
        ),
        (
            "billing sink",
            lambda meter: BillingSink(
                "http://127.0.0.1:9/events",
                CloudEvents(source="//bench"),
                spool_dir=spool,
                max_queue=10 * NUMBER * (ROUNDS + 1),
            ).attach(meter),
            False,
        ),
    ]
    print(f"record() with exporters: µs per call, median of {ROUNDS} rounds of {NUMBER:,} calls")
    baseline = None
    for name, setup, in_span in cases:
        micros = measure(setup, in_span=in_span)
        baseline = baseline or micros
        print(f"  {name:<15} {micros:7.2f} µs   (+{micros - baseline:5.2f} µs over off)")


if __name__ == "__main__":
    main()
