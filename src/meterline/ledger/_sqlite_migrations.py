"""The SQLite ledger's forward migrations: each schema version's layout, from the first one on.

`MIGRATIONS` takes a store from version ``n`` to ``n + 1``, one function per version, each
in the opening's transaction (`meterline._storage.sqlite_migrate`): a failed one changes
nothing. The migrations to versions 1 to 4 make the layout of their own day (without the
columns later versions add), so that a store of any version reaches today's with every event
and cost exactly as stored. Today's tables and SQL are `meterline.ledger._sqlite_schema`'s.
"""

from __future__ import annotations as _annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Final

from meterline._usage import TOKEN_FIELDS, UNIT_FIELDS
from meterline.ledger._backend import SCHEMA_VERSION
from meterline.ledger._rows import EVENT_COLUMNS, ROLLUP_SUMS
from meterline.ledger._sqlite_folds import DAY_TOTALS_DDL, FILL_DAY_TOTALS, PERIOD_INDEXES
from meterline.ledger._sqlite_schema import (
    COST_TEXT,
    DAY_KEYS,
    DIM_KEY,
    DIMS_JSON,
    FOLDED,
    KEY_FIELDS,
    MONTH_KEY,
    RECENT_DDL,
    ROLLUPS,
    STORED_COLUMNS,
    VALUE_ROWS,
    VIEW_EXTRA,
    add_key,
    add_value,
    dim_sums,
    event_rows_view,
    folded_until,
    key_text,
    roll_up,
    rollup_fields,
    stored_id,
)

__all__ = ["MIGRATIONS"]

# The columns version 5 added: the server-side tool calls (events and roll-ups), the service
# tier, batch mode and the cost the provider stated. The migrations to versions 1 to 4 make
# the layout of their day, without them.
_ADDED_V5: Final = (*UNIT_FIELDS, "service_tier", "batch", "reported_cost_pico")
_V4_EVENT_COLUMNS: Final = tuple(name for name in EVENT_COLUMNS if name not in _ADDED_V5)
_V4_STORED: Final = tuple(name for name in STORED_COLUMNS if name not in _ADDED_V5)
_V4_SUMS: Final = tuple(name for name in ROLLUP_SUMS if name not in UNIT_FIELDS)
_V4_ROLL_UP_DIMS: Final = roll_up(
    ROLLUPS[1], DIM_KEY, DAY_KEYS, dim_sums(TOKEN_FIELDS), VALUE_ROWS, "e.rowid > ?", (*_V4_SUMS, "cost_high")
)

# Version 3's layout, for its migration (and the next one's).
_V3_KEY_FIELDS: Final = (*KEY_FIELDS, "dimensions")
_V3_COLUMNS: Final = (
    "id",
    "time_ns",
    "hour",
    "key_id",
    *(
        name
        for name in _V4_EVENT_COLUMNS
        if name not in _V3_KEY_FIELDS and name not in ("id", "time_ns", "hour")
    ),
)
_V3_ADD_KEY: Final = (
    f"INSERT INTO meterline_event_keys (key, {', '.join(_V3_KEY_FIELDS)})"  # noqa: S608 - constants only
    f" VALUES ({', '.join('?' * (len(_V3_KEY_FIELDS) + 1))}) ON CONFLICT(key) DO NOTHING"
)
_KEY_COLUMNS: Final = ("hour", "operation", "status", "provider", "model", "dimensions")


def _schema_v1(conn: sqlite3.Connection) -> None:
    """Version 1: metadata, events and the hourly roll-up."""
    types = {"id": "TEXT PRIMARY KEY", "cost": "TEXT", "latency_ms": "REAL"}
    texts = {"operation", "status", "provider", "model", "request_model", "price_version"}
    texts |= {"dimensions", "operation_id", "response_id", "links"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in _V4_EVENT_COLUMNS
    )
    sums = ", ".join(f"{name} {'REAL' if name == 'latency_ms' else 'INTEGER'} NOT NULL" for name in _V4_SUMS)
    conn.execute("CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        f"CREATE TABLE meterline_events ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    conn.execute("CREATE INDEX meterline_events_hour ON meterline_events (hour)")
    conn.execute(
        "CREATE TABLE meterline_rollup_hour (hour INTEGER NOT NULL, operation TEXT NOT NULL,"
        " status TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, dimensions TEXT NOT NULL,"
        f" {sums}, PRIMARY KEY ({', '.join(_KEY_COLUMNS)})) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE meterline_rollup_hour_nodims (hour INTEGER NOT NULL, operation TEXT NOT NULL,"
        " status TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,"
        f" {sums}, PRIMARY KEY ({', '.join(_KEY_COLUMNS[:-1])})) WITHOUT ROWID"
    )


def _schema_v2(conn: sqlite3.Connection) -> None:
    """Version 2: no index of the events by hour (no query used it, and every insert paid for it)."""
    conn.execute("DROP INDEX IF EXISTS meterline_events_hour")


def _schema_v3(conn: sqlite3.Connection) -> None:
    """Version 3: the fields that repeat from event to event stored once, in ``meterline_event_keys``."""
    fields = ", ".join(_V3_KEY_FIELDS)
    conn.execute(
        "CREATE TABLE meterline_event_keys (key_id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
        " operation TEXT, status TEXT, provider TEXT, model TEXT, request_model TEXT, price_version TEXT,"
        " dimensions TEXT)"
    )
    distinct = conn.execute(f"SELECT DISTINCT {fields} FROM meterline_events").fetchall()  # noqa: S608
    conn.executemany(_V3_ADD_KEY, [(key_text(key), *key) for key in distinct])
    texts = {"id", "cost", "operation_id", "response_id", "links"}
    types = {"id": "TEXT PRIMARY KEY", "latency_ms": "REAL", "key_id": "INTEGER NOT NULL"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in _V3_COLUMNS
    )
    conn.execute(
        f"CREATE TABLE meterline_events_v3 ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    picked = ", ".join("k.key_id" if name == "key_id" else f"e.{name}" for name in _V3_COLUMNS)
    same = " AND ".join(f"k.{name} IS e.{name}" for name in _V3_KEY_FIELDS)
    stored = ", ".join(_V3_COLUMNS)
    conn.execute(
        f"INSERT INTO meterline_events_v3 ({stored}, previous_cost, previous_price_version)"  # noqa: S608
        f" SELECT {picked}, e.previous_cost, e.previous_price_version"
        f" FROM meterline_events AS e JOIN meterline_event_keys AS k ON {same} ORDER BY e.rowid"
    )
    conn.execute("DROP TABLE meterline_events")
    conn.execute("ALTER TABLE meterline_events_v3 RENAME TO meterline_events")
    shown = ", ".join(
        f"k.{name}" if name in _V3_KEY_FIELDS else COST_TEXT if name == "cost" else f"e.{name}"
        for name in _V4_EVENT_COLUMNS
    )
    conn.execute(
        f"CREATE VIEW meterline_event_rows AS SELECT {shown}, e.previous_cost, e.previous_price_version"  # noqa: S608
        " FROM meterline_events AS e JOIN meterline_event_keys AS k ON k.key_id = e.key_id"
    )


def _schema_v4(conn: sqlite3.Connection) -> None:
    """Version 4: dimension values and keys stored once; roll-ups by dimension value and day.

    Every event is copied with its fields and cost unchanged; the roll-up by the whole set of
    dimensions is replaced by ``meterline_rollup_dim_day``, built from the events.
    """
    conn.execute(
        "CREATE TABLE meterline_keys (key_id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
        " operation TEXT, status TEXT, provider TEXT, model TEXT, request_model TEXT, price_version TEXT,"
        " rollup_id INTEGER)"
    )
    conn.execute(
        "CREATE TABLE meterline_dim_values (value_id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " value TEXT NOT NULL, UNIQUE (name, value))"
    )
    conn.execute("CREATE TEMP TABLE meterline_key_map (old INTEGER PRIMARY KEY, key_id INTEGER, dims TEXT)")
    old_keys = conn.execute(f"SELECT key_id, {', '.join(_V3_KEY_FIELDS)} FROM meterline_event_keys")  # noqa: S608
    for old, *fields, dimensions in old_keys.fetchall():
        rollup = rollup_fields(tuple(fields))
        rollup_id = None if rollup == tuple(fields) else add_key(conn, rollup, None)
        key_id = add_key(conn, tuple(fields), rollup_id)
        dims = json.loads(dimensions)
        ids = ",".join(str(add_value(conn, name, str(dims[name]))) for name in sorted(dims))
        conn.execute("INSERT INTO temp.meterline_key_map VALUES (?, ?, ?)", (old, key_id, ids))
    texts = {"id", "cost", "operation_id", "response_id", "links", "dims"}
    types = {"id": "TEXT PRIMARY KEY", "latency_ms": "REAL", "key_id": "INTEGER NOT NULL"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in _V4_STORED
    )
    conn.execute(
        f"CREATE TABLE meterline_events_v4 ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    picked = ", ".join(f"m.{name}" if name in ("key_id", "dims") else f"e.{name}" for name in _V4_STORED)
    stored = ", ".join(_V4_STORED)
    conn.execute(
        f"INSERT INTO meterline_events_v4 ({stored}, previous_cost, previous_price_version)"  # noqa: S608
        f" SELECT {picked}, e.previous_cost, e.previous_price_version"
        " FROM meterline_events AS e JOIN temp.meterline_key_map AS m ON m.old = e.key_id ORDER BY e.rowid"
    )
    conn.execute("DROP TABLE temp.meterline_key_map")
    conn.execute("DROP VIEW meterline_event_rows")
    conn.execute("DROP TABLE meterline_events")
    conn.execute("DROP TABLE meterline_event_keys")
    conn.execute("DROP TABLE meterline_rollup_hour")
    conn.execute("ALTER TABLE meterline_events_v4 RENAME TO meterline_events")
    conn.execute("CREATE INDEX meterline_events_time ON meterline_events (time_ns)")
    conn.execute(
        "CREATE VIEW meterline_event_rows AS"
        + event_rows_view(f"{DIMS_JSON} AS dimensions", VIEW_EXTRA, _V4_EVENT_COLUMNS)
    )
    sums = ", ".join(f"{name} {'REAL' if name == 'latency_ms' else 'INTEGER'} NOT NULL" for name in _V4_SUMS)
    sums += ", cost_high INTEGER NOT NULL"
    conn.execute(
        "CREATE TABLE meterline_rollup_dim_day (value_id INTEGER NOT NULL, day INTEGER NOT NULL,"
        f" key_id INTEGER NOT NULL, {sums}, PRIMARY KEY ({', '.join(DIM_KEY)})) WITHOUT ROWID"
    )
    conn.execute(_V4_ROLL_UP_DIMS, (0,))
    conn.execute(
        "CREATE TABLE meterline_rollup_dim_month (value_id INTEGER NOT NULL, month INTEGER NOT NULL,"
        f" {sums}, PRIMARY KEY ({', '.join(MONTH_KEY)})) WITHOUT ROWID"
    )
    conn.execute(f"INSERT INTO meterline_meta VALUES ('{FOLDED}', '0')")  # noqa: S608 - constants only


def _schema_v5(conn: sqlite3.Connection) -> None:
    """Version 5: server-side tool calls, service tier, batch mode and the cost the provider stated.

    Columns added in place (every event keeps its row: the new counts are 0, the tier and the
    stated cost NULL, batch 0); the roll-ups get the tool calls' sums, 0 for what they hold.
    """
    for name in UNIT_FIELDS:
        for table in ("meterline_events", *ROLLUPS):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE meterline_events ADD COLUMN service_tier TEXT")
    conn.execute("ALTER TABLE meterline_events ADD COLUMN batch INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE meterline_events ADD COLUMN reported_cost_pico INTEGER")
    conn.execute("DROP VIEW meterline_event_rows")
    conn.execute(
        "CREATE VIEW meterline_event_rows AS" + event_rows_view(f"{DIMS_JSON} AS dimensions", VIEW_EXTRA)
    )


def _schema_v6(conn: sqlite3.Connection) -> None:
    """Version 6: an id of 32 lower-case hex digits (every id meterline makes) stored as its 16 bytes.

    Every event keeps its row, fields and cost; its id reads back as the same text
    (`stored_id`, `ID_TEXT`); other ids stay text. No roll-up holds ids.
    """
    conn.create_function("meterline_stored_id", 1, stored_id, deterministic=True)
    try:
        conn.execute("UPDATE meterline_events SET id = meterline_stored_id(id) WHERE length(id) = 32")
    finally:
        conn.create_function("meterline_stored_id", 1, None)
    conn.execute("DROP VIEW meterline_event_rows")
    conn.execute(
        "CREATE VIEW meterline_event_rows AS" + event_rows_view(f"{DIMS_JSON} AS dimensions", VIEW_EXTRA)
    )


def _schema_v7(conn: sqlite3.Connection) -> None:
    """Version 7: the daily roll-up by value's newest rows written to a table of their own.

    `RECENT`, empty: a write adds its events there, merged into the daily roll-up in key order
    (`merge_recent`). Nothing stored changes.
    """
    conn.execute(RECENT_DDL)


def _schema_v8(conn: sqlite3.Connection) -> None:
    """Version 8: the folded days' sums per (value, day), over every key (`meterline.ledger._sqlite_folds`).

    Filled from the keyed daily rows of the days already folded (into the monthly roll-up);
    nothing stored changes.
    """
    conn.execute(DAY_TOTALS_DDL)
    conn.execute(FILL_DAY_TOTALS, (folded_until(conn),))


def _schema_v9(conn: sqlite3.Connection) -> None:
    """Version 9: both folded roll-ups by value indexed by their period (`PERIOD_INDEXES`).

    Nothing stored changes; a report by one dimension chooses how to read them
    (`meterline.ledger._sqlite_reports`).
    """
    for statement in PERIOD_INDEXES:
        conn.execute(statement)


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (
    _schema_v1,
    _schema_v2,
    _schema_v3,
    _schema_v4,
    _schema_v5,
    _schema_v6,
    _schema_v7,
    _schema_v8,
    _schema_v9,
)
"""Forward migrations: ``MIGRATIONS[n]`` takes a store from version ``n`` to ``n + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION
