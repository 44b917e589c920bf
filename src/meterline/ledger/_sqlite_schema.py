"""The SQLite ledger's tables, their forward migrations and the fixed SQL that reads and writes them.

The schema is shared with the PostgreSQL backend: ``meterline_meta`` (the schema version),
``meterline_events`` (one row per event, `EVENT_COLUMNS` plus the previous cost and price
version of a re-priced event) and ``meterline_rollup_hour`` (sums per hour and
(operation, status, provider, model, dimensions); a missing provider or model is stored as
``''`` there, because a primary key column cannot hold NULL usefully, and read back as
``None``).

SQLite stores the fields that repeat from event to event apart: ``meterline_event_keys``
holds each distinct (operation, status, provider, model, request model, price version,
dimensions) once, and an event row refers to it by ``key_id`` (schema version 3). Binding
those seven texts for every event cost the writer more than SQLite's own work, and the file
is smaller for it. The view ``meterline_event_rows`` joins them back into the rows of
`EVENT_COLUMNS`, which is what every reader reads.

SQLite adds a roll-up table too, ``meterline_rollup_hour_nodims``: the same sums keyed by
(hour, operation, status, provider, model) only, maintained in the same transactions. With
dimensions in the key, the hourly roll-up has nearly as many rows as there are events once
users times models is large (540,000 rows for a million events of 50 users and 20 models
over 30 days), and SQLite adds those up in about a second; reports that neither group nor
filter by a dimension read this table instead (20 models: 14,400 rows) and answer in
milliseconds.

SQL text is made only of the constants of this module; every value is a parameter, and
dimension names never reach SQL: reports group and filter by dimensions in Python, over
roll-up rows that SQL has already added up.
"""

from __future__ import annotations as _annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION
from meterline._usage import USAGE_FIELDS
from meterline.ledger._backend import SCHEMA_VERSION
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
)

__all__ = [
    "ADD_KEY",
    "COLUMNS",
    "CORRECT_NODIMS",
    "CORRECT_ROLLUP",
    "EVENTS",
    "EVENT_FIELDS",
    "HOUR_AT",
    "ID",
    "KEY_ID",
    "KEY_ID_AT",
    "LAST_ROWID",
    "LATENCY_AT",
    "MEASURED",
    "MIGRATIONS",
    "NEW_IDS",
    "NOT_MODEL_CALLS",
    "PICO_AT",
    "REPRICE_EVENT",
    "ROLLUPS",
    "SAVED_AT",
    "SELECT_FOR_REPRICE",
    "SUM_LATENCY",
    "SUM_PICO",
    "SUM_SAVED",
    "SUM_USAGE",
    "UNMEASURED",
    "UNPRICED",
    "UPSERT_NODIMS",
    "UPSERT_ROLLUP",
    "USAGE_AT",
    "WIDTH",
    "insert_events",
    "key_text",
]

EVENT_FIELDS: Final = ("operation", "status", "provider", "model")
"""Fields of the roll-up key that are columns (filtered in SQL); other names are dimensions."""
NOT_MODEL_CALLS: Final = (TOOL_OPERATION, CACHE_OPERATION)

_KEY_COLUMNS: Final = ("hour", "operation", "status", "provider", "model", "dimensions")
ROLLUPS: Final = ("meterline_rollup_hour", "meterline_rollup_hour_nodims")
"""The roll-up tables: with dimensions in the key, and without."""
COLUMNS: Final = ", ".join(EVENT_COLUMNS)
_KEY_FIELDS: Final = (
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "price_version",
    "dimensions",
)
"""The event fields stored once per distinct combination, in ``meterline_event_keys``."""
STORED_COLUMNS: Final = (
    "id",
    "time_ns",
    "hour",
    "key_id",
    *(name for name in EVENT_COLUMNS if name not in _KEY_FIELDS and name not in ("id", "time_ns", "hour")),
)
"""The columns of an event row as stored (`EVENT_COLUMNS` with the key fields replaced by ``key_id``)."""
_NULLABLE_TEXT: Final = frozenset({"cost", "operation_id", "response_id"})
"""Text columns that may be NULL: `bind_rows` passes the integer 0 for NULL (see `insert_events`)."""


@functools.cache
def insert_events(count: int) -> str:
    """The statement that stores ``count`` rows of `bind_rows`, skipping ids already stored (or repeated).

    Many rows per statement: the driver releases and retakes the GIL around each statement
    it runs, which costs the threads recording events far more than SQLite's own work.
    Binding ``None`` costs the driver ten times what an int does (it looks for an adapter),
    so a NULL text column is bound as the integer 0 and turned into NULL by ``nullif`` (a
    text ``'0'`` never equals the integer 0), and a missing latency as NaN (which SQLite
    stores as NULL).
    """
    row = "({})".format(
        ", ".join("nullif(?, 0)" if name in _NULLABLE_TEXT else "?" for name in STORED_COLUMNS)
    )
    return (
        f"INSERT INTO meterline_events ({', '.join(STORED_COLUMNS)})"  # noqa: S608 - constants only
        f" VALUES {', '.join([row] * count)} ON CONFLICT(id) DO NOTHING"
    )


def _correct(table: str, key: Sequence[str]) -> str:
    """The statement that corrects the cost and unpriced count of one row of ``table``."""
    return (
        f"UPDATE {table} SET cost_pico = cost_pico + ?, unpriced = unpriced + ?"  # noqa: S608 - constants only
        f" WHERE {' AND '.join(f'{name} = ?' for name in key)}"
    )


def _upsert(table: str, key: Sequence[str]) -> str:
    """The statement that adds one row of sums into ``table`` (a constant of this module)."""
    return (
        f"INSERT INTO {table} ({', '.join((*key, *ROLLUP_SUMS))})"  # noqa: S608 - constants only
        f" VALUES ({', '.join('?' * (len(key) + len(ROLLUP_SUMS)))})"
        f" ON CONFLICT({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = {name} + excluded.{name}" for name in ROLLUP_SUMS)
    )


UPSERT_ROLLUP: Final = _upsert(ROLLUPS[0], _KEY_COLUMNS)
UPSERT_NODIMS: Final = _upsert(ROLLUPS[1], _KEY_COLUMNS[:-1])
LAST_ROWID: Final = "SELECT coalesce(max(rowid), 0) FROM meterline_events"
NEW_IDS: Final = "SELECT id FROM meterline_events WHERE rowid > ?"
CORRECT_ROLLUP: Final = _correct(ROLLUPS[0], _KEY_COLUMNS)
CORRECT_NODIMS: Final = _correct(ROLLUPS[1], _KEY_COLUMNS[:-1])
SELECT_FOR_REPRICE: Final = (
    "SELECT id, cost, cost_pico, price_version, measured, hour, operation, status, provider, model,"
    " dimensions, request_model FROM meterline_event_rows WHERE id IN "
)
REPRICE_EVENT: Final = (
    "UPDATE meterline_events SET previous_cost = cost, previous_price_version ="
    " (SELECT price_version FROM meterline_event_keys AS k WHERE k.key_id = meterline_events.key_id),"
    " cost = ?, cost_pico = ?, key_id = ? WHERE id = ?"
)
ADD_KEY: Final = (
    f"INSERT INTO meterline_event_keys (key, {', '.join(_KEY_FIELDS)})"  # noqa: S608 - constants only
    f" VALUES ({', '.join('?' * (len(_KEY_FIELDS) + 1))}) ON CONFLICT(key) DO NOTHING"
)
KEY_ID: Final = "SELECT key_id FROM meterline_event_keys WHERE key = ?"

# Positions in a row of `bind_rows`, for adding rows into roll-ups without re-deriving them.
WIDTH: Final = len(STORED_COLUMNS)
ID: Final = STORED_COLUMNS.index("id")
HOUR_AT: Final = STORED_COLUMNS.index("hour")
KEY_ID_AT: Final = STORED_COLUMNS.index("key_id")
MEASURED: Final = STORED_COLUMNS.index("measured")
USAGE_AT: Final = tuple(STORED_COLUMNS.index(name) for name in USAGE_FIELDS)
PICO_AT: Final = STORED_COLUMNS.index("cost_pico")
LATENCY_AT: Final = STORED_COLUMNS.index("latency_ms")
SAVED_AT: Final = STORED_COLUMNS.index("tokens_saved")
# Positions in a list of `ROLLUP_SUMS`.
EVENTS, UNMEASURED, UNPRICED = 0, 1, 2
SUM_USAGE: Final = tuple(ROLLUP_SUMS.index(name) for name in USAGE_FIELDS)
SUM_PICO: Final = ROLLUP_SUMS.index("cost_pico")
SUM_LATENCY: Final = ROLLUP_SUMS.index("latency_ms")
SUM_SAVED: Final = ROLLUP_SUMS.index("tokens_saved")


def _schema_v1(conn: sqlite3.Connection) -> None:
    """Version 1: metadata, events and the hourly roll-up."""
    types = {"id": "TEXT PRIMARY KEY", "cost": "TEXT", "latency_ms": "REAL"}
    texts = {"operation", "status", "provider", "model", "request_model", "price_version"}
    texts |= {"dimensions", "operation_id", "response_id", "links"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in EVENT_COLUMNS
    )
    sums = ", ".join(
        f"{name} {'REAL' if name == 'latency_ms' else 'INTEGER'} NOT NULL" for name in ROLLUP_SUMS
    )
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


_COST_TEXT: Final = (
    "CASE WHEN e.cost IS NOT NULL OR e.cost_pico IS NULL THEN e.cost ELSE"
    " rtrim(rtrim((e.cost_pico / 1000000000000) || '.' || printf('%012d', e.cost_pico % 1000000000000),"
    " '0'), '.') END AS cost"
)
"""The cost as text, for the view: a row whose cost is exact in pico-dollars stores no text (see
`bind_rows`), and this writes it out as `usd_text` would (``0.00575``, ``2``, ``0``)."""


def key_text(key: Sequence[object]) -> str:
    """The unique text of a key's fields in ``meterline_event_keys`` (JSON, ASCII, NULLs kept)."""
    return json.dumps(list(key), ensure_ascii=True, separators=(",", ":"))


def _schema_v3(conn: sqlite3.Connection) -> None:
    """Version 3: the fields that repeat from event to event stored once, in ``meterline_event_keys``."""
    fields = ", ".join(_KEY_FIELDS)
    conn.execute(
        "CREATE TABLE meterline_event_keys (key_id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
        " operation TEXT, status TEXT, provider TEXT, model TEXT, request_model TEXT, price_version TEXT,"
        " dimensions TEXT)"
    )
    distinct = conn.execute(f"SELECT DISTINCT {fields} FROM meterline_events").fetchall()  # noqa: S608
    conn.executemany(ADD_KEY, [(key_text(key), *key) for key in distinct])
    texts = {"id", "cost", "operation_id", "response_id", "links"}
    types = {"id": "TEXT PRIMARY KEY", "latency_ms": "REAL", "key_id": "INTEGER NOT NULL"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in STORED_COLUMNS
    )
    conn.execute(
        f"CREATE TABLE meterline_events_v3 ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    picked = ", ".join("k.key_id" if name == "key_id" else f"e.{name}" for name in STORED_COLUMNS)
    same = " AND ".join(f"k.{name} IS e.{name}" for name in _KEY_FIELDS)
    stored = ", ".join(STORED_COLUMNS)
    conn.execute(
        f"INSERT INTO meterline_events_v3 ({stored}, previous_cost, previous_price_version)"  # noqa: S608
        f" SELECT {picked}, e.previous_cost, e.previous_price_version"
        f" FROM meterline_events AS e JOIN meterline_event_keys AS k ON {same} ORDER BY e.rowid"
    )
    conn.execute("DROP TABLE meterline_events")
    conn.execute("ALTER TABLE meterline_events_v3 RENAME TO meterline_events")
    shown = ", ".join(
        f"k.{name}" if name in _KEY_FIELDS else _COST_TEXT if name == "cost" else f"e.{name}"
        for name in EVENT_COLUMNS
    )
    conn.execute(
        f"CREATE VIEW meterline_event_rows AS SELECT {shown}, e.previous_cost, e.previous_price_version"  # noqa: S608
        " FROM meterline_events AS e JOIN meterline_event_keys AS k ON k.key_id = e.key_id"
    )


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (_schema_v1, _schema_v2, _schema_v3)
"""Forward migrations: ``MIGRATIONS[n]`` takes a store from version ``n`` to ``n + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION
