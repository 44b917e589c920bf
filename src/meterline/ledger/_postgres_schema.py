r"""The PostgreSQL ledger's tables and the fixed SQL that writes and reads them.

Schema version 10 (version 5's layout; 6 added each event's server-side tool calls, tier, batch
mode and stated cost; 7 stores a roll-up's sums of 0 as NULL, `SPARSE_SUMS`; 8 keys the roll-ups
by value with integers; 9 stores an event's counts of 0 as NULL, `SPARSE_EVENT_FIELDS`; 10 adds
the folded days' sums per value and day), the SQLite ledger's design in PostgreSQL's terms:

- ``meterline_events``: partitioned by UTC month of ``time_ns`` (``meterline_events_YYYYMM``,
  made by ``meterline_ensure_partition`` when a month's first event is written, dropped whole
  by ``meterline_drop_partitions`` when a prune passes the month's end), indexed by time.
- ``meterline_rollup_hour_nodims``: sums per (hour, operation, status, provider, model), for
  the reports that neither group nor filter by a dimension.
- ``meterline_dim_values`` and ``meterline_rollup_keys``: each dimension (name, value) and each
  roll-up key (operation, status, provider, model) stored once, numbered (``value_id``,
  ``key_id``). A prune deletes the values no kept event has (`PRUNE_VALUES`: a product's
  sessions come and go); keys are kept (a few per model).
- ``meterline_rollup_dim_day``: sums per (value, UTC day, key), primary key in that order: a
  report by one dimension (and model fields) reads that dimension's values' rows. One row per
  value, day and key used, whatever the event's other dimensions are. A B-tree of the day
  finds a range's rows (to fold a day, to prune, for a report over some days: `DAY_INDEX`).
- ``meterline_rollup_dim_month``: sums per (value, UTC month), a tool call's usage and cost
  left out (informational): reports by one dimension over whole months. It holds the days
  before `FOLDED` (in ``meterline_meta``): once a day has passed, the next write adds its
  daily rows into it (`FOLD`, in a transaction of its own), as SQLite does, so that writers
  do not all update the same hot (org, month) rows.
- ``meterline_rollup_dim_day_total``: sums per (value, UTC day) over every key, a tool call's
  usage and cost left out, for the days before `FOLDED` (`FOLD` adds a day into it and into
  the months at once): a report by one dimension naming no model field reads the folded days
  outside whole months here, a row per value and day where the daily roll-up has one per
  model used (a product's user used five or six a day).

Integer keys (version 8) rather than the text they stand for: the daily roll-up by value
holds about two rows per event at a product's cardinality (a user's or session's day rarely
repeats a model), and keyed by seven text columns its rows and primary key took more room
than the events (547 of 1,130 bytes per event, product-shaped, 300,000 events); keyed by
three numbers, 311 (its values 35 more).

Each batch's new events are added into the roll-ups by one statement (`WRITE`, `WRITE_LATE`),
after its new values and keys are stored (`NEW_VALUES`, `NEW_KEYS`): the batch's distinct
dimension sets are copied beside it as (set, value) rows and its distinct values as (value,
name, value) rows, so that PostgreSQL never parses the dimensions' JSON (``jsonb`` refuses
``\u0000``, which a value may hold). A writer holds the `FOLDED` row shared while it writes and
a fold takes it exclusively, so no day is folded while a batch that adds to it is uncommitted;
a late event (of a day already folded) is added to the monthly roll-up and the folded days'
by the write itself.

Where stored events must be taken out of or corrected in the roll-ups by value (re-pricing,
a prune, the migration), their sums are read grouped by dimension set and spread over the
values in Python, then added by (name, value) and key text
(`meterline.ledger._postgres_rollups`, its SQL beside it).

SQL text is fixed here: table names are filled in at open as quoted identifiers (the schema's
name as a literal inside the two PL/pgSQL functions), values are parameters, and dimension
names reach SQL only as parameters. How older stores reach this layout is
`meterline.ledger._postgres_migrations`'.
"""

from __future__ import annotations as _annotations

from typing import Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION
from meterline._usage import USAGE_FIELDS
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
)

__all__ = [
    "BYTE_ORDER",
    "DAY_DDL",
    "DAY_IDS",
    "DAY_INDEX",
    "DAY_KEY",
    "DAY_OF_HOUR",
    "DAY_ROWS",
    "DAY_TOTAL_DDL",
    "DAY_TOTAL_IDS",
    "DAY_TOTAL_INDEX",
    "DAY_TOTAL_ROWS",
    "EVENT_READ",
    "EVENT_TOTALS",
    "EVENT_TYPES",
    "FILL_DAY_TOTALS",
    "FOLD",
    "FOLDED",
    "KEY_COLUMNS",
    "KEY_DDL",
    "KEY_FIELDS",
    "MONTH_COLUMNS",
    "MONTH_DDL",
    "MONTH_IDS",
    "MONTH_KEY",
    "MONTH_OF",
    "MONTH_ROWS",
    "MONTH_SUMS",
    "NEW_KEYS",
    "NEW_VALUES",
    "NODIMS_KEY",
    "NOT_MODEL_CALL",
    "OPTIONAL_FIELDS",
    "PERIODS",
    "PRUNE_HOUR",
    "PRUNE_SPREAD",
    "PRUNE_VALUES",
    "QUERIES",
    "REPRICE",
    "ROLLUP_TYPES",
    "SAME_KEY",
    "SPARSE_EVENT_FIELDS",
    "SPARSE_SUMS",
    "SUMS_DDL",
    "SUM_NAMES",
    "TEMPORARY_TABLES",
    "TOTAL_SUMS",
    "VALUE_DDL",
    "VERSION",
    "WRITE",
    "WRITE_LATE",
    "add_up",
    "new_keys",
    "new_values",
    "stored_sums",
]

VERSION: Final = 11
"""The schema a PostgreSQL ledger is migrated to (its own numbering: SQLite's is `SCHEMA_VERSION`)."""
KEY_FIELDS: Final = ("operation", "status", "provider", "model")
"""The event fields that key every roll-up (besides its hour, day or month, and value)."""
OPTIONAL_FIELDS: Final = frozenset({"provider", "model"})
"""Roll-up key fields stored as '' for ``None`` (a primary key has no NULLs)."""
EVENT_TYPES: Final = {
    "id": "TEXT",
    "time_ns": "BIGINT",
    "hour": "BIGINT",
    "operation": "TEXT",
    "status": "TEXT",
    "provider": "TEXT",
    "model": "TEXT",
    "request_model": "TEXT",
    "measured": "SMALLINT",
    **dict.fromkeys(USAGE_FIELDS, "BIGINT"),
    "cost": "NUMERIC",
    "cost_pico": "NUMERIC",
    "price_version": "TEXT",
    "latency_ms": "DOUBLE PRECISION",
    # TEXT, not JSONB: the JSON is kept verbatim (JSONB reorders keys and refuses \u0000).
    "dimensions": "TEXT",
    "operation_id": "TEXT",
    "attempt": "BIGINT",
    "response_id": "TEXT",
    "links": "TEXT",
    "tokens_saved": "BIGINT",
    "service_tier": "TEXT",
    "batch": "SMALLINT",
    "reported_cost_pico": "NUMERIC",
}


assert tuple(EVENT_TYPES) == EVENT_COLUMNS
SPARSE_EVENT_FIELDS: Final = (*USAGE_FIELDS, "tokens_saved")
"""An event's counts stored as NULL when 0 (since version 9; rows stored before keep their zeros).

Most of an event's 13 counts are 0 (audio, server-side tools, cache writes, reasoning, tokens
saved…): PostgreSQL stores a ``BIGINT`` in 8 bytes whatever its value and a NULL in a bit, so
the events of a product took 394 bytes each, 293 so. Sums skip NULLs; `EVENT_READ` reads them
as 0."""
EVENT_READ: Final = ", ".join(
    f"coalesce({name}, 0) AS {name}" if name in SPARSE_EVENT_FIELDS else name for name in EVENT_COLUMNS
)
"""SQL: an event row's `EVENT_COLUMNS`, its counts stored as NULL read as 0."""
ROLLUP_TYPES: Final = {
    name: "NUMERIC" if name == "cost_pico" else "DOUBLE PRECISION" if name == "latency_ms" else "BIGINT"
    for name in ROLLUP_SUMS
}
BYTE_ORDER: Final = ' COLLATE "C"'


MONTH_OF: Final = "extract(epoch FROM date_trunc('month', to_timestamp({} / {}) AT TIME ZONE 'UTC'))::bigint"
"""SQL: the start (seconds) of the UTC month of column ``{0}`` divided by ``{1}``."""
FOLDED: Final = "dim_months_until"
"""The key in ``meterline_meta`` of the first UTC day (seconds) whose daily rows by value are
not yet added into the monthly roll-up (`FOLD`)."""
KEY_DDL: Final = (
    f"operation TEXT{BYTE_ORDER} NOT NULL, status TEXT{BYTE_ORDER} NOT NULL,"
    f" provider TEXT{BYTE_ORDER} NOT NULL DEFAULT '', model TEXT{BYTE_ORDER} NOT NULL DEFAULT ''"
)
"""The roll-ups' key fields, in byte order (as their values): sorting and comparing them is a
memcmp, where a database's own collation (even ``C.UTF-8``) calls the C library's, which took
a fifth of each write's time."""
KEY_COLUMNS: Final = "operation, status, provider, model"
SAME_KEY: Final = " AND ".join(f"{{0}}.{name} = {{1}}.{name}" for name in KEY_FIELDS)
"""SQL: the key fields of tables ``{0}`` and ``{1}`` are equal."""
SPARSE_SUMS: Final = ROLLUP_SUMS[1:]
"""The roll-ups' sums stored as NULL when 0 (since version 7; the tables of version 5 are made so): all
but the count of events.

A roll-up row has 21 sums, most of them 0 for most rows (audio, server-side tools, cache
writes, reasoning, tokens saved…): PostgreSQL stores an integer in 8 bytes whatever its
value and a NULL in one bit, which made the daily roll-up by value 44 % smaller (product-shaped
events: 149 → 83 MB of rows at 300,000 events). Readers add them up with ``coalesce(sum(…), 0)``."""
assert ROLLUP_SUMS[0] == "events"
SUMS_DDL: Final = ", ".join(
    f"{name} {kind}{'' if name in SPARSE_SUMS else ' NOT NULL'} DEFAULT 0"
    for name, kind in ROLLUP_TYPES.items()
)
SUM_NAMES: Final = ", ".join(ROLLUP_SUMS)
VALUE_DDL: Final = f"name TEXT{BYTE_ORDER} NOT NULL, value TEXT{BYTE_ORDER} NOT NULL"
DAY_KEY: Final = f"name, value, day, {KEY_COLUMNS}"
MONTH_KEY: Final = "name, value, month"
"""The columns that key a change to the daily and monthly roll-ups by value (the temporary
``meterline_day_delta`` and ``meterline_month_delta``), and versions 5 to 7's keys of those
roll-ups: text."""
NODIMS_KEY: Final = f"hour, {KEY_COLUMNS}"
DAY_IDS: Final = "value_id, day, key_id"
MONTH_IDS: Final = "value_id, month"
"""The primary keys of the daily and monthly roll-ups by value (version 8)."""
DAY_DDL: Final = (  # the numbers first: no padding before the 8-byte day and sums
    f"value_id INTEGER NOT NULL, key_id INTEGER NOT NULL, day BIGINT NOT NULL, {SUMS_DDL},"
    f" PRIMARY KEY ({DAY_IDS})"
)
MONTH_DDL: Final = f"value_id INTEGER NOT NULL, month BIGINT NOT NULL, {SUMS_DDL}, PRIMARY KEY ({MONTH_IDS})"
DAY_TOTAL_IDS: Final = "value_id, day"
DAY_TOTAL_DDL: Final = (
    f"value_id INTEGER NOT NULL, day BIGINT NOT NULL, {SUMS_DDL}, PRIMARY KEY ({DAY_TOTAL_IDS})"
)
"""The folded days' sums per (value, day) (version 10)."""
DAY_INDEX: Final = "CREATE INDEX IF NOT EXISTS meterline_rollup_dim_day_by_date ON {dim_day} (day)"
"""The daily roll-up's index of the day (schema version 11), by which a fold, a prune and a report
over some days find their rows. A B-tree: a BRIN index's page ranges widen for good once rows
of a new day fill the space a vacuum freed in old pages (each row an upsert updated leaves
a dead version behind), after which a week's rows were read from the whole table (1M product
events, vacuumed, then a day written: 19,766 of 25,660 pages for 121,678 rows, 0.21 s; by the
B-tree, 1,691, 0.014 s). Equal days share an index entry (deduplication): 7 bytes a row."""
DAY_TOTAL_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS meterline_rollup_dim_day_total_by_date ON {day_total} (day)"
)
"""The folded days' index of the day (version 11): a report over some of them reads those days'
rows, not the table, however long the ledger keeps them (its primary key starts with the value)."""
DAY_ROWS: Final = "{dim_day} JOIN {dim_values} USING (value_id) JOIN {rollup_keys} USING (key_id)"
"""SQL: the daily roll-up by value's rows with their ``name``, ``value`` and key fields."""
MONTH_ROWS: Final = "{dim_month} JOIN {dim_values} USING (value_id)"
DAY_TOTAL_ROWS: Final = "{day_total} JOIN {dim_values} USING (value_id)"
"""SQL: the monthly roll-up's and the folded days' rows by value with their ``name`` and ``value``."""


def _unpriced(table: str = "") -> str:
    """SQL: the event (of ``table``, if named) is a measured model call without a cost."""
    prefix = f"{table}." if table else ""
    return (
        f"{prefix}measured = 1 AND {prefix}cost IS NULL"
        f" AND {prefix}operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
    )


NOT_MODEL_CALL: Final = f"operation IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
"""SQL: the row is a tool call's or a cache lookup's (its usage and cost informational)."""
_MODEL_CALL: Final = f"operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
_UNMEASURED: Final = f"measured = 0 AND {_MODEL_CALL}"
_UNPRICED: Final = _unpriced()
_MODEL_SUMS: Final = frozenset({"unmeasured", "unpriced", *USAGE_FIELDS, "cost_pico"})


def _event_sums(*, model_calls_only: bool, sign: str = "", stored: bool = False) -> str:
    """SQL: `ROLLUP_SUMS` over event rows (a tool's usage and cost left out if ``model_calls_only``).

    ``stored``: as a roll-up stores them (`stored_sums`): a sum of 0 but the count as NULL.
    """
    only = f" FILTER (WHERE {_MODEL_CALL})" if model_calls_only else ""
    sums = [
        "count(*)",
        f"count(*) FILTER (WHERE {_UNMEASURED})",
        f"count(*) FILTER (WHERE {_UNPRICED})",
        *(f"coalesce(sum({name}){only}, 0)::bigint" for name in USAGE_FIELDS),
        f"coalesce(sum(cost_pico){only}, 0)",
        "coalesce(sum(latency_ms), 0)",
        "coalesce(sum(tokens_saved), 0)::bigint",
    ]
    terms = [f"{sign}{term}" for term in sums]
    return stored_sums(terms) if stored else ", ".join(terms)


def stored_sums(terms: list[str]) -> str:
    """SQL: the `ROLLUP_SUMS` ``terms`` as a roll-up row stores them: each of `SPARSE_SUMS` NULL when 0."""
    return ", ".join([terms[0], *(f"nullif({term}, 0)" for term in terms[1:])])


def _rollup_sums(name: str) -> str:
    """SQL: the sum of roll-up column ``name`` in a report (integers as ``bigint``, money exact)."""
    if name == "cost_pico":
        return "coalesce(sum(cost_pico), 0)"
    if name == "latency_ms":
        return "coalesce(sum(latency_ms), 0)"
    return f"coalesce(sum({name}), 0)::bigint"


def add_up(table: str, key: str) -> str:
    """The end of an upsert into roll-up ``table`` keyed by ``key``: sums added to the row's (NULL for 0)."""
    return f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(
        f"{name} = {table}.{name} + excluded.{name}"
        if name not in SPARSE_SUMS
        else f"{name} = nullif(coalesce({table}.{name}, 0) + coalesce(excluded.{name}, 0), 0)"
        for name in ROLLUP_SUMS
    )


_VALUE_ID: Final = "(SELECT v.value_id FROM {dim_values} AS v WHERE v.name = d.name AND v.value = d.value)"
"""SQL: the number of the value in row ``d`` (NULL if it is not stored), looked up by the unique
index. A subquery rather than a join: the planner, which knows nothing of a temporary table's
rows, sorted every stored value to join a batch's few thousand (`NEW_VALUES` took 87 ms a batch
of 5,000 product events, 10 ms so and with each value copied once, `DimensionSets`)."""


def new_values(source: str) -> str:
    """SQL: store the (name, value) pairs of temporary table ``source`` that are not stored yet.

    Only the missing ones are offered, in key order (no deadlock between writers): each row
    offered takes a number of the identity even when ``ON CONFLICT`` then drops it (another
    writer stored it meanwhile), so offering every pair would use numbers up by the batch.
    """
    return (
        "INSERT INTO {dim_values} (name, value)"  # noqa: S608 - constants only
        f" SELECT DISTINCT d.name, d.value FROM pg_temp.{source} AS d WHERE {_VALUE_ID} IS NULL"
        " ORDER BY 1, 2 ON CONFLICT DO NOTHING"
    )


def new_keys(source: str, fields: str) -> str:
    """SQL: store the keys (``fields`` of temporary table ``source``) not stored yet (as `new_values`)."""
    return (
        f"INSERT INTO {{rollup_keys}} ({KEY_COLUMNS}) SELECT DISTINCT {KEY_COLUMNS}"  # noqa: S608 - constants only
        f" FROM (SELECT {fields} FROM pg_temp.{source}) AS d"
        f" WHERE NOT EXISTS (SELECT FROM {{rollup_keys}} AS k WHERE {SAME_KEY.format('k', 'd')})"
        " ORDER BY 1, 2, 3, 4 ON CONFLICT DO NOTHING"
    )


NEW_VALUES: Final = new_values("meterline_incoming_values")
_INCOMING_KEY: Final = {
    name: f"coalesce({name}, '')" if name in OPTIONAL_FIELDS else name for name in KEY_FIELDS
}
"""SQL: an incoming event's key fields as the roll-ups store them ('' for a missing provider or model)."""
NEW_KEYS: Final = new_keys(
    "meterline_incoming", ", ".join(f"{field}{BYTE_ORDER} AS {name}" for name, field in _INCOMING_KEY.items())
)
"""Store the values and keys of the batch in ``pg_temp.meterline_incoming`` before `WRITE` (or
`WRITE_LATE`) numbers them."""

_MONTH_OF_HOUR: Final = MONTH_OF.format("hour", 1)
_DAY_OF: Final = "({0} - mod(mod({0}, 86400) + 86400, 86400))"
"""SQL: the start of the UTC day of the seconds in column ``{0}``, an integer (also before 1970:
``mod`` keeps the dividend's sign; the function, as ``%`` would need escaping in queries with parameters)."""
DAY_OF_HOUR: Final = _DAY_OF.format("hour")


_VALUED: Final = ", ".join(
    f"ins.{name}"
    for name in (
        "hour",
        "operation",
        "measured",
        "cost",
        *USAGE_FIELDS,
        "cost_pico",
        "latency_ms",
        "tokens_saved",
    )
)
"""SQL: what the roll-ups by value add up of an event (each row is copied once per value: the
narrower, the fewer a batch's rows spill to disk as they are sorted)."""


def _write(*, late: bool) -> str:
    """The statement that stores a batch and adds it into the roll-ups (see `WRITE`, `WRITE_LATE`)."""
    months = (
        "), months AS ("  # noqa: S608 - fixed text: constants only
        f" INSERT INTO {{dim_month}} AS r ({MONTH_IDS}, {SUM_NAMES})"
        f" SELECT value_id, {_MONTH_OF_HOUR}, {_event_sums(model_calls_only=True, stored=True)}"
        " FROM valued WHERE hour < %s GROUP BY 1, 2 ORDER BY 1, 2"
        f"{add_up('r', MONTH_IDS)}"
        "), day_totals AS ("
        f" INSERT INTO {{day_total}} AS r ({DAY_TOTAL_IDS}, {SUM_NAMES})"
        f" SELECT value_id, {DAY_OF_HOUR}, {_event_sums(model_calls_only=True, stored=True)}"
        " FROM valued WHERE hour < %s GROUP BY 1, 2 ORDER BY 1, 2"
        f"{add_up('r', DAY_TOTAL_IDS)}"
    )
    return (
        "WITH ins AS ("  # noqa: S608 - fixed text: column names from constants, values are parameters
        f" INSERT INTO {{events}} ({', '.join(EVENT_COLUMNS)})"
        f" SELECT {', '.join(EVENT_COLUMNS)} FROM pg_temp.meterline_incoming ORDER BY id"
        " ON CONFLICT (id, time_ns) DO NOTHING"
        f" RETURNING id, hour, operation{BYTE_ORDER} AS operation, status{BYTE_ORDER} AS status,"
        f" coalesce(provider, ''){BYTE_ORDER} AS provider, coalesce(model, ''){BYTE_ORDER} AS model,"
        " measured, cost,"
        f" {', '.join(USAGE_FIELDS)}, cost_pico, latency_ms, tokens_saved"
        "), hours AS ("
        f" INSERT INTO {{nodims}} AS r ({NODIMS_KEY}, {SUM_NAMES})"
        f" SELECT {NODIMS_KEY}, {_event_sums(model_calls_only=False, stored=True)}"
        " FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        f"{add_up('r', NODIMS_KEY)}"
        "), ids AS MATERIALIZED ("  # the batch's values' numbers (`NEW_VALUES` stored the new ones)
        f" SELECT d.value_no, {_VALUE_ID} AS value_id FROM pg_temp.meterline_incoming_values AS d"
        "), valued AS ("
        f" SELECT ids.value_id, k.key_id, {_VALUED}"
        " FROM ins JOIN pg_temp.meterline_incoming AS i ON i.id = ins.id"
        " JOIN pg_temp.meterline_incoming_dims AS s ON s.set_no = i.set_no"
        " JOIN ids ON ids.value_no = s.value_no"
        f" JOIN {{rollup_keys}} AS k ON {SAME_KEY.format('k', 'ins')}"
        "), days AS ("
        f" INSERT INTO {{dim_day}} AS r ({DAY_IDS}, {SUM_NAMES})"
        f" SELECT value_id, {DAY_OF_HOUR}, key_id, {_event_sums(model_calls_only=False, stored=True)}"
        " FROM valued GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        f"{add_up('r', DAY_IDS)}"
        f"{months if late else ''}"
        ") SELECT count(*) FROM ins"
    )


WRITE: Final = _write(late=False)
"""Stores the batch copied into ``pg_temp.meterline_incoming`` (ON CONFLICT: each event once,
whatever other writers do) and adds the new events into the hourly roll-up, then, joined to
their dimension sets' values and their key (stored before by `NEW_VALUES` and `NEW_KEYS`),
into the daily roll-up by value. Rows are upserted in key order (no deadlock). Returns how
many events were new."""
WRITE_LATE: Final = _write(late=True)
"""`WRITE` for a batch holding late events (of a day already folded: before the two parameters,
`FOLDED`'s value): those are also added into the monthly roll-up and the folded days' (later
days are added by `FOLD` once they have passed). Apart from `WRITE`, whose ``valued`` rows
PostgreSQL then reads once and need not keep (a write of product-shaped events: 32 of its
250 ms went to keeping and scanning them for a monthly roll-up that none of them reached)."""
_FOLDED_SUMS: Final = stored_sums([f"sum({name})" for name in ROLLUP_SUMS])
"""SQL: a roll-up's `ROLLUP_SUMS` added up as it stores them (NULL for 0)."""
_DAY_MONTH_SUMS: Final = stored_sums(
    [
        f"coalesce(sum({name}) FILTER (WHERE {_MODEL_CALL}), 0)"
        if name in (*USAGE_FIELDS, "cost_pico")
        else f"sum({name})"
        for name in ROLLUP_SUMS
    ]
)
_MONTH_OF_DAY: Final = MONTH_OF.format("day", 1)


def _folded_days(days: str) -> str:
    """SQL: the daily rows by value of the days ``days`` (fixed SQL) selects, per value and day.

    As the folded roll-ups keep them: a tool's usage and cost left out.
    """
    return (
        f"SELECT value_id, day, {_DAY_MONTH_SUMS} FROM {{dim_day}} JOIN {{rollup_keys}} USING (key_id)"  # noqa: S608
        f" WHERE {days} GROUP BY 1, 2"
    )


FOLD: Final = (
    # The daily rows by value of the days [%s, %s) added up per value and day (a tool's usage
    # and cost left out) into the folded days' roll-up and per value and month into the
    # monthly one, in key order: the days' rows read once.
    f"WITH folding (value_id, day, {SUM_NAMES}) AS MATERIALIZED ("  # noqa: S608 - constants only
    f" {_folded_days('day >= %s AND day < %s')}"
    "), days AS ("
    f" INSERT INTO {{day_total}} AS r ({DAY_TOTAL_IDS}, {SUM_NAMES})"
    f" SELECT value_id, day, {SUM_NAMES} FROM folding ORDER BY 1, 2{add_up('r', DAY_TOTAL_IDS)}"
    f") INSERT INTO {{dim_month}} AS r ({MONTH_IDS}, {SUM_NAMES})"
    f" SELECT value_id, {_MONTH_OF_DAY}, {_FOLDED_SUMS} FROM folding GROUP BY 1, 2 ORDER BY 1, 2"
    f"{add_up('r', MONTH_IDS)}"
)
FILL_DAY_TOTALS: Final = (
    f"INSERT INTO {{day_total}} ({DAY_TOTAL_IDS}, {SUM_NAMES})"  # noqa: S608 - constants only
    f" {_folded_days(f'day < (SELECT value::bigint FROM {{meta}} WHERE key = {FOLDED!r})')}"  # noqa: S608
    " ORDER BY 1, 2"
)
"""The folded days' roll-up made from the daily rows of the days before `FOLDED` (version 10)."""
EVENT_TOTALS: Final = _event_sums(model_calls_only=True)
"""SQL: a report's sums over event rows (a tool's usage and cost left out)."""
PRUNE_HOUR: Final = (
    # Takes the events of [hour, before_ns) out of the hourly roll-up (the hour a prune cuts).
    f"INSERT INTO {{nodims}} AS r ({NODIMS_KEY}, {SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT hour, operation, status, coalesce(provider, ''), coalesce(model, ''),"
    f" {_event_sums(model_calls_only=False, sign='-', stored=True)} FROM {{events}}"
    " WHERE time_ns >= %s AND time_ns < %s GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    f"{add_up('r', NODIMS_KEY)}"
)
PRUNE_SPREAD: Final = (
    # The sums of the events of [start_ns, before_ns) per (day, key, dimension set): what a
    # prune takes out of the roll-ups by value for the month (and day) it cuts.
    f"SELECT {DAY_OF_HOUR}, operation, status, coalesce(provider, ''), coalesce(model, ''),"  # noqa: S608
    f" dimensions, {_event_sums(model_calls_only=False, sign='-')} FROM {{events}}"
    " WHERE time_ns >= %s AND time_ns < %s GROUP BY 1, 2, 3, 4, 5, 6"
)
PRUNE_VALUES: Final = (
    "DELETE FROM {dim_values} AS v"
    " WHERE NOT EXISTS (SELECT FROM {dim_day} AS r WHERE r.value_id = v.value_id)"
    " AND NOT EXISTS (SELECT FROM {dim_month} AS r WHERE r.value_id = v.value_id)"
    " AND NOT EXISTS (SELECT FROM {day_total} AS r WHERE r.value_id = v.value_id)"
)
"""Deletes the dimension values in no row of the roll-ups by value, after a prune (in its
transaction, `FOLDED` locked): those no kept event has (every kept event's values have a row of
its day), found through the roll-ups' primary keys (value first). A writer holds `FOLDED` shared
from before it looks its values up until it commits, so no value is deleted between a writer
finding it stored and its rows referring to it; numbers are never given again (an identity)."""
# Re-pricing locks the events first (so the old values it reads are the latest), then moves
# each changed event's old cost to previous_cost, corrects the hourly roll-up by the
# difference, and returns the differences per (day, key, dimension set) for the roll-ups by
# value (`meterline.ledger._postgres_rollups`).
REPRICE: Final = (
    "WITH old AS ("  # noqa: S608 - fixed text: column names from constants, values are parameters
    " SELECT e.id, e.cost AS old_cost, e.cost_pico AS old_pico, e.price_version AS old_version,"
    f" CASE WHEN {_unpriced('e')} THEN 1 ELSE 0 END"
    " AS old_unpriced, n.cost, n.cost_pico, n.price_version"
    " FROM {events} e JOIN pg_temp.meterline_repricing n ON n.id = e.id"
    " WHERE e.cost IS DISTINCT FROM n.cost OR e.price_version IS DISTINCT FROM n.price_version"
    " ORDER BY e.id FOR UPDATE OF e"
    "), upd AS ("
    " UPDATE {events} e SET previous_cost = old.old_cost, previous_price_version = old.old_version,"
    " cost = old.cost, cost_pico = old.cost_pico, price_version = old.price_version"
    " FROM old WHERE e.id = old.id"
    " RETURNING e.hour, e.operation, e.status, coalesce(e.provider, '') AS provider,"
    " coalesce(e.model, '') AS model, e.dimensions,"
    f" (CASE WHEN {_unpriced('e')} THEN 1 ELSE 0 END)"
    " - old.old_unpriced AS unpriced, coalesce(e.cost_pico, 0) - coalesce(old.old_pico, 0) AS cost_pico"
    "), delta AS ("
    f" SELECT {NODIMS_KEY}, sum(unpriced) AS unpriced, sum(cost_pico) AS cost_pico"
    " FROM upd GROUP BY 1, 2, 3, 4, 5"
    "), fix AS ("
    " UPDATE {nodims} r SET unpriced = nullif(coalesce(r.unpriced, 0) + delta.unpriced, 0),"
    " cost_pico = nullif(coalesce(r.cost_pico, 0) + delta.cost_pico, 0)"
    f" FROM delta WHERE (r.hour, r.operation, r.status, r.provider, r.model) = (delta.hour, delta.operation,"
    " delta.status, delta.provider, delta.model)"
    f") SELECT {DAY_OF_HOUR}, {KEY_COLUMNS}, dimensions, count(*), sum(unpriced)::bigint, sum(cost_pico)"
    " FROM upd GROUP BY 1, 2, 3, 4, 5, 6"
)
TOTAL_SUMS: Final = tuple(
    # A tool's reported usage is informational (as in meterline.Totals): never in usage or cost.
    f"coalesce(sum({name}) FILTER (WHERE {_MODEL_CALL}), 0){'' if name == 'cost_pico' else '::bigint'}"
    if name in _MODEL_SUMS
    else _rollup_sums(name)
    for name in ROLLUP_SUMS
)
"""SQL: a report's sums over rows of the hourly or daily roll-up (which keep a tool's usage)."""
MONTH_SUMS: Final = tuple(_rollup_sums(name) for name in ROLLUP_SUMS)
"""SQL: a report's sums over rows of the monthly roll-up by value (which leaves a tool's usage out)."""
MONTH_COLUMNS: Final = tuple(f"coalesce({name}, 0)" for name in ROLLUP_SUMS)
"""SQL: the sums of one row of the monthly roll-up by value, read as `MONTH_SUMS` adds them up."""
PERIODS: Final = {
    "hour": "{0}",
    "day": _DAY_OF,
    "month": MONTH_OF.format("{0}", 1),
}
"""SQL: the start of the hour, day or month of the seconds in column ``{0}``."""
QUERIES: Final = {
    "write": WRITE,
    "write_late": WRITE_LATE,
    "reprice": REPRICE,
    "copy": f"COPY pg_temp.meterline_incoming ({', '.join(EVENT_COLUMNS)}, set_no) FROM STDIN",
    "copy_dims": "COPY pg_temp.meterline_incoming_dims (set_no, value_no) FROM STDIN",
    "copy_values": "COPY pg_temp.meterline_incoming_values (value_no, name, value) FROM STDIN",
    "new_values": NEW_VALUES,
    "new_keys": NEW_KEYS,
    "prune_hour": PRUNE_HOUR,
    "prune_spread": PRUNE_SPREAD,
    "prune_hours": "DELETE FROM {nodims} WHERE hour < %s OR events = 0",
    "prune_days": "DELETE FROM {dim_day} WHERE day < %s OR (day = %s AND events = 0)",
    "prune_months": "DELETE FROM {dim_month} WHERE month < %s OR (month = %s AND events = 0)",
    "prune_day_totals": "DELETE FROM {day_total} WHERE day < %s OR (day = %s AND events = 0)",
    "prune_values": PRUNE_VALUES,
    "fold": FOLD,
    "fold_by_day": "SET LOCAL enable_seqscan = off",
    "folded": f"SELECT value FROM {{meta}} WHERE key = '{FOLDED}'",  # noqa: S608 - constants
    "folded_share": f"SELECT value FROM {{meta}} WHERE key = '{FOLDED}' FOR SHARE",  # noqa: S608
    "folded_update": f"SELECT value FROM {{meta}} WHERE key = '{FOLDED}' FOR UPDATE",  # noqa: S608
    "set_folded": f"UPDATE {{meta}} SET value = %s WHERE key = '{FOLDED}'",  # noqa: S608
    "copy_reprice": "COPY pg_temp.meterline_repricing (id, cost, cost_pico, price_version) FROM STDIN",
    "prune_events": "DELETE FROM {events} WHERE time_ns < %s",
    "ensure_partition": "SELECT {ensure_partition}(%s)",
    "drop_partitions": "SELECT {drop_partitions}(%s)",
    "stats": (
        "SELECT count(*), min(time_ns), max(time_ns), (SELECT count(*) FROM {nodims}),"
        " (SELECT count(*) FROM {dim_values}) FROM {events}"
    ),
}
"""The ledger's fixed SQL by name, its tables' names to be filled in (``{events}``…) at open."""
_INCOMING: Final = ", ".join(
    f"{name} {kind}{BYTE_ORDER if name == 'id' else ''}" for name, kind in EVENT_TYPES.items()
)
TEMPORARY_TABLES: Final = (
    f"meterline_incoming ({_INCOMING}, set_no INTEGER)",
    "meterline_incoming_dims (set_no INTEGER, value_no INTEGER)",
    f"meterline_incoming_values (value_no INTEGER, {VALUE_DDL})",
    f"meterline_day_delta ({VALUE_DDL}, day BIGINT, {KEY_DDL}, {SUMS_DDL})",
    f"meterline_month_delta ({VALUE_DDL}, month BIGINT, {SUMS_DDL})",
    f"meterline_day_total_delta ({VALUE_DDL}, day BIGINT, {SUMS_DDL})",
    "meterline_repricing (id TEXT, cost NUMERIC, cost_pico NUMERIC, price_version TEXT)",
)
"""Each session's temporary tables (``CREATE TEMP TABLE`` text, their rows deleted at commit): a
batch being written (its events, their dimension sets and values), changes to the roll-ups by
value, new prices."""
