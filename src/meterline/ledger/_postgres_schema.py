"""The PostgreSQL ledger's tables, their forward migrations, and the fixed SQL that writes and reads them.

The events are partitioned by UTC month of ``time_ns`` (version 4): ``meterline_events_YYYYMM``,
made by ``meterline_ensure_partition`` when a month's first event is written, dropped whole by
``meterline_drop_partitions`` when a prune passes the month's end. The hourly roll-up is keyed
by the whole set of dimensions (the SQLite ledger's roll-ups by value are not here yet).

SQL text is fixed here: table names are filled in at open as quoted identifiers (the schema's
name as a literal inside the two PL/pgSQL functions), values are parameters, and dimension
names never reach SQL (dimensions are grouped and filtered in Python over roll-up rows).
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
    "EVENT_TYPES",
    "FIELDS",
    "MIGRATIONS",
    "OPTIONAL_FIELDS",
    "PERIODS",
    "REPRICE",
    "TOTAL_SUMS",
    "VERSION",
    "WRITE",
]

VERSION: Final = 4
"""The schema a PostgreSQL ledger is migrated to (its own layout; the number is SQLite's too)."""
FIELDS: Final = ("operation", "status", "provider", "model")
"""Event fields the roll-ups are keyed by (besides hour and dimensions)."""
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
_ROLLUP_KEY: Final = ("hour", *FIELDS, "dimensions")
BYTE_ORDER: Final = ' COLLATE "C"'


def _event_ddl(primary_key: str = "PRIMARY KEY") -> str:
    def column(name: str, kind: str) -> str:
        if name == "id":  # byte order, as Python sorts ids (and a faster index)
            return f"id {kind}{BYTE_ORDER}{' ' + primary_key if primary_key else ''}"
        return f"{name} {kind}{' NOT NULL' if name in _NOT_NULL else ''}"

    columns = [column(name, kind) for name, kind in EVENT_TYPES.items()]
    return ", ".join([*columns, "previous_cost NUMERIC", "previous_price_version TEXT"])


_NS: Final = 1_000_000_000
_PARTITION_LOCK: Final = 0x6D6C7074
"""The advisory lock that serialises the creation of a month's partition ("mlpt")."""
_ALL_COLUMNS: Final = ", ".join((*EVENT_COLUMNS, "previous_cost", "previous_price_version"))
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
            *(f"{name} {kind} NOT NULL DEFAULT 0" for name, kind in _ROLLUP_TYPES.items()),
            f"PRIMARY KEY ({', '.join(_ROLLUP_KEY)})",
        ]
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
}
"""Forward migrations: the statements that bring a store from version ``n - 1`` to ``n``."""


assert max(MIGRATIONS) == VERSION


def _unpriced(table: str = "") -> str:
    """SQL: the event (of ``table``, if named) is a measured model call without a cost."""
    prefix = f"{table}." if table else ""
    return (
        f"{prefix}measured = 1 AND {prefix}cost IS NULL"
        f" AND {prefix}operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
    )


_UNMEASURED: Final = f"measured = 0 AND operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
_UNPRICED: Final = _unpriced()
WRITE: Final = (
    "WITH ins AS ("  # noqa: S608 - fixed text: column names from constants, values are parameters
    f" INSERT INTO {{events}} ({', '.join(EVENT_COLUMNS)})"
    f" SELECT {', '.join(EVENT_COLUMNS)} FROM pg_temp.meterline_incoming ORDER BY id"
    " ON CONFLICT (id, time_ns) DO NOTHING"
    " RETURNING hour, operation, status, provider, model, dimensions, measured, cost,"
    f" {', '.join(USAGE_FIELDS)},"
    " cost_pico, latency_ms, tokens_saved"
    "), roll AS ("
    f" INSERT INTO {{rollup}} AS r ({', '.join(_ROLLUP_KEY)}, {', '.join(ROLLUP_SUMS)})"
    " SELECT hour, operation, status, coalesce(provider, ''), coalesce(model, ''), dimensions, count(*),"
    f" count(*) FILTER (WHERE {_UNMEASURED}), count(*) FILTER (WHERE {_UNPRICED}),"
    f" {', '.join(f'sum({name})' for name in USAGE_FIELDS)},"
    " coalesce(sum(cost_pico), 0), coalesce(sum(latency_ms), 0), sum(tokens_saved)"
    " FROM ins GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
    f" ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = r.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    + ") SELECT count(*) FROM ins"
)
# Re-pricing locks the events first (so the old values it reads are the latest), then moves
# each changed event's old cost to previous_cost and corrects its roll-up row by the difference.
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
    " SELECT hour, operation, status, provider, model, dimensions, sum(unpriced) AS unpriced,"
    " sum(cost_pico) AS cost_pico FROM upd GROUP BY 1, 2, 3, 4, 5, 6"
    "), fix AS ("
    " UPDATE {rollup} r SET unpriced = r.unpriced + delta.unpriced, cost_pico = r.cost_pico + delta.cost_pico"
    " FROM delta WHERE (r.hour, r.operation, r.status, r.provider, r.model, r.dimensions)"
    " = (delta.hour, delta.operation, delta.status, delta.provider, delta.model, delta.dimensions)"
    ") SELECT count(*) FROM upd"
)
_MODEL_SUMS: Final = frozenset({"unmeasured", "unpriced", *USAGE_FIELDS, "cost_pico"})
TOTAL_SUMS: Final = tuple(
    # A tool's reported usage is informational (as in meterline.Totals): never in usage or cost.
    f"coalesce(sum({name}) FILTER (WHERE operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')), 0)"
    if name in _MODEL_SUMS
    else f"sum({name})"
    for name in ROLLUP_SUMS
)
PERIODS: Final = {
    "hour": "hour",
    "day": "floor(hour / 86400.0)::bigint * 86400",
    "month": "extract(epoch FROM date_trunc('month', to_timestamp(hour) AT TIME ZONE 'UTC'))::bigint",
}
"""Start of a roll-up row's period, in seconds since the epoch (fixed SQL, chosen by name)."""
