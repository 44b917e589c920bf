"""Prometheus counters and budget gauges, single-process, multiprocess and served from a ledger."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import meterline
from meterline import Meter, Usage
from meterline.exporters import LedgerCollector, PrometheusExporter
from meterline.exporters._prometheus import TOKEN_TYPES

USAGE = Usage(
    input_tokens=1200, cache_read_tokens=1000, cache_write_tokens=50, output_tokens=300, reasoning_tokens=100
)
LABELS = {"provider": "openai", "model": "gpt-4o", "operation": "chat"}


def exposition(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry's text exposition, by name and labels (``_created`` left out)."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_counters_by_token_type_status_cost_and_completeness() -> None:
    """Tokens by exclusive token type, cost in USD, requests by status, unmeasured and unpriced calls."""
    registry = CollectorRegistry()
    meter = Meter()
    PrometheusExporter(registry=registry).attach(meter)
    with meter.scope(user="u1", session="s1"):
        event = meter.record(USAGE, model="gpt-4o", provider="openai")
        meter.record(USAGE, model="gpt-4o", provider="openai")
        meter.record(None, model="gpt-4o", provider="openai", status="timeout")
        meter.record(Usage(input_tokens=10, output_tokens=5), model="my-model", provider="ollama")
    get = registry.get_sample_value
    tokens = {kind: get("meterline_tokens_total", {**LABELS, "token_type": kind}) for kind in TOKEN_TYPES}
    assert tokens == {
        "input": 300.0,
        "cache_read": 2000.0,
        "cache_write": 100.0,
        "output": 400.0,
        "reasoning": 200.0,
    }
    assert sum(value or 0.0 for value in tokens.values()) == 2 * USAGE.total_tokens
    assert event.cost is not None
    assert get("meterline_cost_usd_total", LABELS) == pytest.approx(2 * float(event.cost))
    assert get("meterline_requests_total", {**LABELS, "status": "ok"}) == 2.0
    assert get("meterline_requests_total", {**LABELS, "status": "timeout"}) == 1.0
    assert get("meterline_unmeasured_requests_total", LABELS) == 1.0
    ollama = {"provider": "ollama", "model": "my-model", "operation": "chat"}
    assert get("meterline_unpriced_requests_total", ollama) == 1.0
    assert get("meterline_cost_usd_total", ollama) == 0.0


def test_server_tool_calls_are_counted_by_tool() -> None:
    """Web searches and file searches of model calls go to ``meterline_server_tool_calls_total``."""
    registry = CollectorRegistry()
    meter = Meter()
    PrometheusExporter(registry=registry).attach(meter)
    tools = Usage(input_tokens=10, output_tokens=1, web_search_requests=2, file_search_requests=1)
    meter.record(tools, model="gpt-4o", provider="openai")
    meter.record(tools, model="gpt-4o", provider="openai")
    get = registry.get_sample_value
    assert get("meterline_server_tool_calls_total", {**LABELS, "tool": "web_search"}) == 4.0
    assert get("meterline_server_tool_calls_total", {**LABELS, "tool": "file_search"}) == 2.0
    assert get("meterline_server_tool_calls_total", {**LABELS, "tool": "code_execution"}) is None


def test_labels_never_carry_user_or_session_ids() -> None:
    """Every series is labelled by provider, model, operation and token type or status only."""
    registry = CollectorRegistry()
    meter = Meter()
    PrometheusExporter(registry=registry).attach(meter)
    for user in ("alice", "bob", "carol"):
        with meter.scope(user=user, session=f"{user}-1"):
            meter.record(USAGE, model="gpt-4o", provider="openai", tags={"customer": f"cust_{user}"})
    names = {name for (_, labels) in exposition(registry) for name, _ in labels}
    assert names <= {"provider", "model", "operation", "token_type", "status"}
    assert "alice" not in generate_latest(registry).decode()


def test_tools_and_cache_lookups_are_not_counted() -> None:
    """Only model calls are counted."""
    registry = CollectorRegistry()
    meter = Meter()
    PrometheusExporter(registry=registry).attach(meter)
    meter.record_tool("web_search")
    meter.record_cache_hit(tokens_saved=10)
    assert registry.get_sample_value("meterline_requests_total", {**LABELS, "status": "ok"}) is None


def test_budget_gauges_show_the_lowest_remaining_per_budget_and_metric() -> None:
    """Per-key budgets export the minimum remaining over their keys, labelled by budget and metric only."""
    registry = CollectorRegistry()
    meter = Meter()
    meter.add_budget(meterline.Budget(name="daily", per=("user",), max_cost=Decimal("5.00"), window="day"))
    meter.add_budget(meterline.Budget(name="all_tokens", max_tokens=100_000))
    PrometheusExporter(registry=registry).attach(meter)
    with meter.scope(user="u1"):
        small = meter.record(Usage(input_tokens=1000, output_tokens=100), model="gpt-4o", provider="openai")
    with meter.scope(user="u2"):
        big = meter.record(Usage(input_tokens=50_000, output_tokens=100), model="gpt-4o", provider="openai")
    assert small.cost is not None
    assert big.cost is not None
    get = registry.get_sample_value
    assert get("meterline_budget_remaining", {"budget": "daily", "metric": "cost"}) == pytest.approx(
        float(5 - big.cost)
    )
    assert get("meterline_budget_limit", {"budget": "daily", "metric": "cost"}) == 5.0
    assert get("meterline_budget_remaining", {"budget": "all_tokens", "metric": "tokens"}) == 100_000 - 51_200
    labels = {name for (metric, labels) in exposition(registry) if "budget" in metric for name, _ in labels}
    assert labels == {"budget", "metric"}


def test_a_failing_budget_status_leaves_the_scrape_working(caplog: pytest.LogCaptureFixture) -> None:
    """When budget_status() raises, the scrape still returns the counters and the failure is logged."""

    class BrokenBudgets(Meter):
        def budget_status(self) -> list[meterline.BudgetStatus]:
            raise ConnectionError("budget store down")

    registry = CollectorRegistry()
    meter = BrokenBudgets()
    PrometheusExporter(registry=registry).attach(meter)
    meter.record(USAGE, model="gpt-4o", provider="openai")
    with caplog.at_level(logging.ERROR, logger="meterline"):
        text = generate_latest(registry).decode()
    assert "meterline_requests_total" in text
    assert "meterline_budget_remaining" not in text
    assert "budget_status() failed" in caplog.text


def test_detach_stops_counting_and_removes_the_gauges() -> None:
    """The function attach returns unsubscribes and unregisters the budget collector."""
    registry = CollectorRegistry()
    meter = Meter()
    meter.add_budget(meterline.Budget(name="all_tokens", max_tokens=1000))
    detach = PrometheusExporter(registry=registry).attach(meter)
    meter.record(USAGE, model="gpt-4o", provider="openai")
    detach()
    meter.record(USAGE, model="gpt-4o", provider="openai")
    assert registry.get_sample_value("meterline_requests_total", {**LABELS, "status": "ok"}) == 1.0
    assert (
        registry.get_sample_value("meterline_budget_remaining", {"budget": "all_tokens", "metric": "tokens"})
        is None
    )


def test_the_ledger_collector_serves_the_same_counters(tmp_path: Path) -> None:
    """Counters computed from a ledger's roll-ups equal what the live exporter counted."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    live = CollectorRegistry()
    meter = Meter(ledger=url)
    PrometheusExporter(registry=live).attach(meter)
    with meter.scope(user="u1"):
        meter.record(USAGE, model="gpt-4o", provider="openai")
        meter.record(None, model="gpt-4o", provider="openai", status="error")
        meter.record(Usage(input_tokens=10, output_tokens=5), model="my-model", provider="ollama")
        meter.record_tool("web_search")
    meter.close()
    ledger = meterline.open_ledger(url)
    served = CollectorRegistry()
    served.register(LedgerCollector(ledger))
    try:
        assert exposition(served) == pytest.approx(exposition(live))
        error = tuple(sorted({**LABELS, "status": "error"}.items()))
        assert exposition(served)[("meterline_requests_total", error)] == 1.0
    finally:
        ledger.close()


CHILD = textwrap.dedent(
    """
    import sys
    import meterline
    from meterline.exporters import PrometheusExporter
    meter = meterline.Meter()
    PrometheusExporter().attach(meter)
    for _ in range(int(sys.argv[1])):
        with meter.scope(user="u1"):
            usage = meterline.Usage(input_tokens=100, output_tokens=10)
            meter.record(usage, model="gpt-4o", provider="openai")
    """
)


@pytest.fixture
def served() -> Iterator[list[subprocess.Popen[str]]]:
    """The serve-metrics processes a test starts, terminated after it."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def serve(args: list[str], processes: list[subprocess.Popen[str]], env: dict[str, str]) -> str:
    """Start `meterline serve-metrics --port 0 ARGS` and return its /metrics text."""
    process = subprocess.Popen(
        [sys.executable, "-m", "meterline", "serve-metrics", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    processes.append(process)
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
    assert match, line
    with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path, served: list[subprocess.Popen[str]]) -> None:
    """Processes in prometheus_client multiprocess mode add up, and serve-metrics exposes the sum."""
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for count in (3, 4):
        subprocess.run([sys.executable, "-c", CHILD, str(count)], env=env, check=True, timeout=60)
    text = serve([], served, env)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("meterline_requests_total", tuple(sorted({**LABELS, "status": "ok"}.items())))] == 7.0
    assert (
        samples[("meterline_tokens_total", tuple(sorted({**LABELS, "token_type": "input"}.items())))] == 700.0
    )
    assert "u1" not in text


def test_serve_metrics_from_a_ledger(tmp_path: Path, served: list[subprocess.Popen[str]]) -> None:
    """serve-metrics --ledger exposes the counters computed from the ledger."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    meter = Meter(ledger=url)
    for _ in range(5):
        meter.record(USAGE, model="gpt-4o", provider="openai")
    meter.close()
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    text = serve(["--ledger", url], served, env)
    assert (
        'meterline_requests_total{model="gpt-4o",operation="chat",provider="openai",status="ok"} 5.0' in text
    )


def test_serve_metrics_needs_a_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a multiprocess directory or a ledger, serve-metrics says what to give it."""
    from meterline._cli import main

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert main(["serve-metrics", "--port", "0"]) == 2
    assert "--multiproc-dir" in capsys.readouterr().err
    assert (
        main(["serve-metrics", "--port", "0", "--ledger", "sqlite:///x.db", "--multiproc-dir", "/tmp"]) == 2
    )
    assert "not both" in capsys.readouterr().err
