"""The SQLite ledger's folded roll-ups by value: sums per (value, day) and per (value, month), no key.

Once a day has passed, the next write folds it (`fold_days`): its rows of the daily roll-up
by value (keyed by value, day and model fields: ``meterline_rollup_dim_day`` and `RECENT`)
are added up per value and day into `DAY_TOTALS`, and per value and month into
``meterline_rollup_dim_month``. A report by one dimension that names no model field reads
the whole months of its range from the monthly rows, the other folded days from `DAY_TOTALS`,
and only the days not yet folded from the keyed rows: a value's day has one row here where
the keyed roll-up has one per model used (a product's user used five or six models a day:
127,587 rows against 713,861 at 1M events), so a report over a range that does not start on
a month's first day, or by day, reads a sixth of the rows.

Both tables hold the days before `FOLDED` only: events that arrive later for those days are
added into them by the write (`ROLL_UP_FOLDED`), a prune takes its cut day's events out of
them (`TAKE_OUT_FOLDED`) and re-pricing corrects them (`CORRECT_MONTH`, `CORRECT_DAY_TOTAL`).
Like every roll-up by value, they hold `ALL_EVENTS`' rows, leave a tool call's usage and cost
out, and keep costs in two parts (`BY_VALUE_SUMS`).

SQL text is made only of constants; every value is a parameter.
"""

from __future__ import annotations as _annotations

import sqlite3
from typing import Final

from meterline.ledger._groups import DAY
from meterline.ledger._sqlite_schema import (
    ALL_EVENTS,
    BY_VALUE_DDL,
    BY_VALUE_SUMS,
    DAY_KEYS,
    DIM_SUMS,
    EVENT_VALUES,
    FOLDED,
    MONTH_KEY,
    MONTH_OF_DAY,
    RECENT,
    ROLLUPS,
    SPLIT,
    TAKEN_OUT,
    VALUE_ROWS,
    add_into,
    correct,
    folded_until,
    roll_up,
)

__all__ = [
    "CORRECT_DAY_TOTAL",
    "CORRECT_MONTH",
    "DAY_TOTALS",
    "DAY_TOTALS_DDL",
    "FILL_DAY_TOTALS",
    "KEYED_DAYS",
    "PERIOD_INDEXES",
    "ROLL_UP_FOLDED",
    "TAKE_OUT_FOLDED",
    "UNFOLD_MONTHS",
    "fold_days",
]

DAY_TOTALS: Final = "meterline_rollup_dim_day_total"
"""The folded days' sums per (value, UTC day), over every key (schema version 8)."""
_DAY_TOTAL_KEY: Final = ("value_id", "day")
DAY_TOTALS_DDL: Final = (
    f"CREATE TABLE {DAY_TOTALS} (value_id INTEGER NOT NULL, day INTEGER NOT NULL, {BY_VALUE_DDL},"
    f" PRIMARY KEY ({', '.join(_DAY_TOTAL_KEY)})) WITHOUT ROWID"
)
PERIOD_INDEXES: Final = (
    f"CREATE INDEX {DAY_TOTALS}_by_day ON {DAY_TOTALS} (day)",
    f"CREATE INDEX {ROLLUPS[2]}_by_month ON {ROLLUPS[2]} (month)",
)
"""Both folded roll-ups by their period (schema version 9), so that a report over some days
or months can start from their rows rather than from each value of its dimension (about
4 bytes an event at a product's cardinality: 254 -> 258 at 1M events, 335,000 rows)."""
_FOLDING: Final = "meterline_folding"
"""A temporary table of the days being folded, per (value, day): read once from the keyed rows,
added into both folded roll-ups."""
_FOLDING_DDL: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_FOLDING} (value_id INTEGER, day INTEGER, {BY_VALUE_DDL})"
)
_SUMMED: Final = ", ".join(f"SUM({name})" for name in BY_VALUE_SUMS)
_COLUMNS: Final = ", ".join(BY_VALUE_SUMS)
KEYED_DAYS: Final = (
    f"SELECT value_id, day, {_SUMMED}"  # noqa: S608 - constants only
    f" FROM (SELECT value_id, day, {_COLUMNS} FROM {ROLLUPS[1]}"
    f" WHERE value_id IN (SELECT {ALL_EVENTS} UNION {EVENT_VALUES}"
    " WHERE e.time_ns >= ?1 * 1000000000 AND e.time_ns < ?2 * 1000000000)"
    " AND day >= ?1 AND day < ?2"
    f" UNION ALL SELECT value_id, day, {_COLUMNS} FROM {RECENT} WHERE day >= ?1 AND day < ?2)"
    " GROUP BY 1, 2"
)
"""The keyed rows of the days [first, last) (parameters, seconds), per (value, day).

Those still in `RECENT` are read by day (its key's first column). Those of the daily roll-up
are found through the values of those days' events (read by the time index), then by
primary key: the table has no index by day, and reading all of it to find one day's rows
took time that grew with the ledger's history (95 ms a day at one million product-shaped
events; 38 ms this way, a time that follows the day's events instead). Every row of a day
comes from an event of that day: a re-priced one keeps its values and day; a pruned one
leaves its rows at zero."""
_TO_FOLD: Final = f"INSERT INTO temp.{_FOLDING} (value_id, day, {_COLUMNS}) {KEYED_DAYS}"
_FOLD_DAYS: Final = add_into(
    DAY_TOTALS,
    _DAY_TOTAL_KEY,
    f"SELECT value_id, day, {_SUMMED} FROM temp.{_FOLDING} WHERE true",  # noqa: S608
)
_FOLD_MONTHS: Final = add_into(
    ROLLUPS[2],
    MONTH_KEY,
    f"SELECT value_id, {MONTH_OF_DAY.format('day')}, {_SUMMED} FROM temp.{_FOLDING} WHERE true",  # noqa: S608
)
FILL_DAY_TOTALS: Final = add_into(
    DAY_TOTALS,
    _DAY_TOTAL_KEY,
    f"SELECT value_id, day, {_SUMMED} FROM (SELECT value_id, day, {_COLUMNS} FROM {ROLLUPS[1]}"  # noqa: S608
    f" WHERE day < ?1 UNION ALL SELECT value_id, day, {_COLUMNS} FROM {RECENT} WHERE day < ?1) WHERE true",
)
"""Adds the keyed rows of the days before a day (parameter, seconds: `FOLDED`'s) into `DAY_TOTALS`
(the migration to version 8)."""
_MONTH_KEYS: Final = ("j.value", MONTH_OF_DAY.format(DAY_KEYS[1]))
_LATE: Final = "e.rowid > ? AND e.time_ns < ?"
ROLL_UP_FOLDED: Final = (
    roll_up(ROLLUPS[2], MONTH_KEY, _MONTH_KEYS, DIM_SUMS, VALUE_ROWS, _LATE),
    roll_up(DAY_TOTALS, _DAY_TOTAL_KEY, DAY_KEYS[:2], DIM_SUMS, VALUE_ROWS, _LATE),
)
"""Add the events stored past a rowid (first parameter) and before a time (in ns, second) into the
folded roll-ups: late events of days already folded."""
_CUT: Final = "e.time_ns >= ? AND e.time_ns < ?"
TAKE_OUT_FOLDED: Final = (
    roll_up(ROLLUPS[2], MONTH_KEY, _MONTH_KEYS, TAKEN_OUT, VALUE_ROWS, _CUT),
    roll_up(DAY_TOTALS, _DAY_TOTAL_KEY, DAY_KEYS[:2], TAKEN_OUT, VALUE_ROWS, _CUT),
)
"""Take the events of [first, last) (parameters, ns) out of the folded roll-ups (a prune's cut day)."""
UNFOLD_MONTHS: Final = add_into(
    ROLLUPS[2],
    MONTH_KEY,
    f"SELECT value_id, {MONTH_OF_DAY.format('day')}, {_SUMMED.replace('SUM(', '-SUM(')}"  # noqa: S608
    f" FROM {ROLLUPS[1]} WHERE day < ?",
)
"""Takes the daily roll-up's rows of the days before a day (parameter) out of the monthly one (a prune)."""
CORRECT_MONTH: Final = correct(ROLLUPS[2], MONTH_KEY, SPLIT)
CORRECT_DAY_TOTAL: Final = correct(DAY_TOTALS, _DAY_TOTAL_KEY, SPLIT)
"""Correct one row's cost (low bits, high bits) and unpriced count, then its key (re-pricing)."""


def fold_days(conn: sqlite3.Connection, newest_ns: int) -> None:
    """Fold the days before the one of ``newest_ns`` not yet folded into `DAY_TOTALS` and the months.

    The day of the newest event stays in the keyed roll-up only, until an event of a later
    day is written; events that arrive later for folded days are added into both
    (`ROLL_UP_FOLDED`). Runs in the write's transaction: each day is folded exactly once.
    """
    first = folded_until(conn)
    last = newest_ns // (DAY * 10**9) * DAY
    if last > first:
        conn.execute(_FOLDING_DDL)
        conn.execute(_TO_FOLD, (first, last))
        conn.execute(_FOLD_DAYS)
        conn.execute(_FOLD_MONTHS)
        conn.execute(f"DELETE FROM temp.{_FOLDING}")  # noqa: S608 - constants only
        conn.execute("UPDATE meterline_meta SET value = ? WHERE key = ?", (str(last), FOLDED))
