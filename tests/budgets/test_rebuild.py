"""Budget counters caught up from the ledger: what a store missed is charged once, never twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

import pytest

from meterline import Budget, Meter, Usage
from meterline.budgets import BudgetStore, RedisBudgetStore, rebuild_from_ledger
from meterline.ledger import SQLiteLedger
from tests.budgets.stores import KINDS, fresh_store
from tests.cli.console import run
from tests.ledger.conformance import make_event
from tests.ledger.services import require_redis
from tests.storage.freezer import frozen_relay


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o", "provider": "openai"}


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BudgetStore]:
    """Each budget store in turn, fresh."""
    with fresh_store(request.param, tmp_path) as fresh:
        yield fresh


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SQLiteLedger]:
    """A fresh SQLite ledger."""
    ledger = SQLiteLedger(tmp_path / "usage.db")
    yield ledger
    ledger.close()


def used(meter: Meter) -> dict[tuple[str, tuple[tuple[str, str], ...]], object]:
    """What every budget row has used, by (metric, key)."""
    return {(row.metric, tuple(row.key.items())): row.used for row in meter.budget_status()}


@pytest.mark.services
def test_spend_the_store_missed_is_charged_once(store: BudgetStore, ledger: SQLiteLedger) -> None:
    """Calls recorded while budgets were not charged are charged by a rebuild; a second adds nothing."""
    budgets = [
        Budget(per=("user",), max_cost="100", name="per-user"),
        Budget(max_requests=1000, max_tool_calls=100, window="day", name="daily"),
    ]
    charged = Meter(ledger, durability="sync", budget_store=store, budgets=budgets)
    missed = Meter(ledger, durability="sync")  # as under fail_open with the store down: ledger only
    for meter, users in ((charged, ("u1", "u2")), (missed, ("u2", "u3"))):
        for user in users:
            with meter.scope(user=user):
                meter.record(Usage(input_tokens=1000, output_tokens=100), **GPT)  # $0.0035
                meter.record_tool("search", duration_ms=5)
    missed.close()
    before = used(charged)
    caught = charged.rebuild_budgets()
    after = used(charged)
    assert after[("cost", (("user", "u1"),))] == before[("cost", (("user", "u1"),))] == Decimal("0.0035")
    assert after[("cost", (("user", "u2"),))] == Decimal("0.007")
    assert after[("cost", (("user", "u3"),))] == Decimal("0.0035")
    assert after[("requests", ())] == 4
    assert after[("tool_calls", ())] == 4
    assert {(row.budget, tuple(row.key.items())) for row in caught} == {
        ("per-user", (("user", "u2"),)),
        ("per-user", (("user", "u3"),)),
        ("daily", ()),
    }
    assert charged.rebuild_budgets() == []  # nothing is charged twice
    assert used(charged) == after
    charged.close()


@pytest.mark.parametrize(
    ("window", "zone"),
    [(timedelta(hours=3), "UTC"), ("day", "Asia/Kolkata"), ("day", "UTC"), (None, "UTC")],
    ids=["rolling", "half-hour-zone", "day", "no-window"],
)
def test_only_the_current_window_is_charged(ledger: SQLiteLedger, window: object, zone: str) -> None:
    """Events of the window's buckets are charged to their bucket; older events are not."""
    from meterline.budgets import MemoryBudgetStore

    now = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)
    times = [now - timedelta(minutes=minutes) for minutes in (5, 50, 130, 200, 60 * 26)]
    ledger.write([make_event(index, at) for index, at in enumerate(times)])
    budget = Budget(max_requests=100, window=window, timezone=zone, name="b")  # type: ignore[arg-type]
    store = MemoryBudgetStore()
    caught = rebuild_from_ledger([budget], store, ledger, now=now.timestamp())
    # 5, 50 and 130 minutes ago are within 3 hours; 200 minutes ago is still today in UTC, and
    # in Kolkata (since 18:30 UTC the day before); 26 hours ago counts only without a window.
    expected = 3 if isinstance(window, timedelta) else 5 if window is None else 4
    assert sum(row.charged["requests"] for row in caught) == expected  # type: ignore[misc]
    assert rebuild_from_ledger([budget], store, ledger, now=now.timestamp()) == []


@pytest.mark.services
def test_an_outage_under_fail_open_is_charged_once_the_store_is_back(tmp_path: Path) -> None:
    """Calls let through while Redis was frozen are charged by rebuild_budgets() once it answers."""
    url = require_redis()
    with frozen_relay(url, 6379) as relay:
        store = RedisBudgetStore(relay.url(url), f"rebuild-{time.monotonic_ns()}", timeout=0.5)
        meter = Meter(
            f"sqlite:///{tmp_path}/usage.db",
            durability="sync",
            budget_store=store,
            budgets=[Budget(max_requests=100, name="global", on_store_error="fail_open")],
        )
        try:
            meter.record(Usage(input_tokens=10), **GPT)
            relay.freeze()
            for _ in range(2):  # through, uncharged: the store does not answer
                with meter.reserve(**GPT, input_tokens=10):
                    meter.record(Usage(input_tokens=10), **GPT)
            relay.thaw()
            time.sleep(0.2)
            assert [row.used for row in meter.budget_status() if row.metric == "requests"] == [1]
            (caught,) = meter.rebuild_budgets()
            assert caught.charged == {
                "tokens": 20,
                "input_tokens": 20,
                "cost": Decimal("0.00005"),
                "requests": 2,
            }
            assert [row.used for row in meter.budget_status() if row.metric == "requests"] == [3]
        finally:
            meter.close()
            store.close()


def test_the_command_line_rebuilds_and_says_when_nothing_is_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``meterline budgets rebuild --from-ledger`` charges what is behind, then finds nothing."""
    ledger_url = f"sqlite:///{tmp_path}/usage.db"
    store_url = f"sqlite:///{tmp_path}/budgets.db"
    meter = Meter(ledger_url, budget_store=store_url, budgets=[Budget(per=("user",), max_tokens=10**6)])
    meter.close()  # the store now keeps the budget's definition
    ledger_only = Meter(ledger_url)
    with ledger_only.scope(user="u1"):
        ledger_only.record(Usage(input_tokens=300, output_tokens=20), **GPT)
    ledger_only.close()
    status, out, _ = run(capsys, "budgets", "rebuild", "--from-ledger", ledger_url, "--store", store_url)
    assert status == 0
    assert "user=u1" in out
    assert "tokens +320" in out
    status, out, _ = run(capsys, "budgets", "rebuild", "--from-ledger", ledger_url, "--store", store_url)
    assert (status, out.strip()) == (
        0,
        "Nothing to charge: every counter holds at least what the ledger holds.",
    )
