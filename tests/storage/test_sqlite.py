"""SQLite files: created private, migrated forward once, one transaction at a time."""

from __future__ import annotations

import math
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline._storage import (
    check_timeout,
    sqlite_connect,
    sqlite_migrate,
    sqlite_schema_version,
    sqlite_transaction,
)
from meterline.exceptions import ConfigurationError, LedgerError

URL = "sqlite:///test.db"


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (n INTEGER NOT NULL)")


def _add_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN m INTEGER NOT NULL DEFAULT 0")


def _open(path: Path) -> sqlite3.Connection:
    def prepare(conn: sqlite3.Connection) -> None:
        sqlite_migrate(
            conn, meta="meterline_meta", migrations=(_create, _add_column), error=LedgerError, url=URL
        )

    return sqlite_connect(path, 1.0, LedgerError, "ledger", prepare)


def test_the_file_is_private_and_migrated(tmp_path: Path) -> None:
    """A new file is readable by its owner only and its schema is at the latest version."""
    conn = _open(tmp_path / "a.db")
    assert stat.S_IMODE((tmp_path / "a.db").stat().st_mode) == 0o600
    assert sqlite_schema_version(conn, "meterline_meta", LedgerError) == 2
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_migrations_run_once(tmp_path: Path) -> None:
    """Opening a migrated file again applies nothing (the ALTER would fail if repeated)."""
    _open(tmp_path / "a.db").close()
    conn = _open(tmp_path / "a.db")
    assert [row[1] for row in conn.execute("PRAGMA table_info(t)")] == ["n", "m"]


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A file written by a newer meterline is refused, naming both versions, and not changed."""
    conn = _open(tmp_path / "a.db")
    conn.execute("UPDATE meterline_meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(LedgerError, match=r"schema version 9, written by a newer meterline.*version 2"):
        _open(tmp_path / "a.db")
    check = sqlite3.connect(tmp_path / "a.db")
    assert check.execute("SELECT value FROM meterline_meta").fetchone() == ("9",)


def test_a_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    """The block's writes are committed when it ends and rolled back when it raises."""
    conn = _open(tmp_path / "a.db")

    def insert(*values: int | None) -> None:
        with sqlite_transaction(conn, LedgerError, "write", URL):
            for value in values:
                conn.execute("INSERT INTO t (n) VALUES (?)", (value,))
            if not values:
                raise KeyError("boom")

    insert(1)
    with pytest.raises(KeyError):
        insert()
    with pytest.raises(LedgerError, match=r"write failed on sqlite:///test\.db: NOT NULL"):
        insert(3, None)
    assert not conn.in_transaction
    assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]


@given(st.one_of(st.booleans(), st.just(math.nan), st.floats(max_value=-1e-9), st.text(), st.none()))
def test_check_timeout_refuses_what_is_not_seconds(timeout: object) -> None:
    """A timeout that is not a non-negative number (bools and NaN included) is refused by value."""
    with pytest.raises(ConfigurationError, match="timeout="):
        check_timeout(timeout)


@given(st.one_of(st.integers(min_value=0, max_value=10**6), st.floats(min_value=0, max_value=1e6)))
def test_check_timeout_takes_seconds(timeout: float) -> None:
    """A non-negative int or float is taken as that many seconds."""
    assert check_timeout(timeout) == float(timeout)
