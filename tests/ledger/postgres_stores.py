"""PostgreSQL ledger stores for tests: SQL run as another client, and stores of older schema versions."""

from __future__ import annotations

from typing import Any

import pytest

from meterline import UsageEvent
from meterline.ledger._postgres import PostgresLedger

psycopg = pytest.importorskip("psycopg")

ROLLUPS: tuple[str, ...] = ("rollup_hour_nodims", "rollup_dim_day", "rollup_dim_month")
"""The roll-up tables, without their ``meterline_`` prefix."""


def execute(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run ``query`` (fixed test SQL) as a client of its own; its rows, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def zero_sums(url: str, schema: str, tables: tuple[str, ...] = ROLLUPS) -> dict[str, int]:
    """Per roll-up table: how many of its sums (but the count of events) are stored as 0 rather than NULL."""
    from meterline.ledger._rows import ROLLUP_SUMS

    return {
        table: int(
            str(
                execute(
                    url,
                    f"SELECT {' + '.join(f'count(*) FILTER (WHERE {name} = 0)' for name in ROLLUP_SUMS[1:])}"
                    f' FROM "{schema}".meterline_{table}',
                )[0][0]
            )
        )
        for table in tables
    }


def migrate_to(url: str, schema: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bring the store to schema ``version`` as the meterline of that version did (its migrations only)."""
    from meterline.ledger import _postgres
    from meterline.ledger._postgres_migrations import MIGRATIONS

    with monkeypatch.context() as patch:
        patch.setattr(_postgres, "MIGRATIONS", {step: MIGRATIONS[step] for step in range(1, version + 1)})
        PostgresLedger(url, schema=schema).close()
    stored = execute(url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'schema_version'")
    assert stored == [(str(version),)]


def store_at(url: str, schema: str, version: int, events: list[UsageEvent]) -> None:
    """A store at schema ``version`` holding ``events``, as that meterline wrote them (roll-up included)."""
    from meterline._usage import TOKEN_FIELDS
    from meterline.ledger._postgres_copy import escape
    from meterline.ledger._postgres_migrations import _V5_EVENT_COLUMNS as OLD_COLUMNS
    from meterline.ledger._postgres_migrations import MIGRATIONS
    from meterline.ledger._rows import EVENT_COLUMNS, event_to_row

    names: dict[str, Any] = {
        name: psycopg.sql.Identifier(schema, f"meterline_{table}")
        for name, table in (
            ("events", "events"),
            ("rollup", "rollup_hour"),
            ("meta", "meta"),
            ("hour_index", "events_hour"),
            ("events_pkey", "events_pkey"),
            ("events_v3", "events_v3"),
            ("ensure_partition", "ensure_partition"),
            ("drop_partitions", "drop_partitions"),
        )
    }
    names["schema"] = psycopg.sql.Identifier(schema)
    names["schema_name"] = psycopg.sql.Literal(schema)
    tool = "operation IN ('execute_tool', 'cache')"
    rollup = (  # the writer of versions 1 to 4, as SQL over the events
        "INSERT INTO {rollup} SELECT hour, operation, status, coalesce(provider, ''), coalesce(model, ''),"
        f" dimensions, count(*), count(*) FILTER (WHERE measured = 0 AND NOT {tool}),"
        f" count(*) FILTER (WHERE measured = 1 AND cost IS NULL AND NOT {tool}),"
        f" {', '.join(f'sum({name})' for name in TOKEN_FIELDS)}, coalesce(sum(cost_pico), 0),"
        " coalesce(sum(latency_ms), 0), sum(tokens_saved) FROM {events} GROUP BY 1, 2, 3, 4, 5, 6"
    )
    insert = psycopg.sql.SQL("INSERT INTO {events} ({columns}) VALUES ({marks})").format(
        columns=psycopg.sql.SQL(", ".join(OLD_COLUMNS)),
        marks=psycopg.sql.SQL(", ".join(["%s"] * len(OLD_COLUMNS))),
        **names,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
        conn.execute(
            psycopg.sql.SQL("CREATE TABLE {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)").format(**names)
        )
        for step in range(1, version + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(psycopg.sql.SQL(statement).format(**names))
        conn.execute(
            psycopg.sql.SQL("INSERT INTO {meta} VALUES ('schema_version', %s)").format(**names),
            (str(version),),
        )
        if version >= 4:  # partitioned by month: one partition a month
            ensure = psycopg.sql.SQL("SELECT {ensure_partition}(%s)").format(**names)
            months = {
                event.time.replace(day=1, hour=0, minute=0, second=0, microsecond=0) for event in events
            }
            for month in months:
                conn.execute(ensure, (int(month.timestamp()),))
        with conn.cursor() as cur:  # text columns as stored: NUL escaped (see `_postgres_copy.escape`)
            stored = [dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True)) for event in events]
            rows = [
                tuple(
                    escape(value) if isinstance(value, str) else value for value in map(row.get, OLD_COLUMNS)
                )
                for row in stored
            ]
            cur.executemany(insert, rows)
        conn.execute(psycopg.sql.SQL(rollup).format(**names))
