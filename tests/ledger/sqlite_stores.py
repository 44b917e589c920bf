"""SQLite ledger stores of older schema versions, made from today's for the migration tests."""

from __future__ import annotations

import sqlite3

from meterline.ledger._sqlite_folds import DAY_TOTALS
from meterline.ledger._sqlite_schema import MERGE_RECENT, RECENT


def as_version_7(conn: sqlite3.Connection) -> None:
    """Make a version 8 store the version 7 one its writes made: no folded sums per value and day."""
    conn.execute(f"DROP TABLE {DAY_TOTALS}")
    conn.execute("UPDATE meterline_meta SET value = '7' WHERE key = 'schema_version'")


def as_version_6(conn: sqlite3.Connection) -> None:
    """Make a version 8 store the version 6 one its writes made: every row by value in the daily roll-up."""
    as_version_7(conn)
    conn.execute(MERGE_RECENT)
    conn.execute(f"DROP TABLE {RECENT}")
    conn.execute("UPDATE meterline_meta SET value = '6' WHERE key = 'schema_version'")
