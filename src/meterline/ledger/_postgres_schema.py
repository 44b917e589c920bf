r"""The PostgreSQL ledger's tables, their forward migrations, and the fixed SQL that writes and reads them.

Schema version 7 (version 5's layout; 6 added each event's server-side tool calls, tier, batch
mode and stated cost; 7 stores a roll-up's sums of 0 as NULL, `_SPARSE`), the SQLite ledger's
design in PostgreSQL's terms:

- ``meterline_events``: partitioned by UTC month of ``time_ns`` (``meterline_events_YYYYMM``,
  made by ``meterline_ensure_partition`` when a month's first event is written, dropped whole
  by ``meterline_drop_partitions`` when a prune passes the month's end), indexed by time.
- ``meterline_rollup_hour_nodims``: sums per (hour, operation, status, provider, model), for
  the reports that neither group nor filter by a dimension.
- ``meterline_rollup_dim_day``: sums per (dimension name, value, UTC day, operation, status,
  provider, model), primary key in that order: a report by one dimension (and model fields)
  reads that dimension's rows in key order. One row per value, day and model used, whatever
  the event's other dimensions are.
- ``meterline_rollup_dim_month``: sums per (name, value, UTC month), a tool call's usage and
  cost left out (informational): reports by one dimension over whole months. It holds the
  days before `FOLDED` (in ``meterline_meta``): once a day has passed, the next write adds
  its daily rows into it (`FOLD`, in a transaction of its own), as SQLite does, so that
  writers do not all update the same hot (org, month) rows.

Each batch's new events are added into the roll-ups by one statement (`WRITE`, `WRITE_LATE`): the
batch's distinct dimension sets are copied beside it as (set, name, value) rows, so that
PostgreSQL never parses the dimensions' JSON (``jsonb`` refuses ``\u0000``, which a value may
hold). A writer holds the `FOLDED` row shared while it writes and a fold takes it
exclusively, so no day is folded while a batch that adds to it is uncommitted; a late event
(of a day already folded) is added to the monthly roll-up by the write itself.

Where stored events must be taken out of or corrected in the roll-ups by value (re-pricing,
a prune, the migration), their sums are read grouped by dimension set and spread over the
values in Python (`meterline.ledger._postgres_rollups`).

SQL text is fixed here: table names are filled in at open as quoted identifiers (the schema's
name as a literal inside the two PL/pgSQL functions), values are parameters, and dimension
names reach SQL only as parameters.
"""

from __future__ import annotations as _annotations

from typing import Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION
from meterline._usage import UNIT_FIELDS, USAGE_FIELDS
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
)

__all__ = [
    "ADD_DAYS",
    "ADD_MONTHS",
    "BYTE_ORDER",
    "DAY_DELTA",
    "DAY_KEY",
    "EVENT_TOTALS",
    "EVENT_TYPES",
    "FOLD",
    "FOLDED",
    "MIGRATIONS",
    "MONTH_DELTA",
    "MONTH_KEY",
    "MONTH_SUMS",
    "OLD_ROLLUP_DAYS",
    "OPTIONAL_FIELDS",
    "PERIODS",
    "PRUNE_HOUR",
    "PRUNE_SPREAD",
    "REPRICE",
    "TOTAL_SUMS",
    "VERSION",
    "WRITE",
    "WRITE_LATE",
]

VERSION: Final = 7
"""The schema a PostgreSQL ledger is migrated to (its own numbering: SQLite's is `SCHEMA_VERSION`)."""
_FIELDS: Final = ("operation", "status", "provider", "model")
"""Event fields version 1's roll-up was keyed by (besides hour and dimensions)."""
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
_NOT_NULL: Final = frozenset(
    {"time_ns", "hour", "operation", "status", "measured", *USAGE_FIELDS}
    | {"dimensions", "attempt", "links", "tokens_saved"}
)
_ROLLUP_TYPES: Final = {
    name: "NUMERIC" if name == "cost_pico" else "DOUBLE PRECISION" if name == "latency_ms" else "BIGINT"
    for name in ROLLUP_SUMS
}
_ROLLUP_KEY: Final = ("hour", *_FIELDS, "dimensions")
BYTE_ORDER: Final = ' COLLATE "C"'


# The columns version 6 added: the server-side tool calls (events and roll-ups), the service
# tier, batch mode and the cost the provider stated. The migrations to versions 1 to 5 make the
# events of their day, without them (version 6 adds them to stores old and new alike).
_ADDED_V6: Final = (*UNIT_FIELDS, "service_tier", "batch", "reported_cost_pico")
_V5_EVENT_COLUMNS: Final = tuple(name for name in EVENT_COLUMNS if name not in _ADDED_V6)
_V5_SUMS: Final = tuple(name for name in ROLLUP_SUMS if name not in UNIT_FIELDS)


def _event_ddl(primary_key: str = "PRIMARY KEY") -> str:
    """The columns of the events table of versions 1 to 5."""

    def column(name: str, kind: str) -> str:
        if name == "id":  # byte order, as Python sorts ids (and a faster index)
            return f"id {kind}{BYTE_ORDER}{' ' + primary_key if primary_key else ''}"
        return f"{name} {kind}{' NOT NULL' if name in _NOT_NULL else ''}"

    columns = [column(name, EVENT_TYPES[name]) for name in _V5_EVENT_COLUMNS]
    return ", ".join([*columns, "previous_cost NUMERIC", "previous_price_version TEXT"])


_NS: Final = 1_000_000_000
_PARTITION_LOCK: Final = 0x6D6C7074
"""The advisory lock that serialises the creation of a month's partition ("mlpt")."""
_ALL_COLUMNS: Final = ", ".join((*_V5_EVENT_COLUMNS, "previous_cost", "previous_price_version"))
_MONTH_OF: Final = "extract(epoch FROM date_trunc('month', to_timestamp({} / {}) AT TIME ZONE 'UTC'))::bigint"
_ENSURE_PARTITION: Final = (
    # The partition of the events of the UTC month starting at ``month_start`` (seconds),
    # created when missing; concurrent callers are serialised by an advisory lock.
    "CREATE OR REPLACE FUNCTION {ensure_partition}(month_start bigint) RETURNS void"  # noqa: S608 - fixed
    " LANGUAGE plpgsql AS $body$"
    " DECLARE"
    "  first timestamp := to_timestamp(month_start) AT TIME ZONE 'UTC';"
    "  name text := 'meterline_events_' || to_char(first, 'YYYYMM');"
    "  next_start bigint := extract(epoch FROM first + interval '1 month')::bigint;"
    " BEGIN"
    "  IF to_regclass(format('%I.%I', {schema_name}, name)) IS NULL THEN"
    f"   PERFORM pg_advisory_xact_lock({_PARTITION_LOCK});"
    "   EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.meterline_events"
    " FOR VALUES FROM (%s) TO (%s)', {schema_name}, name, {schema_name},"
    f"    month_start * {_NS}, next_start * {_NS});"
    "  END IF;"
    " END $body$"
)
_DROP_PARTITIONS: Final = (
    # Drops the monthly partitions whose month ends by ``before_ns``; returns the rows they held.
    "CREATE OR REPLACE FUNCTION {drop_partitions}(before_ns bigint) RETURNS bigint"  # noqa: S608 - fixed
    " LANGUAGE plpgsql AS $body$"
    " DECLARE child record; ends bigint; held bigint; dropped bigint := 0;"
    " BEGIN"
    "  FOR child IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    "   WHERE i.inhparent = format('%I.meterline_events', {schema_name})::regclass"
    "   AND c.relname ~ '^meterline_events_[0-9]{{6}}$' LOOP"
    "   ends := extract(epoch FROM to_date(right(child.relname, 6), 'YYYYMM')"
    "    + interval '1 month')::bigint;"
    f"   IF ends * {_NS} <= before_ns THEN"
    "    EXECUTE format('SELECT count(*) FROM %I.%I', {schema_name}, child.relname) INTO held;"
    "    EXECUTE format('DROP TABLE %I.%I', {schema_name}, child.relname);"
    "    dropped := dropped + held;"
    "   END IF;"
    "  END LOOP;"
    "  RETURN dropped;"
    " END $body$"
)


def _rollup_ddl() -> str:
    return ", ".join(
        [
            "hour BIGINT NOT NULL",
            "operation TEXT NOT NULL",
            "status TEXT NOT NULL",
            "provider TEXT NOT NULL DEFAULT ''",
            "model TEXT NOT NULL DEFAULT ''",
            "dimensions TEXT NOT NULL",
            *(f"{name} {_ROLLUP_TYPES[name]} NOT NULL DEFAULT 0" for name in _V5_SUMS),
            f"PRIMARY KEY ({', '.join(_ROLLUP_KEY)})",
        ]
    )


FOLDED: Final = "dim_months_until"
"""The key in ``meterline_meta`` of the first UTC day (seconds) whose daily rows by value are
not yet added into the monthly roll-up (`FOLD`)."""
_KEY_DDL: Final = (
    f"operation TEXT{BYTE_ORDER} NOT NULL, status TEXT{BYTE_ORDER} NOT NULL,"
    f" provider TEXT{BYTE_ORDER} NOT NULL DEFAULT '', model TEXT{BYTE_ORDER} NOT NULL DEFAULT ''"
)
"""The roll-ups' key fields, in byte order (as their values): sorting and comparing them is a
memcmp, where a database's own collation (even ``C.UTF-8``) calls the C library's, which took
a fifth of each write's time."""
_KEY: Final = "operation, status, provider, model"
_SPARSE: Final = ROLLUP_SUMS[1:]
"""The roll-ups' sums stored as NULL when 0 (since version 7; the tables of version 5 are made so): all
but the count of events.

A roll-up row has 21 sums, most of them 0 for most rows (audio, server-side tools, cache
writes, reasoning, tokens saved…): PostgreSQL stores an integer in 8 bytes whatever its
value and a NULL in one bit, which made the daily roll-up by value 44 % smaller (product-shaped
events: 149 → 83 MB of rows at 300,000 events). Readers add them up with ``coalesce(sum(…), 0)``."""
assert ROLLUP_SUMS[0] == "events"
_SUMS_DDL: Final = ", ".join(
    f"{name} {kind}{'' if name in _SPARSE else ' NOT NULL'} DEFAULT 0" for name, kind in _ROLLUP_TYPES.items()
)
_SUM_NAMES: Final = ", ".join(ROLLUP_SUMS)
_VALUE_DDL: Final = f"name TEXT{BYTE_ORDER} NOT NULL, value TEXT{BYTE_ORDER} NOT NULL"
DAY_KEY: Final = f"name, value, day, {_KEY}"
MONTH_KEY: Final = "name, value, month"
_NODIMS_KEY: Final = f"hour, {_KEY}"


def _unpriced(table: str = "") -> str:
    """SQL: the event (of ``table``, if named) is a measured model call without a cost."""
    prefix = f"{table}." if table else ""
    return (
        f"{prefix}measured = 1 AND {prefix}cost IS NULL"
        f" AND {prefix}operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
    )


_MODEL_CALL: Final = f"operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
_UNMEASURED: Final = f"measured = 0 AND {_MODEL_CALL}"
_UNPRICED: Final = _unpriced()
_MODEL_SUMS: Final = frozenset({"unmeasured", "unpriced", *USAGE_FIELDS, "cost_pico"})


def _event_sums(*, model_calls_only: bool, sign: str = "", stored: bool = False) -> str:
    """SQL: `ROLLUP_SUMS` over event rows (a tool's usage and cost left out if ``model_calls_only``).

    ``stored``: as a roll-up stores them (`_stored`): a sum of 0 but the count as NULL.
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
    return _stored(terms) if stored else ", ".join(terms)


def _stored(terms: list[str]) -> str:
    """SQL: the `ROLLUP_SUMS` ``terms`` as a roll-up row stores them: each of `_SPARSE` NULL when 0."""
    return ", ".join([terms[0], *(f"nullif({term}, 0)" for term in terms[1:])])


def _rollup_sums(name: str) -> str:
    """SQL: the sum of roll-up column ``name`` in a report (integers as ``bigint``, money exact)."""
    if name == "cost_pico":
        return "coalesce(sum(cost_pico), 0)"
    if name == "latency_ms":
        return "coalesce(sum(latency_ms), 0)"
    return f"coalesce(sum({name}), 0)::bigint"


def _add_up(table: str, key: str) -> str:
    """The end of an upsert into roll-up ``table`` keyed by ``key``: sums added to the row's (NULL for 0)."""
    return f" ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(
        f"{name} = {table}.{name} + excluded.{name}"
        if name not in _SPARSE
        else f"{name} = nullif(coalesce({table}.{name}, 0) + coalesce(excluded.{name}, 0), 0)"
        for name in ROLLUP_SUMS
    )


# Fixed SQL text; {events}, {rollup}, {meta} and {schema} are quoted identifiers filled in at open.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        f"CREATE TABLE IF NOT EXISTS {{events}} ({_event_ddl()})",
        "CREATE INDEX IF NOT EXISTS meterline_events_hour ON {events} (hour)",
        f"CREATE TABLE IF NOT EXISTS {{rollup}} ({_rollup_ddl()})",
    ),
    # No index of the events by hour: stats() scans the table anyway (to count it), and
    # every stored event paid for the index.
    2: ("DROP INDEX IF EXISTS {hour_index}",),
    # Version 3 changes the SQLite layout only (key fields stored once per combination);
    # PostgreSQL keeps its rows as they are.
    3: (),
    # Version 4: the events partitioned by UTC month of ``time_ns`` (retention drops whole
    # months; a report over a time range reads only its months), indexed by time. The primary
    # key must hold the partition key: (id, time_ns), which stores an event once just as well
    # (an event's id and time never change).
    4: (
        "ALTER TABLE {events} RENAME TO meterline_events_v3",
        "ALTER INDEX {events_pkey} RENAME TO meterline_events_v3_pkey",
        f"CREATE TABLE {{events}} ({_event_ddl('')}, PRIMARY KEY (id, time_ns)) PARTITION BY RANGE (time_ns)",
        "CREATE INDEX meterline_events_time ON {events} (time_ns)",
        _ENSURE_PARTITION,
        _DROP_PARTITIONS,
        f"SELECT {{ensure_partition}}(month) FROM (SELECT DISTINCT {_MONTH_OF.format('time_ns', _NS)}"  # noqa: S608
        " AS month FROM {events_v3}) AS months",
        f"INSERT INTO {{events}} ({_ALL_COLUMNS}) SELECT {_ALL_COLUMNS} FROM {{events_v3}}",  # noqa: S608
        "DROP TABLE {events_v3}",
    ),
    # Version 5: roll-ups by dimension value (day, month) and one without dimensions, in place
    # of the hourly roll-up keyed by the whole set of dimensions (nearly a row per event once
    # sessions are a dimension). The rows by value are filled from the old roll-up by
    # `meterline.ledger._postgres_rollups.migrate_v5`, which then drops it.
    5: (
        f"CREATE TABLE {{nodims}} (hour BIGINT NOT NULL, {_KEY_DDL}, {_SUMS_DDL},"
        f" PRIMARY KEY ({_NODIMS_KEY}))",
        f"INSERT INTO {{nodims}} ({_NODIMS_KEY}, {', '.join(_V5_SUMS)})"  # noqa: S608 - constants only
        f" SELECT {_NODIMS_KEY}, {', '.join(f'sum({name})' for name in _V5_SUMS)} FROM {{rollup}}"
        " GROUP BY 1, 2, 3, 4, 5",
        f"CREATE TABLE {{dim_day}} ({_VALUE_DDL}, day BIGINT NOT NULL, {_KEY_DDL}, {_SUMS_DDL},"
        f" PRIMARY KEY ({DAY_KEY}))",
        f"CREATE TABLE {{dim_month}} ({_VALUE_DDL}, month BIGINT NOT NULL, {_SUMS_DDL},"
        f" PRIMARY KEY ({MONTH_KEY}))",
        # The days of one dimension (a week's report; the days not folded yet) without
        # reading every value's: the primary key starts (name, value, day).
        "CREATE INDEX meterline_rollup_dim_day_by_day ON {dim_day} (name, day)",
        f"INSERT INTO {{meta}} (key, value) VALUES ('{FOLDED}', '0') ON CONFLICT (key) DO NOTHING",  # noqa: S608
    ),
    # Version 6: each event's server-side tool calls (web searches…, also added up in every
    # roll-up), service tier, batch mode and the cost its provider stated. Columns added in
    # place: stored events keep their rows (no tool calls, no tier, not batch, no stated cost).
    6: (
        *(
            f"ALTER TABLE {{{table}}} ADD COLUMN IF NOT EXISTS {name} BIGINT NOT NULL DEFAULT 0"
            for table in ("events", "nodims", "dim_day", "dim_month")
            for name in UNIT_FIELDS
        ),
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS service_tier TEXT",
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS batch SMALLINT NOT NULL DEFAULT 0",
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS reported_cost_pico NUMERIC",
    ),
    # Version 7: the roll-ups' sums but the count of events stored as NULL when 0 (`_SPARSE`).
    # In place, at once: stored rows keep their zeros until their next change.
    7: tuple(
        f"ALTER TABLE {{{table}}} " + ", ".join(f"ALTER COLUMN {name} DROP NOT NULL" for name in _SPARSE)
        for table in ("nodims", "dim_day", "dim_month")
    ),
}
"""Forward migrations: the statements that bring a store from version ``n - 1`` to ``n``."""


assert max(MIGRATIONS) == VERSION

_MONTH_OF_HOUR: Final = _MONTH_OF.format("hour", 1)
_DAY_OF: Final = "({0} - mod(mod({0}, 86400) + 86400, 86400))"
"""SQL: the start of the UTC day of the seconds in column ``{0}``, an integer (also before 1970:
``mod`` keeps the dividend's sign; the function, as ``%`` would need escaping in queries with parameters)."""
_DAY_OF_HOUR: Final = _DAY_OF.format("hour")


def _write(*, late: bool) -> str:
    """The statement that stores a batch and adds it into the roll-ups (see `WRITE`, `WRITE_LATE`)."""
    months = (
        "), months AS ("  # noqa: S608 - fixed text: constants only
        f" INSERT INTO {{dim_month}} AS r ({MONTH_KEY}, {_SUM_NAMES})"
        f" SELECT name, value, {_MONTH_OF_HOUR}, {_event_sums(model_calls_only=True, stored=True)}"
        " FROM valued WHERE hour < %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        f"{_add_up('r', MONTH_KEY)}"
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
        f" INSERT INTO {{nodims}} AS r ({_NODIMS_KEY}, {_SUM_NAMES})"
        f" SELECT {_NODIMS_KEY}, {_event_sums(model_calls_only=False, stored=True)}"
        " FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
        f"{_add_up('r', _NODIMS_KEY)}"
        "), valued AS ("
        " SELECT s.name, s.value, ins.* FROM ins JOIN pg_temp.meterline_incoming AS i ON i.id = ins.id"
        " JOIN pg_temp.meterline_incoming_dims AS s ON s.set_no = i.set_no"
        "), days AS ("
        f" INSERT INTO {{dim_day}} AS r ({DAY_KEY}, {_SUM_NAMES})"
        f" SELECT name, value, {_DAY_OF_HOUR}, {_KEY}, {_event_sums(model_calls_only=False, stored=True)}"
        " FROM valued GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"
        f"{_add_up('r', DAY_KEY)}"
        f"{months if late else ''}"
        ") SELECT count(*) FROM ins"
    )


WRITE: Final = _write(late=False)
"""Stores the batch copied into ``pg_temp.meterline_incoming`` (ON CONFLICT: each event once,
whatever other writers do) and adds the new events into the hourly roll-up, then, joined to
their dimension sets' (name, value) rows, into the daily roll-up by value. Rows are upserted
in key order (no deadlock). Returns how many events were new."""
WRITE_LATE: Final = _write(late=True)
"""`WRITE` for a batch holding late events (of a day already folded: before the parameter,
`FOLDED`'s value): those are also added into the monthly roll-up (later days are added by
`FOLD` once they have passed). Apart from `WRITE`, whose ``valued`` rows PostgreSQL then reads
once and need not keep (a write of product-shaped events: 32 of its 250 ms went to keeping
and scanning them for a monthly roll-up that none of them reached)."""
_DAY_MONTH_SUMS: Final = _stored(
    [
        f"coalesce(sum({name}) FILTER (WHERE {_MODEL_CALL}), 0)"
        if name in (*USAGE_FIELDS, "cost_pico")
        else f"sum({name})"
        for name in ROLLUP_SUMS
    ]
)
FOLD: Final = (
    # The daily rows by value of the days [%s, %s) added into the monthly roll-up (a tool's
    # usage and cost left out, as there), in key order.
    f"INSERT INTO {{dim_month}} AS r ({MONTH_KEY}, {_SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT name, value, {_MONTH_OF.format('day', 1)}, {_DAY_MONTH_SUMS} FROM {{dim_day}}"
    " WHERE day >= %s AND day < %s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    f"{_add_up('r', MONTH_KEY)}"
)
ADD_DAYS: Final = (
    f"INSERT INTO {{dim_day}} AS r ({DAY_KEY}, {_SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT {DAY_KEY}, {_stored(list(ROLLUP_SUMS))} FROM pg_temp.meterline_day_delta ORDER BY {DAY_KEY}"
    f"{_add_up('r', DAY_KEY)}"
)
"""Add the rows of ``meterline_day_delta`` (sums, maybe negative) into the daily roll-up by value."""
ADD_MONTHS: Final = (
    f"INSERT INTO {{dim_month}} AS r ({MONTH_KEY}, {_SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT {MONTH_KEY}, {_stored(list(ROLLUP_SUMS))} FROM pg_temp.meterline_month_delta"
    f" ORDER BY {MONTH_KEY}"
    f"{_add_up('r', MONTH_KEY)}"
)
"""Add the rows of ``meterline_month_delta`` into the monthly roll-up by value."""
DAY_DELTA: Final = f"meterline_day_delta ({_VALUE_DDL}, day BIGINT, {_KEY_DDL}, {_SUMS_DDL})"
MONTH_DELTA: Final = f"meterline_month_delta ({_VALUE_DDL}, month BIGINT, {_SUMS_DDL})"
"""The temporary tables that hold changes to the roll-ups by value, as ``CREATE TEMP TABLE`` text."""
EVENT_TOTALS: Final = _event_sums(model_calls_only=True)
"""SQL: a report's sums over event rows (a tool's usage and cost left out)."""
PRUNE_HOUR: Final = (
    # Takes the events of [hour, before_ns) out of the hourly roll-up (the hour a prune cuts).
    f"INSERT INTO {{nodims}} AS r ({_NODIMS_KEY}, {_SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT hour, operation, status, coalesce(provider, ''), coalesce(model, ''),"
    f" {_event_sums(model_calls_only=False, sign='-', stored=True)} FROM {{events}}"
    " WHERE time_ns >= %s AND time_ns < %s GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    f"{_add_up('r', _NODIMS_KEY)}"
)
PRUNE_SPREAD: Final = (
    # The sums of the events of [start_ns, before_ns) per (day, key, dimension set): what a
    # prune takes out of the roll-ups by value for the month (and day) it cuts.
    f"SELECT {_DAY_OF_HOUR}, operation, status, coalesce(provider, ''), coalesce(model, ''),"  # noqa: S608
    f" dimensions, {_event_sums(model_calls_only=False, sign='-')} FROM {{events}}"
    " WHERE time_ns >= %s AND time_ns < %s GROUP BY 1, 2, 3, 4, 5, 6"
)
OLD_ROLLUP_DAYS: Final = (
    # Version 4's hourly roll-up (keyed by dimension set) per day: what migrating to 5 spreads.
    # It has no sums of tool calls (version 6 added them): those are 0.
    f"SELECT {_DAY_OF_HOUR}, {_KEY}, dimensions,"  # noqa: S608 - constants only
    f" {', '.join(f'sum({name})' if name in _V5_SUMS else '0' for name in ROLLUP_SUMS)}"
    " FROM {rollup} GROUP BY 1, 2, 3, 4, 5, 6"
)
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
    f" SELECT {_NODIMS_KEY}, sum(unpriced) AS unpriced, sum(cost_pico) AS cost_pico"
    " FROM upd GROUP BY 1, 2, 3, 4, 5"
    "), fix AS ("
    " UPDATE {nodims} r SET unpriced = nullif(coalesce(r.unpriced, 0) + delta.unpriced, 0),"
    " cost_pico = nullif(coalesce(r.cost_pico, 0) + delta.cost_pico, 0)"
    f" FROM delta WHERE (r.hour, r.operation, r.status, r.provider, r.model) = (delta.hour, delta.operation,"
    " delta.status, delta.provider, delta.model)"
    f") SELECT {_DAY_OF_HOUR}, {_KEY}, dimensions, count(*), sum(unpriced)::bigint, sum(cost_pico)"
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
PERIODS: Final = {
    "hour": "{0}",
    "day": _DAY_OF,
    "month": _MONTH_OF.format("{0}", 1),
}
"""SQL: the start of the hour, day or month of the seconds in column ``{0}``."""
