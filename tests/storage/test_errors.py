"""Driver errors leave a store as the store's own error; everything else passes unchanged."""

from __future__ import annotations

import sqlite3

import pytest

from meterline._storage import driver_errors, is_lost_race, mapped
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
