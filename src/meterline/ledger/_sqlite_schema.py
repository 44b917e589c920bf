"""The SQLite ledger's tables and the fixed SQL that reads and writes them (migrations: `_sqlite_migrations`).

Schema version 9 (version 4's layout, with each event's server-side tool calls, service tier,
batch mode and the cost its provider stated added in version 5, ids stored as bytes in
version 6: `stored_id`, the daily roll-up by value written through `RECENT` in version 7,
the folded days' sums per value and day in version 8, and both folded roll-ups indexed by
their period in version 9), designed for a product's cardinality
(thousands of users, a hundred thousand sessions, dozens of models), where a roll-up keyed
by the whole set of dimensions has nearly a row per event (0.83 measured with sessions among
them):

- ``meterline_keys``: each distinct (operation, status, provider, model, request model,
  price version) once; an event refers to it by ``key_id``. ``rollup_id`` is the key_id of
  the same (operation, status, provider, model) with no request model or price version: the
  key the roll-ups are kept by (a re-priced event stays on its roll-up row).
- ``meterline_dim_values``: each distinct (dimension name, value) once, as ``value_id``; an
  event's ``dims`` is the comma-separated ids of its dimensions, in the order of their names.
  Both dictionaries grow with the product's cardinality, not with its events; a prune
  deletes the values no kept event has (`meterline.ledger._sqlite_keys.prune_values`).
- ``meterline_events``: one row per event (`STORED_COLUMNS`), indexed by time, so that a
  report over a time range reads only that range. An id is stored twice (in its row and in
  the unique index that keeps each event once), so an id meterline made (32 hex digits) is
  stored as its 16 bytes (`stored_id`), and read back as its text (`ID_TEXT`).
- ``meterline_rollup_hour_nodims``: sums per (hour, operation, status, provider, model): the
  reports that neither group nor filter by a dimension (a few rows per model and hour).
- ``meterline_rollup_dim_day``: sums per (dimension value, UTC day, roll-up key), its primary
  key in that order, so a report by one dimension reads that dimension's rows in key order.
  One row per value, day and model used, whatever the event's other dimensions are.
- ``meterline_rollup_dim_recent`` (`RECENT`): the same sums for the newest events, keyed by
  (day, value, key), so that a write updates rows that lie together; merged into the daily
  roll-up in its key order (`merge_recent`) past `RECENT_ROWS` rows and before a prune or
  a re-pricing. A report and a fold add up both.
- ``meterline_rollup_dim_month`` and ``meterline_rollup_dim_day_total``: sums per (value,
  month) and per (value, day), no key: the days before `folded_until` added up once a day has
  passed, for reports by one dimension over whole months (at 10 million events of 10,000
  users: 30,000 rows by user) and over the other folded days (`meterline.ledger._sqlite_folds`);
  each also indexed by its period, for reports over some days of a dimension of many values.

In both roll-ups by value, `ALL_EVENTS` (value 0) adds up every event, so the events without
a dimension are the difference; a tool call's or cache lookup's usage and cost are
informational (never in totals) and left out; and costs are kept in two parts
(`BY_VALUE_SUMS`) so that no sum passes 64 bits. Each batch's new rows are added into every
roll-up by SQLite itself (`ROLL_UP_NODIMS`, `ROLL_UP_DIMS`), never by a Python loop per event.
The view ``meterline_event_rows`` rebuilds the rows of `EVENT_COLUMNS` (the dimensions as a
JSON object) for people reading the file; the ledger's readers select `EVENT_ROWS` and make
the JSON themselves, once per distinct set of values. Which table answers a report is
`meterline.ledger._sqlite_reports`'s choice.

SQL text is made only of the constants of this module; every value is a parameter, and
dimension names reach SQL only as parameters.
"""

from __future__ import annotations as _annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION
from meterline._usage import USAGE_FIELDS
from meterline.exceptions import LedgerError
from meterline.ledger._groups import DAY, HOUR
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
    nanoseconds,
)

__all__ = [
    "ALL_EVENTS",
    "BY_VALUE_DDL",
    "BY_VALUE_SUMS",
    "CORRECT_DIM",
    "CORRECT_NODIMS",
    "COST_TEXT",
    "COUNT_NEW",
    "DAY_KEYS",
    "DIMS_JSON",
    "DIM_KEY",
    "DIM_SUMS",
    "EVENT_ROWS",
    "EVENT_VALUES",
    "FOLDED",
    "ID",
    "ID_TEXT",
    "KEY_FIELDS",
    "LAST_ROWID",
    "LOW_BITS",
    "MERGE_RECENT",
    "MONTH_KEY",
    "MONTH_OF_DAY",
    "NARROW",
    "NOT_MODEL_CALLS",
    "NOT_MODEL_CALLS_SQL",
    "RECENT",
    "RECENT_DDL",
    "RECENT_ROWS",
    "REPRICE_EVENT",
    "ROLLUPS",
    "ROLL_UP_DIMS",
    "ROLL_UP_NODIMS",
    "SELECT_FOR_REPRICE",
    "SPLIT",
    "STORED_COLUMNS",
    "TAKEN_OUT",
    "TIME_AT",
    "VALUE_ROWS",
    "VIEW_EXTRA",
    "WIDTH",
    "add_into",
    "add_key",
    "add_value",
    "after_id_within",
    "correct",
    "dim_sums",
    "event_rows_view",
    "folded_until",
    "insert_events",
    "key_text",
    "merge_recent",
    "meta_int",
    "roll_up",
    "rollup_fields",
    "stored_id",
]

NOT_MODEL_CALLS: Final = (TOOL_OPERATION, CACHE_OPERATION)
NOT_MODEL_CALLS_SQL: Final = ", ".join(f"'{operation}'" for operation in NOT_MODEL_CALLS)
"""`NOT_MODEL_CALLS` as the list of an SQL ``IN (...)``."""

ROLLUPS: Final = ("meterline_rollup_hour_nodims", "meterline_rollup_dim_day", "meterline_rollup_dim_month")
"""The roll-up tables: by hour without dimensions; by dimension value and day, and month."""
RECENT: Final = "meterline_rollup_dim_recent"
"""The daily roll-up by value's newest rows, keyed by (day, value, key): see `merge_recent`."""
RECENT_ROWS: Final = 50_000
"""The rows `RECENT` may hold before a write merges them into the daily roll-up by value."""
FOLDED: Final = "dim_months_until"
"""The key in ``meterline_meta`` of the first day not yet added into the monthly roll-up."""
KEY_FIELDS: Final = ("operation", "status", "provider", "model", "request_model", "price_version")
"""The event fields stored once per distinct combination, in ``meterline_keys``."""
STORED_COLUMNS: Final = (
    "id",
    "time_ns",
    "key_id",
    "dims",
    "measured",
    *USAGE_FIELDS,
    "cost",
    "cost_pico",
    "latency_ms",
    "operation_id",
    "attempt",
    "response_id",
    "links",
    "tokens_saved",
    "service_tier",
    "batch",
    "reported_cost_pico",
)
"""The columns of an event row as stored: the key fields as ``key_id``, the dimensions as ``dims``."""
_NULLABLE_TEXT: Final = frozenset({"cost", "operation_id", "response_id", "service_tier"})
"""Text columns that may be NULL: `bind_rows` passes the integer 0 for NULL (see `insert_events`)."""
_NULLABLE_COST: Final = "reported_cost_pico"
"""The amount that may be NULL: `bind_rows` passes -1 for NULL (no cost is below zero)."""
_NODIMS_KEY: Final = ("hour", "operation", "status", "provider", "model")
DIM_KEY: Final = ("value_id", "day", "key_id")
_RECENT_KEY: Final = ("day", "value_id", "key_id")
MONTH_KEY: Final = ("value_id", "month")
_PACKED_ID: Final = 32
"""The length of an id stored as bytes: 32 hex digits, as every id meterline makes (a UUIDv7)."""


def stored_id(event_id: str) -> str | bytes:
    """An event id as the ledger stores and looks it up: 32 lower-case hex digits as their 16 bytes.

    Other ids (any text a caller gave) are stored as they are. The bytes are the digits'
    value, so ids of 32 hex digits keep their order; SQLite puts every text before every
    blob, so the other ids come first in id order. `ID_TEXT` turns a stored id back into
    its text. A row and the unique index both hold the id: 32 bytes less per event (a
    ledger of 1M product-shaped events: 277 -> 243 bytes per event, `bench/bench_ledger_scale.py`).
    """
    if len(event_id) == _PACKED_ID:
        try:
            packed = bytes.fromhex(event_id)
        except ValueError:
            return event_id
        if packed.hex() == event_id:  # fromhex also takes capitals and spaces: those stay text
            return packed
    return event_id


ID_TEXT: Final = "CASE WHEN typeof(e.id) = 'blob' THEN lower(hex(e.id)) ELSE e.id END"
"""SQL: the text of a stored id ``e.id`` (`stored_id` reversed)."""


@functools.cache
def insert_events(count: int) -> str:
    """The statement that stores ``count`` rows of `bind_rows`, skipping ids already stored (or repeated).

    Many rows per statement: the driver releases and retakes the GIL around each statement
    it runs, which costs the threads recording events far more than SQLite's own work.
    Binding ``None`` costs the driver ten times what an int does (it looks for an adapter),
    so a NULL text column is bound as the integer 0 and turned into NULL by ``nullif`` (a
    text ``'0'`` never equals the integer 0), a missing stated cost as -1, and a missing
    latency as NaN (which SQLite stores as NULL).
    """
    row = "({})".format(
        ", ".join(
            "nullif(?, 0)" if name in _NULLABLE_TEXT else "nullif(?, -1)" if name == _NULLABLE_COST else "?"
            for name in STORED_COLUMNS
        )
    )
    return (
        f"INSERT INTO meterline_events ({', '.join(STORED_COLUMNS)})"  # noqa: S608 - constants only
        f" VALUES {', '.join([row] * count)} ON CONFLICT(id) DO NOTHING"
    )


def correct(table: str, key: Sequence[str], cost: str = "cost_pico = cost_pico + ?") -> str:
    """The statement that corrects the cost and unpriced count of one row of ``table``."""
    return (
        f"UPDATE {table} SET {cost}, unpriced = unpriced + ?"  # noqa: S608 - constants only
        f" WHERE {' AND '.join(f'{name} = ?' for name in key)}"
    )


BY_VALUE_SUMS: Final = (*ROLLUP_SUMS, "cost_high")
"""The sums of the roll-ups by value: ``cost_pico`` there adds up the low 32 bits of each cost,
``cost_high`` the rest (``cost >> 32``), so that no sum passes 64 bits below 2**31 events
(a month of all events, or of one big customer, may pass 2**63 pico-dollars: 9.2 million
USD). The cost of a row is ``cost_pico + (cost_high << 32)``, added up in Python."""
LOW_BITS: Final = (1 << 32) - 1
SPLIT: Final = "cost_pico = cost_pico + ?, cost_high = cost_high + ?"
CORRECT_NODIMS: Final = correct(ROLLUPS[0], _NODIMS_KEY)
CORRECT_DIM: Final = correct(ROLLUPS[1], DIM_KEY, SPLIT)
LAST_ROWID: Final = "SELECT coalesce(max(rowid), 0) FROM meterline_events"
COUNT_NEW: Final = "SELECT COUNT(*) FROM meterline_events WHERE rowid > ?"
REPRICE_EVENT: Final = (
    "UPDATE meterline_events SET previous_cost = ?, previous_price_version ="
    " (SELECT price_version FROM meterline_keys AS k WHERE k.key_id = meterline_events.key_id),"
    " cost = ?, cost_pico = ?, key_id = ? WHERE id = ?"
)
_ADD_KEY: Final = (
    f"INSERT INTO meterline_keys (key, {', '.join(KEY_FIELDS)}, rollup_id)"  # noqa: S608 - constants only
    f" VALUES ({', '.join('?' * (len(KEY_FIELDS) + 2))}) ON CONFLICT(key) DO NOTHING"
)
_KEY_ID: Final = "SELECT key_id FROM meterline_keys WHERE key = ?"
_ADD_VALUE: Final = "INSERT INTO meterline_dim_values (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING"
_VALUE_ID: Final = "SELECT value_id FROM meterline_dim_values WHERE name = ? AND value = ?"

# Positions in a row of `bind_rows`: its width, its id and its time.
WIDTH: Final = len(STORED_COLUMNS)
ID: Final = STORED_COLUMNS.index("id")
TIME_AT: Final = STORED_COLUMNS.index("time_ns")


def folded_until(conn: sqlite3.Connection) -> int:
    """The first day (seconds) whose daily roll-up rows are not yet added into the monthly one."""
    return meta_int(conn, FOLDED)


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    """The integer the meta table keeps under ``key`` (0 when there is none).

    Raises:
        LedgerError: the value is not an integer (a damaged file).
    """
    row = conn.execute("SELECT value FROM meterline_meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise LedgerError(
            f"the ledger's {key!r} is {row[0]!r}: expected an integer (a damaged file)"
        ) from None


def merge_recent(conn: sqlite3.Connection) -> None:
    """Add the rows of `RECENT` into the daily roll-up by value, in its key order, and empty it.

    A write adds its events into `RECENT`, keyed by (day, value, key): its rows for the days
    being written lie together, where in the daily roll-up (keyed by value first, as its
    readers need) a batch of a thousand events updated rows on some 1,800 pages spread over
    the file, each written whole to the WAL at every commit (appending to a ledger of 1M
    product-shaped events). Merged in key order, a page takes all its rows at once. Runs in
    the open write transaction: when `RECENT` passes `RECENT_ROWS` rows, and before a prune
    or a re-pricing changes the daily roll-up's rows (a fold reads both tables).
    """
    conn.execute(MERGE_RECENT)
    conn.execute(f"DELETE FROM {RECENT}")  # noqa: S608 - constants only


def key_text(key: Sequence[object]) -> str:
    """The unique text of a key's fields in the key table (JSON, ASCII, NULLs kept)."""
    return json.dumps(list(key), ensure_ascii=True, separators=(",", ":"))


def rollup_fields(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """The key the roll-ups keep an event of key ``fields`` under: no request model or price version."""
    operation, status, provider, model, _, _ = fields
    return (operation, status, provider or None, model or None, None, None)


def add_key(conn: sqlite3.Connection, fields: tuple[Any, ...], rollup_id: int | None) -> int:
    """The ``key_id`` of `KEY_FIELDS` values, stored if new (in the open transaction).

    ``rollup_id`` is the key_id of `rollup_fields` (``None`` when they are ``fields`` themselves).
    """
    text = key_text(fields)
    conn.execute(_ADD_KEY, (text, *fields, rollup_id))
    ((key_id,),) = conn.execute(_KEY_ID, (text,))
    return int(key_id)


def add_value(conn: sqlite3.Connection, name: str, value: str) -> int:
    """The ``value_id`` of a dimension's (name, value), stored if new (in the open transaction)."""
    conn.execute(_ADD_VALUE, (name, value))
    ((value_id,),) = conn.execute(_VALUE_ID, (name, value))
    return int(value_id)


def _model_call(column: str) -> str:
    """``column`` for a model call, 0 for a tool call or cache lookup (``k``: the event's key)."""
    return f"CASE WHEN k.operation IN ({NOT_MODEL_CALLS_SQL}) THEN 0 ELSE {column} END"


EVENT_SUMS: Final = (
    "COUNT(*)",
    f"SUM({_model_call('1 - e.measured')})",
    f"SUM({_model_call('e.measured AND e.cost_pico IS NULL')})",
    *(f"SUM(e.{name})" for name in USAGE_FIELDS),
    "coalesce(SUM(e.cost_pico), 0)",
    "coalesce(SUM(e.latency_ms), 0.0)",
    "SUM(e.tokens_saved)",
)
"""`ROLLUP_SUMS` over event rows ``e`` joined to their key ``k``, as the writer adds them up."""


def dim_sums(usage_fields: Sequence[str], model_call: Callable[[str], str] = _model_call) -> tuple[str, ...]:
    """`BY_VALUE_SUMS` (with ``usage_fields``) over event rows: a tool call's usage and cost left out.

    ``model_call`` makes a column's term count for model calls only; rows known to be model
    calls pass one that leaves the column as it is.
    """
    return (
        "COUNT(*)",
        f"SUM({model_call('1 - e.measured')})",
        f"SUM({model_call('e.measured AND e.cost_pico IS NULL')})",
        *(f"SUM({model_call(f'e.{name}')})" for name in usage_fields),
        f"coalesce(SUM({model_call('e.cost_pico & 4294967295')}), 0)",
        *EVENT_SUMS[-2:],
        f"coalesce(SUM({model_call('e.cost_pico >> 32')}), 0)",
    )


DIM_SUMS: Final = dim_sums(USAGE_FIELDS)
"""`BY_VALUE_SUMS` over event rows: a tool call's usage and cost left out."""


def add_into(table: str, key: Sequence[str], select: str, sums: Sequence[str] = ()) -> str:
    """The statement that adds the rows of sums ``select`` gives (key first) into ``table``, in key order.

    ``sums`` names the columns (default: the current `ROLLUP_SUMS` or `BY_VALUE_SUMS`).
    """
    positions = ", ".join(str(i + 1) for i in range(len(key)))
    sums = sums or (ROLLUP_SUMS if table == ROLLUPS[0] else BY_VALUE_SUMS)
    return (
        f"INSERT INTO {table} ({', '.join((*key, *sums))})"
        f" {select} GROUP BY {positions} ORDER BY {positions}"
        f" ON CONFLICT({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = {name} + excluded.{name}" for name in sums)
    )


def roll_up(
    table: str,
    key: Sequence[str],
    keys: Sequence[str],
    sums: Sequence[str],
    source: str,
    where: str,
    columns: Sequence[str] = (),
) -> str:
    """The statement that adds the events ``where`` selects into ``table`` (its sums ``columns``).

    SQLite groups the rows and adds each group into its roll-up row in one statement, in key
    order: no Python loop over the events, and one B-tree walk per roll-up table.
    """
    return add_into(
        table,
        key,
        f"SELECT {', '.join(keys)}, {', '.join(sums)}"  # noqa: S608 - constants only
        f" FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id{source}"
        f" WHERE {where}",
        columns,
    )


ALL_EVENTS: Final = 0
"""The ``value_id`` of the roll-ups' rows by value that add up every event (in no value's row only, too)."""
VALUE_ROWS: Final = ", json_each('[0' || iif(e.dims = '', '', ',' || e.dims) || ']') AS j"
"""An event's value ids, and `ALL_EVENTS`, as rows ``j``."""
EVENT_VALUES: Final = "SELECT j.value FROM meterline_events AS e, json_each('[' || e.dims || ']') AS j"
"""The value ids of the events ``e``, a row per event and dimension (a ``WHERE`` on ``e.time_ns`` follows)."""
MONTH_OF_DAY: Final = "CAST(strftime('%s', {}, 'unixepoch', 'start of month') AS INTEGER)"
DAY_KEYS: Final = ("j.value", f"e.time_ns / {DAY * 10**9} * {DAY}", "coalesce(k.rollup_id, k.key_id)")
TAKEN_OUT: Final = tuple(f"-({total})" for total in DIM_SUMS)
_NODIMS_KEYS: Final = (
    f"e.time_ns / {HOUR * 10**9} * {HOUR}",
    "k.operation",
    "k.status",
    "coalesce(k.provider, '')",
    "coalesce(k.model, '')",
)
ROLL_UP_NODIMS: Final = roll_up(ROLLUPS[0], _NODIMS_KEY, _NODIMS_KEYS, EVENT_SUMS, "", "e.rowid > ?")
"""Adds the events stored past a rowid into the hourly roll-up ('' for a missing provider or model)."""
_RECENT_KEYS: Final = (DAY_KEYS[1], DAY_KEYS[0], DAY_KEYS[2])
ROLL_UP_DIMS: Final = (
    roll_up(
        RECENT,
        _RECENT_KEY,
        _RECENT_KEYS,
        dim_sums(USAGE_FIELDS, lambda column: column),
        VALUE_ROWS,
        f"e.rowid > ? AND k.operation NOT IN ({NOT_MODEL_CALLS_SQL})",
    ),
    roll_up(
        RECENT,
        _RECENT_KEY,
        _RECENT_KEYS,
        ("COUNT(*)", *["0"] * (2 + len(USAGE_FIELDS) + 1), *EVENT_SUMS[-2:], "0"),
        VALUE_ROWS,
        f"e.rowid > ? AND k.operation IN ({NOT_MODEL_CALLS_SQL})",
    ),
)
"""Add the events stored past a rowid into the newest rows of the roll-up by dimension value and
day (`RECENT`): the model calls', then the others' (a tool call's usage and cost left out). Their
rows are apart (the key holds the operation), and each statement adds plain sums: writing
product-shaped events spends 13 % less time in the daily roll-up than with one statement
choosing per sum (`DIM_SUMS`)."""
MERGE_RECENT: Final = add_into(
    ROLLUPS[1],
    DIM_KEY,
    f"SELECT {', '.join(DIM_KEY)}, {', '.join(BY_VALUE_SUMS)} FROM {RECENT} WHERE true",  # noqa: S608
)
"""Adds every row of `RECENT` into the daily roll-up by value, in its key order (`merge_recent`)."""
BY_VALUE_DDL: Final = ", ".join(
    f"{name} {'REAL' if name == 'latency_ms' else 'INTEGER'} NOT NULL" for name in BY_VALUE_SUMS
)
"""The `BY_VALUE_SUMS` columns of a roll-up by value, as a ``CREATE TABLE`` lists them."""
RECENT_DDL: Final = (
    f"CREATE TABLE {RECENT} (day INTEGER NOT NULL, value_id INTEGER NOT NULL, key_id INTEGER NOT NULL,"
    f" {BY_VALUE_DDL}, PRIMARY KEY ({', '.join(_RECENT_KEY)})) WITHOUT ROWID"
)
"""The table `RECENT` (schema version 7)."""
TAKE_OUT_NODIMS: Final = roll_up(
    ROLLUPS[0],
    _NODIMS_KEY,
    _NODIMS_KEYS,
    tuple(f"-({total})" for total in EVENT_SUMS),
    "",
    "e.time_ns >= ? AND e.time_ns < ?",
)
"""Takes the events of [first, last) (parameters, ns) out of the hourly roll-up (a prune)."""
TAKE_OUT_DAYS: Final = roll_up(
    ROLLUPS[1], DIM_KEY, DAY_KEYS, TAKEN_OUT, VALUE_ROWS, "e.time_ns >= ? AND e.time_ns < ?"
)
"""Takes the events of [first, last) (parameters, ns) out of the daily roll-up by value (a prune)."""


COST_TEXT: Final = (
    "CASE WHEN e.cost IS NOT NULL OR e.cost_pico IS NULL THEN e.cost ELSE"
    " rtrim(rtrim((e.cost_pico / 1000000000000) || '.' || printf('%012d', e.cost_pico % 1000000000000),"
    " '0'), '.') END AS cost"
)
"""The cost as text, for the view: a row whose cost is exact in pico-dollars stores no text (see
`bind_rows`), and this writes it out as `usd_text` would (``0.00575``, ``2``, ``0``)."""

SELECT_FOR_REPRICE: Final = (
    f"SELECT {ID_TEXT}, {COST_TEXT}, e.cost_pico, k.price_version, e.measured, e.time_ns, e.key_id, e.dims"  # noqa: S608
    " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id WHERE e.id IN "
)
"""What re-pricing an event needs (its id as text, its cost text…), by stored id (an ``IN`` list follows)."""


DIMS_JSON: Final = (
    "(SELECT json_group_object(name, value) FROM (SELECT v.name, v.value"
    " FROM json_each('[' || e.dims || ']') AS j JOIN meterline_dim_values AS v ON v.value_id = j.value"
    " ORDER BY v.name))"
)
"""An event's dimensions as a JSON object, from its ``dims`` ids (for the view)."""


def event_rows_view(dimensions: str, extra: str = "", columns: Sequence[str] = EVENT_COLUMNS) -> str:
    """A SELECT of the rows of ``columns`` (``dimensions``: its SQL) and ``extra`` columns."""
    shown = {
        "id": f"{ID_TEXT} AS id",
        "hour": f"e.time_ns / {HOUR * 10**9} * {HOUR} AS hour",
        "cost": COST_TEXT,
        "dimensions": dimensions,
        **{name: f"k.{name}" for name in KEY_FIELDS},
    }
    return (
        f" SELECT {', '.join(shown.get(name, f'e.{name}') for name in columns)}{extra}"  # noqa: S608
        " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id"
    )


EVENT_ROWS: Final = event_rows_view("e.dims")
"""The rows of the view ``meterline_event_rows``, with the dimensions as their ids (``dims``): a
reader turns them into JSON itself (`Dictionaries.dimensions_json`), once per distinct ids."""


VIEW_EXTRA: Final = ", e.previous_cost, e.previous_price_version"


NARROW: Final = timedelta(days=1)
"""The widest range of times the events are read through the time index (`after_id_within`)."""


def after_id_within(since: datetime | None, until: datetime | None) -> tuple[list[str], list[object], str]:
    """WHERE clauses over ``meterline_events AS e``, their bounds, and the id order to read them in.

    The first clause is ``e.id > ?``: ids after a cursor, whose `stored_id` the caller passes
    before the bounds. A range of at most `NARROW` is read through the time index, its rows sorted
    by id (``+e.id`` keeps SQLite off the id index): the newest hour of a ledger of millions
    of events is then read without walking the ids before it. A wider or open range is read
    in id order, its times filtered.
    """
    narrow = since is not None and until is not None and until - since <= NARROW
    order = "+e.id" if narrow else "e.id"
    clauses = [f"{order} > ?"]
    bounds: list[object] = []
    if since is not None:
        clauses.append("e.time_ns >= ?")
        bounds.append(nanoseconds(since))
    if until is not None:
        clauses.append("e.time_ns < ?")
        bounds.append(nanoseconds(until))
    return clauses, bounds, order
