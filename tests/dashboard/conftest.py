"""The dashboard's fixtures: filled ledgers, a budget store with usage, and a dashboard serving them.

The ledger is SQLite, and PostgreSQL as well when it is up; the dashboard listens on a free
loopback port.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

import meterline
from meterline import Budget, Meter, Usage, UsageEvent
from meterline.budgets import BudgetStore, SQLiteBudgetStore
from meterline.ledger import LedgerBackend, open_ledger
from tests.dashboard.data import product_events
from tests.ledger.services import require_postgres

pytest.importorskip("fastapi", reason="the dashboard extra is not installed")

from meterline._dashboard import DashboardServer, Views

BUDGETS = (
    Budget(name="daily-cost", per=("user",), max_cost="0.05", window="day", alert_at=(0.5, 0.8, 1.0)),
    Budget(name="monthly-tokens", max_tokens=10_000_000, window="month"),
)


@dataclass
class Filled:
    """A ledger holding `product_events`, and those events."""

    url: str
    ledger: LedgerBackend
    events: list[UsageEvent]
    now: datetime


def _fill(url: str, ledger: LedgerBackend) -> Filled:
    now = datetime.now(tz=UTC)
    events = product_events(now)
    for start in range(0, len(events), 500):
        ledger.write(events[start : start + 500])
    return Filled(url, ledger, events, now)


@pytest.fixture(scope="module")
def sqlite_filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """A SQLite ledger holding a small product's 40 days."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'ledger.db'}"
    ledger = open_ledger(url)
    yield _fill(url, ledger)
    ledger.close()


@pytest.fixture(scope="module")
def postgres_filled() -> Iterator[Filled]:
    """The same in a PostgreSQL ledger of its own schema (skips when PostgreSQL is down)."""
    url = require_postgres()
    from meterline.ledger import PostgresLedger

    psycopg = pytest.importorskip("psycopg")
    schema = f"meterline_dash_{uuid.uuid4().hex[:12]}"
    ledger = PostgresLedger(url, schema=schema)
    try:
        yield _fill(f"{url}|{schema}", ledger)
    finally:
        ledger.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema))
            )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def filled(request: pytest.FixtureRequest) -> Filled:
    """Each backend's filled ledger in turn."""
    result: Filled = request.getfixturevalue(f"{request.param}_filled")
    return result


@pytest.fixture(scope="module")
def budget_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BudgetStore]:
    """A budget store where a meter enforcing `BUDGETS` metered alice (past two alerts) and bob."""
    store = SQLiteBudgetStore(tmp_path_factory.mktemp("budgets") / "budgets.db")
    meter = Meter(budget_store=store, budgets=BUDGETS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meterline.UnpricedModelWarning)
        with meter.scope(user="alice"):
            meter.record(Usage(input_tokens=14_000, output_tokens=1_000), model="gpt-4o", provider="openai")
        with meter.scope(user="bob"):
            meter.record(Usage(input_tokens=2_000, output_tokens=100), model="gpt-4o", provider="openai")
    meter.close()
    yield store
    store.close()


@pytest.fixture(scope="module")
def views(sqlite_filled: Filled, budget_store: BudgetStore) -> Views:
    """The dashboard's read side over the SQLite ledger and the budget store."""
    return Views(sqlite_filled.ledger, budget_store)


@pytest.fixture(scope="module")
def served(views: Views) -> Iterator[str]:
    """The dashboard over `views` on a free loopback port; its base URL."""
    server = DashboardServer(views, port=0, refresh_seconds=0.5)
    url = server.start()
    yield url
    server.stop()
