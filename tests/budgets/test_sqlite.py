"""The SQLite budget store passes the conformance suite, and keeps its file private and versioned."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from meterline._storage import sqlite_migrate
from meterline.budgets._sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteBudgetStore, encode
from meterline.budgets._store import ZERO
from meterline.exceptions import BudgetStoreError, ConfigurationError
from meterline.ledger._sqlite import SQLiteLedger
from tests.budgets.conformance import NOW, StoreConformance, line, vec


class TestSQLite(StoreConformance):
    """The conformance suite on a SQLite file."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteBudgetStore]:
        """A fresh store in a new file."""
        store = SQLiteBudgetStore(tmp_path / "budgets.db")
        yield store
        store.close()


def test_file_is_private(tmp_path: Path) -> None:
    """The file the store creates, and its WAL, are readable by the owner only."""
    store = SQLiteBudgetStore(tmp_path / "b.db")
    store.settle(None, [line()], [vec(1)], NOW)
    for name in ("b.db", "b.db-wal"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    store.close()


def test_shares_the_ledger_file(tmp_path: Path) -> None:
    """The store and the ledger share one file, each with its own tables and schema version."""
    path = tmp_path / "meterline.db"
    ledger = SQLiteLedger(path)
    store = SQLiteBudgetStore(path)
    store.settle(None, [line()], [vec(5)], NOW)
    store.close()
    ledger.close()
    again = SQLiteLedger(path)  # reopening the ledger does not trip over the budget tables
    again.close()
    reopened = SQLiteBudgetStore(path)
    assert reopened.read([line()], NOW) == [(vec(5), vec(0))]
    reopened.close()
    with sqlite3.connect(path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meterline_events", "meterline_meta", "meterline_budget_usage", "meterline_budget_meta"} <= tables


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file whose budget tables were written by a newer meterline is refused, naming both versions."""
    path = tmp_path / "b.db"
    SQLiteBudgetStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE meterline_budget_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    conn.close()
    with pytest.raises(BudgetStoreError, match=rf"version {SCHEMA_VERSION + 1}.*newer meterline"):
        SQLiteBudgetStore(path)


def _hold_as_version_2_does(conn: sqlite3.Connection, rid: str, holds: list[tuple[str, int]]) -> None:
    for budget, tokens in holds:
        conn.execute(
            "INSERT INTO meterline_budget_holds (rid, budget, key, tokens, input_tokens, output_tokens,"
            " cost, requests, tool_calls, expires) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, ?)",
            (rid, encode(budget), encode(("u1",)), tokens, tokens, NOW + 30),
        )


def test_version_2_holds_are_kept_by_the_migration(tmp_path: Path) -> None:
    """Holds a version-2 store booked are still held after the move to version 3, and settle as before."""
    path = tmp_path / "b.db"
    conn = sqlite3.connect(path, isolation_level=None)
    sqlite_migrate(
        conn, meta="meterline_budget_meta", migrations=MIGRATIONS[:2], error=BudgetStoreError, url="v2"
    )
    _hold_as_version_2_does(conn, "r1", [("a", 4), ("b", 5)])
    store = SQLiteBudgetStore(path)
    a, b = line("a"), line("b")
    assert store.read([a, b], NOW) == [(ZERO, vec(4)), (ZERO, vec(5))]
    store.settle("r1", [a, b], [vec(1), vec(2)], NOW)
    assert store.read([a, b], NOW) == [(vec(1), ZERO), (vec(2), ZERO)]
    store.reserve("r2", [a, b], [vec(1), vec(1)], NOW, 30)
    store.release("r2")
    assert store.read([a, b], NOW) == [(vec(1), ZERO), (vec(2), ZERO)]
    _hold_as_version_2_does(conn, "r3", [("a", 6)])  # a process of the older meterline, still running
    assert store.read([a], NOW) == [(vec(1), vec(6))]
    store.settle("r3", [a], [vec(1)], NOW)
    assert store.read([a], NOW) == [(vec(2), ZERO)]
    conn.close()
    store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT value FROM meterline_budget_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises BudgetStoreError with the driver's error as cause."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BudgetStoreError) as caught:
        SQLiteBudgetStore(path)
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_bad_timeout_is_a_configuration_error(tmp_path: Path) -> None:
    """A negative or non-numeric timeout is refused, naming the value."""
    with pytest.raises(ConfigurationError, match="timeout=-1"):
        SQLiteBudgetStore(tmp_path / "b.db", timeout=-1)


def test_closed_store_raises(tmp_path: Path) -> None:
    """Using a closed store raises BudgetStoreError; closing twice is fine."""
    store = SQLiteBudgetStore(tmp_path / "b.db")
    store.close()
    store.close()
    with pytest.raises(BudgetStoreError, match="closed"):
        store.read([line()], NOW)


def test_overflow_is_a_store_error(tmp_path: Path) -> None:
    """Usage past 64 bits raises BudgetStoreError and books nothing."""
    store = SQLiteBudgetStore(tmp_path / "b.db")
    with pytest.raises(BudgetStoreError):
        store.settle(None, [line()], [vec(2**64)], NOW)
    assert store.read([line()], NOW) == [(vec(0), vec(0))]
    store.close()


def _child_settles(store: SQLiteBudgetStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        store.settle(None, [line()], [vec(2)], NOW)
        queue.put((store.read([line()], NOW)[0][0], id(store._conn)))
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_fork_safe(tmp_path: Path) -> None:
    """A forked child opens its own connection even if a thread held the lock; the parent's keeps working."""
    store = SQLiteBudgetStore(tmp_path / "b.db")
    store.settle(None, [line()], [vec(1)], NOW)
    parents = id(store._conn)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    with store._lock:  # as if another thread were in a call when the process forked
        child = context.Process(target=_child_settles, args=(store, queue))
        child.start()
    # The parent's connection stays alive in the child, so a new one cannot reuse its id.
    used, connection = cast("tuple[object, int]", queue.get(timeout=30))
    assert used == vec(3)
    assert connection != parents
    child.join(30)
    assert child.exitcode == 0
    store.settle(None, [line()], [vec(4)], NOW)
    assert store.read([line()], NOW) == [(vec(7), vec(0))]
    store.close()
