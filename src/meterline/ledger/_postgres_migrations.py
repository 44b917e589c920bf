"""The PostgreSQL ledger's forward migrations: each schema version's layout, from the first one on.

`MIGRATIONS` holds the statements that take a store from version ``n - 1`` to ``n``, run in
the opening's transaction (`meterline._storage.postgres_migrate`): a failed one changes
nothing. The migrations to versions 1 to 5 make the layout of their own day (without the
columns later versions add), so that a store of any version reaches today's with every event
and cost exactly as stored. Migrating to version 5 also spreads version 4's roll-up over the
values in Python (`meterline.ledger._postgres_rollups.migrate_v5`), into the roll-ups by value
of that day, keyed by text (`ADD_DAYS_V5`, `ADD_MONTHS_V5`). Today's tables and SQL are
`meterline.ledger._postgres_schema`'s.
"""

from __future__ import annotations as _annotations

from typing import Final

from meterline._usage import UNIT_FIELDS, USAGE_FIELDS
from meterline.ledger._postgres_schema import (
    BYTE_ORDER,
    DAY_DDL,
    DAY_IDS,
    DAY_INDEX,
    DAY_KEY,
    DAY_OF_HOUR,
    DAY_TOTAL_DDL,
    DAY_TOTAL_INDEX,
    EVENT_TYPES,
    FILL_DAY_TOTALS,
    FOLDED,
    KEY_COLUMNS,
    KEY_DDL,
    KEY_FIELDS,
    MONTH_DDL,
    MONTH_IDS,
    MONTH_KEY,
    MONTH_OF,
    NODIMS_KEY,
    ROLLUP_TYPES,
    SAME_KEY,
    SPARSE_EVENT_FIELDS,
    SPARSE_SUMS,
    SUM_NAMES,
    SUMS_DDL,
    VALUE_DDL,
    VERSION,
    add_up,
    stored_sums,
)
from meterline.ledger._rows import EVENT_COLUMNS, ROLLUP_SUMS

__all__ = ["ADD_DAYS_V5", "ADD_MONTHS_V5", "MIGRATIONS", "OLD_ROLLUP_DAYS"]

_NOT_NULL: Final = frozenset(
    {"time_ns", "hour", "operation", "status", "measured", *USAGE_FIELDS}
    | {"dimensions", "attempt", "links", "tokens_saved"}
)
_ROLLUP_KEY: Final = ("hour", *KEY_FIELDS, "dimensions")

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
_MONTH_OF_TIME: Final = MONTH_OF.format("time_ns", _NS)
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
            *(f"{name} {ROLLUP_TYPES[name]} NOT NULL DEFAULT 0" for name in _V5_SUMS),
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
        f"SELECT {{ensure_partition}}(month) FROM (SELECT DISTINCT {_MONTH_OF_TIME}"  # noqa: S608
        " AS month FROM {events_v3}) AS months",
        f"INSERT INTO {{events}} ({_ALL_COLUMNS}) SELECT {_ALL_COLUMNS} FROM {{events_v3}}",  # noqa: S608
        "DROP TABLE {events_v3}",
    ),
    # Version 5: roll-ups by dimension value (day, month) and one without dimensions, in place
    # of the hourly roll-up keyed by the whole set of dimensions (nearly a row per event once
    # sessions are a dimension). The rows by value are filled from the old roll-up by
    # `meterline.ledger._postgres_rollups.migrate_v5`, which then drops it.
    5: (
        f"CREATE TABLE {{nodims}} (hour BIGINT NOT NULL, {KEY_DDL}, {SUMS_DDL}, PRIMARY KEY ({NODIMS_KEY}))",
        f"INSERT INTO {{nodims}} ({NODIMS_KEY}, {', '.join(_V5_SUMS)})"  # noqa: S608 - constants only
        f" SELECT {NODIMS_KEY}, {', '.join(f'sum({name})' for name in _V5_SUMS)} FROM {{rollup}}"
        " GROUP BY 1, 2, 3, 4, 5",
        f"CREATE TABLE {{dim_day}} ({VALUE_DDL}, day BIGINT NOT NULL, {KEY_DDL}, {SUMS_DDL},"
        f" PRIMARY KEY ({DAY_KEY}))",
        f"CREATE TABLE {{dim_month}} ({VALUE_DDL}, month BIGINT NOT NULL, {SUMS_DDL},"
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
    # Version 7: the roll-ups' sums but the count of events stored as NULL when 0 (`SPARSE_SUMS`).
    # In place, at once: stored rows keep their zeros until their next change.
    7: tuple(
        f"ALTER TABLE {{{table}}} " + ", ".join(f"ALTER COLUMN {name} DROP NOT NULL" for name in SPARSE_SUMS)
        for table in ("nodims", "dim_day", "dim_month")
    ),
    # Version 8: the roll-ups by value keyed by numbers (`DAY_DDL`): each (name, value) and key
    # stored once, the rows copied into new tables in key order (their zero sums dropped), and
    # a BRIN index of the day in place of the B-tree by (name, day) (a B-tree again from 11).
    8: (
        "CREATE TABLE {dim_values} (value_id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" {VALUE_DDL}, UNIQUE (name, value))",
        "CREATE TABLE {rollup_keys} (key_id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" {KEY_DDL}, UNIQUE ({KEY_COLUMNS}))",
        "INSERT INTO {dim_values} (name, value)"
        " SELECT name, value FROM {dim_day} UNION SELECT name, value FROM {dim_month} ORDER BY 1, 2",
        f"INSERT INTO {{rollup_keys}} ({KEY_COLUMNS})"  # noqa: S608 - constants only
        f" SELECT DISTINCT {KEY_COLUMNS} FROM {{dim_day}} ORDER BY 1, 2, 3, 4",
        "DROP INDEX IF EXISTS {dim_day_by_day}",
        *(
            statement
            for table, ddl, columns, ids, joins in (
                (
                    "dim_day",
                    DAY_DDL,
                    DAY_IDS,
                    "v.value_id, r.day, k.key_id",
                    f" JOIN {{rollup_keys}} AS k ON {SAME_KEY.format('k', 'r')}",
                ),
                ("dim_month", MONTH_DDL, MONTH_IDS, "v.value_id, r.month", ""),
            )
            for statement in (
                f"ALTER TABLE {{{table}}} RENAME TO meterline_rollup_{table}_v7",
                f"ALTER INDEX {{{table}_pkey}} RENAME TO meterline_rollup_{table}_v7_pkey",
                f"CREATE TABLE {{{table}}} ({ddl})",
                f"INSERT INTO {{{table}}} ({columns}, {SUM_NAMES})"  # noqa: S608 - constants only
                f" SELECT {ids}, {stored_sums([f'r.{name}' for name in ROLLUP_SUMS])}"
                f" FROM {{{table}_v7}} AS r JOIN {{dim_values}} AS v ON v.name = r.name AND v.value = r.value"
                f"{joins} ORDER BY 1, 2{', 3' if joins else ''}",
                f"DROP TABLE {{{table}_v7}}",
            )
        ),
        "CREATE INDEX meterline_rollup_dim_day_days ON {dim_day} USING brin (day)",
    ),
    # Version 9: an event's counts stored as NULL when 0 (`SPARSE_EVENT_FIELDS`). In place, at
    # once (on the partitioned table: every partition): stored rows keep their zeros.
    9: (
        "ALTER TABLE {events} "
        + ", ".join(f"ALTER COLUMN {name} DROP NOT NULL" for name in SPARSE_EVENT_FIELDS),
    ),
    # Version 10: the folded days' sums per (value, day), over every key, made from the daily
    # rows of the days already folded into the monthly roll-up.
    10: (f"CREATE TABLE {{day_total}} ({DAY_TOTAL_DDL})", FILL_DAY_TOTALS),
    # Version 11: the daily roll-up's index of the day a B-tree (`DAY_INDEX`), not BRIN; the
    # folded days' indexed by day too (`DAY_TOTAL_INDEX`).
    11: ("DROP INDEX IF EXISTS {day_brin}", DAY_INDEX, DAY_TOTAL_INDEX),
}
"""Forward migrations: the statements that bring a store from version ``n - 1`` to ``n``."""


assert max(MIGRATIONS) == VERSION

ADD_DAYS_V5: Final = (
    f"INSERT INTO {{dim_day}} AS r ({DAY_KEY}, {SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT {DAY_KEY}, {stored_sums(list(ROLLUP_SUMS))} FROM pg_temp.meterline_day_delta ORDER BY {DAY_KEY}"
    f"{add_up('r', DAY_KEY)}"
)
ADD_MONTHS_V5: Final = (
    f"INSERT INTO {{dim_month}} AS r ({MONTH_KEY}, {SUM_NAMES})"  # noqa: S608 - constants only
    f" SELECT {MONTH_KEY}, {stored_sums(list(ROLLUP_SUMS))} FROM pg_temp.meterline_month_delta"
    f" ORDER BY {MONTH_KEY}"
    f"{add_up('r', MONTH_KEY)}"
)
"""``add_days`` and ``add_months`` (`meterline.ledger._postgres_rollups.SPREAD_QUERIES`) into the
roll-ups by value of versions 5 to 7 (keyed by text): the migration from version 4 fills them
(`meterline.ledger._postgres_rollups.migrate_v5`) before version 8 numbers their keys."""
OLD_ROLLUP_DAYS: Final = (
    # Version 4's hourly roll-up (keyed by dimension set) per day: what migrating to 5 spreads.
    # It has no sums of tool calls (version 6 added them): those are 0.
    f"SELECT {DAY_OF_HOUR}, {KEY_COLUMNS}, dimensions,"  # noqa: S608 - constants only
    f" {', '.join(f'sum({name})' if name in _V5_SUMS else '0' for name in ROLLUP_SUMS)}"
    " FROM {rollup} GROUP BY 1, 2, 3, 4, 5, 6"
)
