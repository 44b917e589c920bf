"""The PostgreSQL ledger's migrations: from any older version to today's, once, every event and report kept.

Stores of older versions are built as their meterline wrote them (`store_at`) or by the
migrations of their day (`migrate_to`); each test gets its own PostgreSQL schema.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from meterline import UsageEvent
from meterline.ledger._postgres import PostgresLedger
from meterline.ledger._postgres_schema import VERSION
from tests.ledger.conformance import (
    HOSTILE,
    T0,
    as_stored_before_billing,
    assert_reports,
    assert_reports_through_a_prune_and_a_repricing,
    by_key,
    make_event,
    product_events,
    write_by_day,
)
from tests.ledger.postgres_stores import ROLLUPS, execute, migrate_to, store_at, zero_sums

pytestmark = pytest.mark.services


def _open_and_write(url: str, schema: str, number: int) -> int:
    ledger = PostgresLedger(url, schema=schema)
    try:
        return ledger.write([make_event(number, T0)])
    finally:
        ledger.close()


def test_many_processes_and_threads_open_at_once_and_migrate_once(url: str, schema: str) -> None:
    """Processes and threads opening a new store at once all succeed against one migrated schema."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pending = pool.starmap_async(_open_and_write, [(url, schema, n) for n in range(4)])
        barrier = threading.Barrier(8)

        def open_in_thread(number: int) -> int:
            barrier.wait()
            return _open_and_write(url, schema, 100 + number)

        with ThreadPoolExecutor(8) as threads:
            in_threads = list(threads.map(open_in_thread, range(8)))
        in_processes = pending.get(timeout=120)
    assert in_processes + in_threads == [1] * 12
    meta = execute(url, f'SELECT key, value FROM "{schema}".meterline_meta')  # schema: a safe test name
    stored = {str(key): value for key, value in meta}
    assert stored["schema_version"] == str(VERSION)
    assert sorted(stored) == ["dim_months_until", "schema_version"]
    tables = execute(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    assert sorted(str(name) for (name,) in tables) == [
        "meterline_dim_values",
        "meterline_events",
        "meterline_events_202501",  # the month of T0: one partition a month
        "meterline_meta",
        "meterline_rollup_dim_day",
        "meterline_rollup_dim_day_total",
        "meterline_rollup_dim_month",
        "meterline_rollup_hour_nodims",
        "meterline_rollup_keys",
    ]
    ledger = PostgresLedger(url, schema=schema)
    try:
        assert ledger.stats().events == 12
        assert ledger.totals()[0].events == 12
    finally:
        ledger.close()


def test_migrates_a_version_1_store_keeping_its_events(url: str, schema: str) -> None:
    """A version 1 store (one table of events, an hour index) opens as the current version, events kept."""
    events = [make_event(i, T0 + timedelta(days=20 * i)) for i in range(3)]  # three months
    old = [events[0], make_event(7, T0 - timedelta(days=40), dims={"user": "u'1"})]
    store_at(url, schema, 1, old)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 11
        assert sorted(reopened.events(), key=lambda event: event.id) == sorted(
            old, key=lambda event: event.id
        )
        assert reopened.write(events) == 2  # the first is stored already
        assert {event.id for event in reopened.events()} == {event.id for event in (*old, *events)}
    finally:
        reopened.close()
    indexes = execute(url, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
    assert "meterline_events_hour" not in {name for (name,) in indexes}
    partitions = execute(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (f'"{schema}".meterline_events',),
    )
    assert [name for (name,) in partitions] == [
        "meterline_events_202412",
        "meterline_events_202501",
        "meterline_events_202502",
        "meterline_events_202503",
    ]


def test_migrates_a_version_5_store_adding_the_billing_columns(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 5 store (no tool calls, tiers or stated costs) opens as the current one: reports exact."""
    from meterline._usage import UNIT_FIELDS

    events = product_events(1200)
    before = [as_stored_before_billing(event) for event in events[:600]]
    store_at(url, schema, 4, before)
    migrate_to(url, schema, 5, monkeypatch)
    for table in ROLLUPS:  # version 5 made them with the columns 6 adds: as version 5 did, without
        drops = ", ".join(f"DROP COLUMN {name}" for name in UNIT_FIELDS)
        execute(url, f'ALTER TABLE "{schema}".meterline_{table} {drops}')
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 11
        assert_reports(reopened, before)
        assert reopened.write(events[600:]) == 600
        assert_reports(reopened, [*before, *events[600:]])
        assert sorted(reopened.events(), key=lambda event: event.id) == [*before, *events[600:]]
    finally:
        reopened.close()


def test_migrates_a_version_6_store_to_rows_by_value_without_zero_sums(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 6 store (zeros stored) opens as 10: its rows by value copied without zeros, reports exact."""
    from meterline.ledger._rows import ROLLUP_SUMS

    events = [as_stored_before_billing(event) for event in product_events(1200)]
    store_at(url, schema, 4, events[:600])
    migrate_to(url, schema, 6, monkeypatch)
    for table in ROLLUPS:  # as version 6 stored them: every sum a number, none NULL
        execute(
            url,
            f'UPDATE "{schema}".meterline_{table} SET '
            + ", ".join(f"{name} = coalesce({name}, 0)" for name in ROLLUP_SUMS[1:]),
        )
        execute(
            url,
            f'ALTER TABLE "{schema}".meterline_{table} '
            + ", ".join(f"ALTER COLUMN {name} SET NOT NULL" for name in ROLLUP_SUMS[1:]),
        )
    zeros = zero_sums(url, schema)
    assert zeros["rollup_hour_nodims"]
    assert zeros["rollup_dim_day"]  # (nothing is folded into months yet)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 11
        assert zero_sums(url, schema) == {  # the hourly roll-up's stay until changed (version 7)
            "rollup_hour_nodims": zeros["rollup_hour_nodims"],
            "rollup_dim_day": 0,
            "rollup_dim_month": 0,
        }
        assert_reports(reopened, events[:600])
        assert reopened.write(events[600:]) == 600
        assert_reports(reopened, events)
    finally:
        reopened.close()


def test_migrates_a_version_7_store_numbering_every_value_and_key(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 7 store with folded months and hostile values opens as 10: reports exact before and after."""
    from meterline.ledger._postgres_schema import _DAY_MONTH_SUMS, MONTH_KEY, PERIODS
    from meterline.ledger._rows import ROLLUP_SUMS

    events = [
        make_event(5000 + i, T0 + timedelta(hours=i), dims={"user": value, "session": value})
        for i, value in enumerate(HOSTILE)  # NUL, quotes, JSON and SQL text
    ]
    events += [as_stored_before_billing(event) for event in product_events(1500)]
    stored, later = events[:1200:2], [*events[1:1200:2], *events[1200:]]  # later: late ones among them
    store_at(url, schema, 4, stored)
    migrate_to(url, schema, 7, monkeypatch)
    folded = int((T0 + timedelta(days=3)).timestamp()) // 86_400 * 86_400  # as version 7 folded days
    execute(
        url,
        f'INSERT INTO "{schema}".meterline_rollup_dim_month ({MONTH_KEY}, {", ".join(ROLLUP_SUMS)})'
        f" SELECT name, value, {PERIODS['month'].format('day')}, {_DAY_MONTH_SUMS}"
        f' FROM "{schema}".meterline_rollup_dim_day WHERE day < %s GROUP BY 1, 2, 3',
        (folded,),
    )
    execute(
        url,
        f"UPDATE \"{schema}\".meterline_meta SET value = %s WHERE key = 'dim_months_until'",
        (str(folded),),
    )
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 11
        assert_reports(reopened, stored)
        assert by_key(reopened.totals(by=("session",), where={"session": list(HOSTILE)}))
        assert sum(event.time_ns < folded * 10**9 for event in later) > 100
        assert reopened.write(later) == len(later)
        assert_reports(reopened, events)
    finally:
        reopened.close()
    ((count, distinct),) = execute(
        url, f'SELECT count(*), count(DISTINCT (name, value)) FROM "{schema}".meterline_dim_values'
    )
    assert int(str(count)) == int(str(distinct)) > len(HOSTILE)
    tables = execute(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    assert not {name for (name,) in tables} & {"meterline_rollup_dim_day_v7", "meterline_rollup_dim_month_v7"}


def test_migrates_a_version_4_store_keeping_every_report(url: str, schema: str) -> None:
    """A version 4 store (a roll-up by dimension set) opens as the current version: every report exact."""
    events = [as_stored_before_billing(event) for event in product_events(1500)]
    events += [
        make_event(5000 + i, T0 + timedelta(hours=i), dims={"user": value, "session": value})
        for i, value in enumerate(HOSTILE)  # NUL, quotes, JSON and SQL text: the JSON PostgreSQL refuses
    ]
    store_at(url, schema, 4, events)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION
        assert_reports(reopened, events)
        assert by_key(reopened.totals(by=("session",), where={"session": list(HOSTILE)}))
    finally:
        reopened.close()
    tables = execute(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    assert "meterline_rollup_hour" not in {name for (name,) in tables}


def _written_by_day(url: str, schema: str) -> list[UsageEvent]:
    """900 product events, of which a current ledger in ``schema`` has stored the first 600, by day."""
    events = product_events(900)
    ledger = PostgresLedger(url, schema=schema)
    try:
        write_by_day(ledger, events[:600])
    finally:
        ledger.close()
    return events


def _as_version(url: str, schema: str, version: int) -> None:
    """Mark the store in ``schema`` as of schema ``version`` (its layout made so by the caller)."""
    execute(
        url,
        f"UPDATE \"{schema}\".meterline_meta SET value = %s WHERE key = 'schema_version'",
        (str(version),),
    )


def test_migrates_a_version_9_store_filling_the_folded_days_sums(url: str, schema: str) -> None:
    """A version 9 store (no folded sums per value and day) opens as 10 with them: reports exact, then too."""
    events = _written_by_day(url, schema)
    table = f'"{schema}".meterline_rollup_dim_day_total'
    folded = sorted(execute(url, f"SELECT * FROM {table}"))
    execute(url, f"DROP TABLE {table}")
    as_version_10_index(url, schema)
    _as_version(url, schema, 9)
    ledger = PostgresLedger(url, schema=schema)
    try:
        assert ledger.stats().schema_version == VERSION == 11
        assert folded
        assert sorted(execute(url, f"SELECT * FROM {table}")) == folded  # as the writes folded them
        assert_reports(ledger, events[:600])
        assert_reports_through_a_prune_and_a_repricing(ledger, events, 600)
    finally:
        ledger.close()


def as_version_10_index(url: str, schema: str) -> None:
    """Give a current store the indexes of the day versions 8 to 10 had: BRIN, and none of folded days."""
    execute(url, f'DROP INDEX "{schema}".meterline_rollup_dim_day_by_date')
    execute(url, f'DROP INDEX IF EXISTS "{schema}".meterline_rollup_dim_day_total_by_date')
    execute(
        url,
        f'CREATE INDEX meterline_rollup_dim_day_days ON "{schema}".meterline_rollup_dim_day USING brin (day)',
    )


def _day_indexes(url: str, schema: str, table: str = "meterline_rollup_dim_day") -> list[tuple[object, ...]]:
    return execute(
        url,
        "SELECT c.relname, a.amname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
        " JOIN pg_am AS a ON a.oid = c.relam WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
        (f'"{schema}".{table}',),
    )


def test_migrates_a_version_10_store_to_a_b_tree_of_the_day(url: str, schema: str) -> None:
    """A version 10 store (a BRIN index of the day) opens as 11 with B-trees of the day: reports exact."""
    events = _written_by_day(url, schema)
    as_version_10_index(url, schema)
    _as_version(url, schema, 10)
    assert _day_indexes(url, schema) == [("meterline_rollup_dim_day_days", "brin")]
    ledger = PostgresLedger(url, schema=schema)
    try:
        assert ledger.stats().schema_version == VERSION == 11
        assert _day_indexes(url, schema) == [("meterline_rollup_dim_day_by_date", "btree")]
        assert _day_indexes(url, schema, "meterline_rollup_dim_day_total") == [
            ("meterline_rollup_dim_day_total_by_date", "btree")
        ]
        assert_reports(ledger, events[:600])
        assert_reports_through_a_prune_and_a_repricing(ledger, events, 600)
    finally:
        ledger.close()
