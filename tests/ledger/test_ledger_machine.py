"""Random writes, prunes, re-pricing and reports: SQL ledgers always agree with the in-memory one."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from meterline.ledger import LedgerBackend
from meterline.ledger._sqlite import SQLiteLedger
from tests.ledger.ledger_machine import LedgerMachine
from tests.ledger.services import require_postgres

_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _sqlite_file() -> tuple[LedgerBackend, LedgerBackend, Callable[[], None]]:
    """Two connections to a fresh SQLite file, and what deletes it."""
    directory = tempfile.mkdtemp(prefix="meterline-machine-")
    path = Path(directory) / "ledger.db"
    return SQLiteLedger(path), SQLiteLedger(path), lambda: shutil.rmtree(directory)


class SQLiteMachine(LedgerMachine):
    """The machine on one SQLite file, through two connections."""

    open_ledger = staticmethod(_sqlite_file)


def test_sqlite_ledger_agrees_with_the_in_memory_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step on SQLite (newest daily rows merged every few rows, each way in taken) matches in memory."""
    monkeypatch.setattr("meterline.ledger._sqlite.RECENT_ROWS", 6)
    # A few values per dimension would always be read by value: take each way in turn.
    ways = itertools.cycle(("values", "range", "events"))
    monkeypatch.setattr("meterline.ledger._sqlite_reports.way_in", lambda *_: next(ways))
    run_state_machine_as_test(SQLiteMachine, settings=_SETTINGS)


@pytest.mark.services
def test_postgres_ledger_agrees_with_the_in_memory_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step on PostgreSQL, two connections to one schema (each way in taken), matches in memory."""
    url = require_postgres()
    # A few values per dimension would always be read by value: take each way in turn.
    ways = itertools.cycle((True, False))
    monkeypatch.setattr("meterline.ledger._postgres_reports._Reader.range_first", lambda *_: next(ways))
    import psycopg
    from psycopg import sql

    from meterline.ledger._postgres import PostgresLedger

    def schema() -> tuple[LedgerBackend, LedgerBackend, Callable[[], None]]:
        name = f"meterline_machine_{uuid.uuid4().hex[:12]}"

        def drop() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

        return PostgresLedger(url, schema=name), PostgresLedger(url, schema=name), drop

    class PostgresMachine(LedgerMachine):
        open_ledger = staticmethod(schema)

    run_state_machine_as_test(PostgresMachine, settings=settings(_SETTINGS, max_examples=20))
