"""Budgets through the meter hold across processes, and `meterline budgets` reads a shared store.

The store-level race (every shared store, 16 processes) is in ``tests/budgets/test_processes.py``;
this one goes through `Meter.reserve` and `Meter.record` end to end: scopes, pricing, leases
and settlement, with 16 processes on SQLite and on Redis.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest

from meterline import Budget, BudgetExceeded, Meter, Usage
from meterline._cli import main
from tests.budgets.test_processes import Spec, clean_context, open_spec, run
from tests.ledger.services import require_redis

PROCESSES = 16
CALLS = 200
LIMIT = Decimal("0.20")
"""About 55 calls' worth: the budget runs out part of the way through 3,200 attempts."""


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o", "provider": "openai"}


def budgets() -> list[Budget]:
    """The org budget under test and a roomy per-user one (every process, the same definitions)."""
    return [
        Budget(per=("org",), max_cost=str(LIMIT), window="month", name="org monthly"),
        Budget(per=("user",), max_cost="100", max_requests=10_000, name="per user"),
    ]


def caller(spec: Spec, number: int, start: Any, results: Any) -> None:
    """Make 200 metered calls in org scope, recording a random actual usage within the reservation."""
    meter = Meter(budget_store=open_spec(spec), budgets=budgets())
    rng = random.Random(number)
    spent = Decimal(0)
    granted = refused = 0
    start.wait(60)
    with meter.scope(org="acme", user=f"u{number % 4}"):
        for _ in range(CALLS):
            try:
                with meter.reserve(input_tokens=1000, max_output_tokens=100, **GPT):  # $0.0035
                    event = meter.record(Usage(input_tokens=1000, output_tokens=rng.randint(0, 100)), **GPT)
            except BudgetExceeded:
                refused += 1
                continue
            granted += 1
            assert event.cost is not None
            spent += event.cost
    meter.close()
    results.put((granted, refused, str(spent), meter.stats().machinery_errors))


@pytest.fixture(params=["sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spec]:
    """A fresh SQLite file or Redis prefix."""
    if request.param == "sqlite":
        yield ("sqlite", str(tmp_path / "budgets.db"), "")
        return
    from tests.budgets.stores import delete_prefix

    url = require_redis()
    yield ("redis", url, "meter_procs")
    delete_prefix(url, "meter_procs")


def test_sixteen_metered_processes_stay_within_the_budget(spec: Spec) -> None:
    """16 processes x 200 reserve-then-record calls spend at most the limit, every call accounted for."""
    Meter(budget_store=open_spec(spec), budgets=budgets()).close()  # tables made before the race
    context = clean_context()
    start = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    processes = [run(context, caller, spec, number, start, results) for number in range(PROCESSES)]
    start.wait(120)
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    granted = sum(outcome[0] for outcome in outcomes)
    refused = sum(outcome[1] for outcome in outcomes)
    spent = sum(Decimal(outcome[2]) for outcome in outcomes)
    assert sum(outcome[3] for outcome in outcomes) == 0
    assert granted + refused == PROCESSES * CALLS
    assert refused > 0
    meter = Meter(budget_store=open_spec(spec), budgets=budgets())
    rows = {(row.budget, row.metric): row for row in meter.budget_status() if row.budget == "org monthly"}
    org = rows[("org monthly", "cost")]
    assert org.reserved == 0  # nothing leaked
    assert org.used == spent <= LIMIT  # nothing lost, never over
    assert spent > LIMIT - Decimal("0.0035")  # spent up to the last whole call
    requests = sum(row.used for row in meter.budget_status() if row.metric == "requests")
    assert requests == granted
    meter.close()


def test_budgets_command_reads_a_shared_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline budgets` lists every stored budget and key: used, reserved, remaining, resets at."""
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    meter = Meter(budget_store=url, budgets=budgets())
    with meter.scope(org="acme", user="u1"):
        meter.record(Usage(input_tokens=1000, output_tokens=100), **GPT)
        held = meter.reserve(input_tokens=1000, max_output_tokens=100, **GPT)
    assert main(["budgets", "--store", url]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split() == [
        "budget",
        "key",
        "metric",
        "limit",
        "used",
        "reserved",
        "remaining",
        "resets",
        "at",
    ]
    org = next(line for line in lines if line.strip().startswith("org monthly"))
    assert "org=acme" in org
    for amount in ("$0.2000", "$0.0035", "$0.1930"):
        assert amount in org
    assert " UTC" in org  # a monthly window resets at a stated time
    assert any("per user" in line and "requests" in line and "user=u1" in line for line in lines)
    assert main(["budgets", "--store", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    cost = next(row for row in rows if row["budget"] == "org monthly" and row["metric"] == "cost")
    assert cost == {
        "budget": "org monthly",
        "key": {"org": "acme"},
        "metric": "cost",
        "limit": "0.2",
        "used": "0.0035",
        "reserved": "0.0035",
        "remaining": "0.193",
        "resets_at": cost["resets_at"],
    }
    held.release()
    meter.close()


def test_budgets_command_needs_a_store(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --store or $METERLINE_BUDGET_STORE the command says what to pass."""
    monkeypatch.delenv("METERLINE_BUDGET_STORE", raising=False)
    assert main(["budgets"]) == 2
    assert "--store" in capsys.readouterr().err


def test_budgets_command_with_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty store says there are no budgets yet."""
    assert main(["budgets", "--store", f"sqlite:///{tmp_path / 'empty.db'}"]) == 0
    assert "No budgets" in capsys.readouterr().out
