"""Driver errors leave a store as the store's own error; everything else passes unchanged."""

from __future__ import annotations

import sqlite3

import pytest

from meterline._storage import driver_errors, is_lost_race, is_value_error, mapped
from meterline.exceptions import BudgetStoreError, ConfigurationError, LedgerError


def test_a_sqlite_error_becomes_the_stores_error() -> None:
    """A sqlite3 error names what failed and where, with the driver's error as its cause."""
    conn = sqlite3.connect(":memory:")
    expected = r"^write failed on sqlite:///x\.db: no such table: nope$"
    with pytest.raises(LedgerError, match=expected) as info, mapped(LedgerError, "write", "sqlite:///x.db"):
        conn.execute("SELECT * FROM nope")
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


def test_an_int_past_64_bits_is_a_driver_error() -> None:
    """sqlite3's OverflowError for an int it cannot bind is mapped like any driver error."""
    conn = sqlite3.connect(":memory:")
    with (
        pytest.raises(BudgetStoreError, match="reserve failed") as info,
        mapped(BudgetStoreError, "reserve", "sqlite:///b.db"),
    ):
        conn.execute("SELECT ?", (2**64,))
    assert isinstance(info.value.__cause__, OverflowError)


@pytest.mark.parametrize("raised", [ConfigurationError("bad"), KeyError("k"), KeyboardInterrupt()])
def test_other_errors_pass_unchanged(raised: BaseException) -> None:
    """Meterline's own errors, bugs and interrupts are not re-labelled as store failures."""
    with pytest.raises(type(raised)) as info, mapped(LedgerError, "write", "sqlite:///x.db"):
        raise raised
    assert info.value is raised


def test_psycopg_errors_are_driver_errors_once_loaded() -> None:
    """With psycopg loaded, its errors are mapped too; a lost race is told apart from a failure."""
    psycopg = pytest.importorskip("psycopg")
    assert psycopg.Error in driver_errors()
    with (
        pytest.raises(LedgerError, match=r"totals failed on postgresql://db/x: gone") as info,
        mapped(LedgerError, "totals", "postgresql://db/x"),
    ):
        raise psycopg.OperationalError("gone")
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert is_lost_race(psycopg.errors.DeadlockDetected("deadlock"))
    assert is_lost_race(psycopg.errors.SerializationFailure("race"))
    assert not is_lost_race(psycopg.OperationalError("gone"))
    assert not is_lost_race(sqlite3.OperationalError("database is locked"))


def _raised_by(statement: str, *params: object) -> LedgerError:
    """The LedgerError a real SQLite statement's failure becomes."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT INTO t VALUES ('a', 1)")
    try:
        with mapped(LedgerError, "write", "sqlite:///x.db"):
            conn.execute(statement, params)
    except LedgerError as exc:
        return exc
    raise AssertionError(f"{statement} did not fail")


def test_value_errors_are_told_from_the_stores_condition() -> None:
    """Values a store cannot take are value errors; a missing table, a closed or locked store are not."""
    assert is_value_error(_raised_by("INSERT INTO t VALUES ('a', 2)"))  # a constraint
    assert is_value_error(_raised_by("INSERT INTO t VALUES (?, 1)", "\ud800"))  # a lone surrogate
    assert is_value_error(_raised_by("INSERT INTO t VALUES ('b', ?)", 2**64))  # past 64 bits
    assert not is_value_error(_raised_by("INSERT INTO nope VALUES (1)"))
    assert not is_value_error(LedgerError("the ledger is down"))


def test_postgres_value_errors_are_value_errors() -> None:
    """PostgreSQL's data, integrity and limit classes are value errors; a lost connection is not."""
    psycopg = pytest.importorskip("psycopg")
    assert is_value_error(psycopg.errors.NumericValueOutOfRange())
    assert is_value_error(psycopg.errors.UniqueViolation())
    assert is_value_error(psycopg.errors.ProgramLimitExceeded())
    assert not is_value_error(psycopg.OperationalError("server closed the connection unexpectedly"))
