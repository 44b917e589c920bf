"""SQLite ledger stores of older schema versions, made from today's for the migration tests."""

from __future__ import annotations

import sqlite3

from meterline.ledger._sqlite_folds import DAY_TOTALS, PERIOD_INDEXES
from meterline.ledger._sqlite_schema import MERGE_RECENT, RECENT


def as_version_8(conn: sqlite3.Connection) -> None:
    """Make a version 9 store the version 8 one its writes made: no index of the folded roll-ups' periods."""
    for statement in PERIOD_INDEXES:
        conn.execute(f"DROP INDEX {statement.split()[2]}")  # CREATE INDEX <name> ON ...
    conn.execute("UPDATE meterline_meta SET value = '8' WHERE key = 'schema_version'")


def as_version_7(conn: sqlite3.Connection) -> None:
    """Make a version 9 store the version 7 one its writes made: no folded sums per value and day."""
    as_version_8(conn)
    conn.execute(f"DROP TABLE {DAY_TOTALS}")
    conn.execute("UPDATE meterline_meta SET value = '7' WHERE key = 'schema_version'")


def as_version_6(conn: sqlite3.Connection) -> None:
    """Make a version 9 store the version 6 one its writes made: every row by value in the daily roll-up."""
    as_version_7(conn)
    conn.execute(MERGE_RECENT)
    conn.execute(f"DROP TABLE {RECENT}")
    conn.execute("UPDATE meterline_meta SET value = '6' WHERE key = 'schema_version'")
