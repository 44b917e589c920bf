"""The PostgreSQL ledger: the conformance suite against a real server, plus what only it does.

Each test gets its own PostgreSQL schema, dropped afterwards. Without a server the tests
skip (or fail with ``METERLINE_REQUIRE_SERVICES=1``); see `tests.ledger.services`.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline import ConfigurationError, Usage, UsageEvent
from meterline.exceptions import LedgerError
from meterline.ledger._postgres import PostgresLedger
from meterline.ledger._postgres_schema import VERSION
from tests.ledger.conformance import (
    HOSTILE,
    T0,
    LedgerConformance,
    as_stored_before_billing,
    assert_reports,
    by_key,
    make_event,
    product_events,
)
from tests.ledger.services import require_postgres
from tests.storage.freezer import frozen_relay

pytestmark = pytest.mark.services

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def url() -> str:
    """The test server's URL (the module skips without one)."""
    return require_postgres()


@pytest.fixture
def schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped (with everything in it) after the test."""
    name = f"meterline_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name)))


@pytest.fixture
def ledger(url: str, schema: str) -> Iterator[PostgresLedger]:
    """A fresh, empty PostgreSQL ledger in its own schema."""
    ledger = PostgresLedger(url, schema=schema)
    yield ledger
    ledger.close()


def _execute(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


class TestPostgres(LedgerConformance):
    """The conformance suite, on PostgreSQL."""

    schema_version = VERSION


# -- opening and migrating ------------------------------------------------------------------


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
    meta = _execute(url, f'SELECT key, value FROM "{schema}".meterline_meta')  # schema: a safe test name
    stored = {str(key): value for key, value in meta}
    assert stored["schema_version"] == str(VERSION)
    assert sorted(stored) == ["dim_months_until", "schema_version"]
    tables = _execute(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    assert sorted(str(name) for (name,) in tables) == [
        "meterline_dim_values",
        "meterline_events",
        "meterline_events_202501",  # the month of T0: one partition a month
        "meterline_meta",
        "meterline_rollup_dim_day",
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


def test_reopening_keeps_the_data(ledger: PostgresLedger, url: str, schema: str) -> None:
    """A second ledger on the same schema sees what the first one wrote."""
    ledger.write([make_event(1, T0), make_event(2, T0)])
    again = PostgresLedger(url, schema=schema)
    try:
        assert [event.id for event in again.events()] == [make_event(1, T0).id, make_event(2, T0).id]
        assert again.write([make_event(2, T0)]) == 0
    finally:
        again.close()


def test_newer_schema_is_refused(ledger: PostgresLedger, url: str, schema: str) -> None:
    """A store written by a newer meterline raises LedgerError naming the version, and is left alone."""
    ledger.write([make_event(1, T0)])
    _execute(
        url, f"UPDATE \"{schema}\".meterline_meta SET value = '{VERSION + 1}' WHERE key = 'schema_version'"
    )
    with pytest.raises(LedgerError, match="newer meterline"):
        PostgresLedger(url, schema=schema)
    assert _execute(url, f'SELECT count(*) FROM "{schema}".meterline_events') == [(1,)]


def test_migrates_a_version_1_store_keeping_its_events(url: str, schema: str) -> None:
    """A version 1 store (one table of events, an hour index) opens as the current version, events kept."""
    events = [make_event(i, T0 + timedelta(days=20 * i)) for i in range(3)]  # three months
    old = [events[0], make_event(7, T0 - timedelta(days=40), dims={"user": "u'1"})]
    _store_at(url, schema, 1, old)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 9
        assert sorted(reopened.events(), key=lambda event: event.id) == sorted(
            old, key=lambda event: event.id
        )
        assert reopened.write(events) == 2  # the first is stored already
        assert {event.id for event in reopened.events()} == {event.id for event in (*old, *events)}
    finally:
        reopened.close()
    indexes = _execute(url, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
    assert "meterline_events_hour" not in {name for (name,) in indexes}
    partitions = _execute(
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


def test_prune_drops_the_months_that_end_before_it(ledger: PostgresLedger, url: str, schema: str) -> None:
    """Retention drops whole monthly partitions, deletes the rest row by row, and keeps totals exact."""
    events = [make_event(i, T0 + timedelta(days=15 * i)) for i in range(6)]  # January to April
    ledger.write(events)

    def partitions() -> list[str]:
        found = _execute(
            url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (f'"{schema}".meterline_events',),
        )
        return [str(name) for (name,) in found]

    assert partitions() == [f"meterline_events_2025{month:02d}" for month in (1, 2, 3, 4)]
    cut = T0 + timedelta(days=40)  # 2025-03-11 22:00: January and February end before it
    assert ledger.prune(cut) == sum(1 for event in events if event.time < cut)
    assert partitions() == ["meterline_events_202503", "meterline_events_202504"]
    assert [event.id for event in ledger.events()] == [event.id for event in events if event.time >= cut]
    assert ledger.totals()[0].events == sum(1 for event in events if event.time >= cut)
    assert ledger.write(events[:1]) == 1  # a late event for a dropped month: its partition again
    assert "meterline_events_202501" in partitions()


def test_schema_must_be_an_identifier(url: str) -> None:
    """A schema name that is not a lower-case identifier is refused before connecting."""
    for bad in ("Public", "a-b", 'x"; DROP SCHEMA public; --', "", "a" * 64):
        with pytest.raises(ConfigurationError):
            PostgresLedger(url, schema=bad)


# -- connection failures -------------------------------------------------------------------


def test_unreachable_server_fails_fast_naming_the_url_without_password() -> None:
    """A closed port raises LedgerError within the connect timeout; the message hides the password."""
    started = time.monotonic()
    with pytest.raises(LedgerError, match=r"127\.0\.0\.1:1/test") as info:
        PostgresLedger("postgresql://app:s3cret@127.0.0.1:1/test", connect_timeout=2)
    assert time.monotonic() - started < 5
    assert "s3cret" not in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.Error)


def test_broken_connection_is_reopened_once(ledger: PostgresLedger, url: str) -> None:
    """When the server ends the session, the next call reconnects and works."""
    ledger.write([make_event(1, T0)])
    (pid,) = ledger._run(lambda cur: cur.execute("SELECT pg_backend_pid()").fetchone())  # type: ignore[misc]
    _execute(url, "SELECT pg_terminate_backend(%s)", (pid,))
    assert ledger.write([make_event(2, T0)]) == 1
    assert ledger.stats().events == 2


def test_errors_become_ledger_errors_and_roll_back(ledger: PostgresLedger) -> None:
    """A value PostgreSQL refuses raises LedgerError, stores nothing of the batch, and the ledger goes on."""
    later = T0 + timedelta(hours=5)
    ledger.write([make_event(2, later, usage=Usage(input_tokens=2**63 - 1), cost="1")])
    with pytest.raises(LedgerError) as info:  # the roll-up's sum would pass a BIGINT
        ledger.write([make_event(3, T0), make_event(4, later, usage=Usage(input_tokens=1), cost="1")])
    assert isinstance(info.value.__cause__, psycopg.Error)
    assert ledger.stats().events == 1
    assert ledger.write([make_event(3, T0)]) == 1


# -- concurrency, values, money ------------------------------------------------------------


def test_concurrent_writers_store_each_event_once(ledger: PostgresLedger, url: str, schema: str) -> None:
    """Four threads writing overlapping batches of the same events store each once, every roll-up exact."""
    events = product_events(2000)
    writers = [PostgresLedger(url, schema=schema) for _ in range(4)]
    barrier = threading.Barrier(4)

    def write_all(number: int) -> int:
        writer = writers[number]
        order = events[number * 250 :] + events[: number * 250]  # each starts elsewhere
        barrier.wait()
        return sum(writer.write(order[start : start + 300]) for start in range(0, len(order), 300))

    try:
        with ThreadPoolExecutor(4) as pool:
            stored = sum(pool.map(write_all, range(4)))
    finally:
        for writer in writers:
            writer.close()
    assert stored == len(events)
    assert ledger.stats().events == len(events)
    assert_reports(ledger, events)  # the hourly, daily and monthly roll-ups, each event counted once


def test_one_ledger_shared_by_threads(ledger: PostgresLedger) -> None:
    """One ledger used from several threads at once (its lock serialises them) loses nothing."""
    events = [make_event(i, T0) for i in range(400)]
    with ThreadPoolExecutor(4) as pool:
        stored = sum(pool.map(lambda start: ledger.write(events[start : start + 50]), range(0, 400, 25)))
    assert stored == 400
    assert ledger.totals()[0].events == 400


def test_json_and_dimension_values_with_quotes_are_stored_verbatim(
    ledger: PostgresLedger, url: str, schema: str
) -> None:
    """Dimensions with quotes, backslashes and NUL are stored as the exact JSON text and read back equal."""
    dims = {"note": 'a "quoted" \\ value \' ; --', "user": "\x00nul\uffff"}
    event = make_event(1, T0, dims=dims, model='m"\x00\uffff')
    ledger.write([event])
    (stored,) = _execute(url, f'SELECT dimensions, model FROM "{schema}".meterline_events')
    assert stored[0] == '{"note":"a \\"quoted\\" \\\\ value \' ; --","user":"\\u0000nul\\uffff"}'
    assert list(ledger.events()) == [event]
    (row,) = ledger.totals(by=("note", "user", "model"), where={"user": dims["user"], "model": event.model})
    assert row.key == (dims["note"], dims["user"], event.model)


def test_costs_are_exact_numeric(ledger: PostgresLedger, url: str, schema: str) -> None:
    """Costs are stored as exact NUMERIC and add up exactly, beyond 64-bit pico-dollars."""
    events = [
        make_event(1, T0, cost="0.000000000001"),
        make_event(2, T0, cost="1234567890123456.123456789012"),
        make_event(3, T0, cost="0.1"),
        make_event(4, T0, cost="0.2"),
    ]
    ledger.write(events)
    (row,) = ledger.totals()
    assert row.cost == Decimal("1234567890123456.423456789013")
    assert "E" not in str(row.cost)
    costs = _execute(url, f'SELECT cost::text, cost_pico::text FROM "{schema}".meterline_events ORDER BY id')
    assert costs[1] == ("1234567890123456.123456789012", "1234567890123456123456789012")
    assert [event.cost for event in ledger.events()] == [event.cost for event in events]
    assert ledger.reprice([(events[1].id, Decimal("0.3"), "v2")]) == 1
    (row,) = ledger.totals()
    assert row.cost == Decimal("0.600000000001")
    audit = _execute(
        url,
        f'SELECT previous_cost::text, previous_price_version FROM "{schema}".meterline_events WHERE id = %s',
        (events[1].id,),
    )
    assert audit == [("1234567890123456.123456789012", "test-prices")]


def test_an_unreachable_server_spools_and_the_spool_replays_into_a_live_one(
    url: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A meter whose PostgreSQL is down (a closed port) records anyway; its spool replays once, exactly."""
    import logging

    from meterline import Meter, Usage
    from meterline._delivery import Spool, default_spool_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    dead_url = "postgresql://postgres@127.0.0.1:1/test"
    with caplog.at_level(logging.WARNING, logger="meterline"):
        meter = Meter(dead_url)
        recorded = [
            meter.record(Usage(input_tokens=index, output_tokens=1), model="gpt-4o", provider="openai").id
            for index in range(1, 101)
        ]
        assert meter.flush(timeout=30)
        meter.close()
    assert "cannot be opened yet" in caplog.text
    spool = Spool(default_spool_dir(meter.ledger.url if meter.ledger else dead_url))
    assert spool.pending() == 100
    live = PostgresLedger(url, schema=schema)
    try:
        assert spool.replay(live) == 100
        assert spool.replay(live) == 0
        assert sorted(event.id for event in live.events()) == sorted(recorded)
        assert live.totals()[0].usage.input_tokens == sum(range(1, 101))
    finally:
        live.close()


def test_a_durable_ledger_insists_on_synchronous_commit(url: str, schema: str) -> None:
    """A durable ledger's sessions commit synchronously even when the connection turned it off."""
    separator = "&" if "?" in url else "?"
    relaxed = f"{url}{separator}options=-c%20synchronous_commit%3Doff"
    durable = PostgresLedger(relaxed, schema=schema, durable=True)
    plain = PostgresLedger(relaxed, schema=schema)
    try:
        show = "SHOW synchronous_commit"
        assert durable._run(lambda cur: cur.execute(show).fetchone()) == ("on",)
        assert plain._run(lambda cur: cur.execute(show).fetchone()) == ("off",)
    finally:
        durable.close()
        plain.close()


def test_a_frozen_server_fails_a_write_within_the_timeout(url: str, schema: str) -> None:
    """A server that stops answering (frozen, not down) fails a write within ``timeout``; then recovers."""
    with frozen_relay(url, 5432) as relay:
        ledger = PostgresLedger(relay.url(url), schema=schema, timeout=1.0, connect_timeout=2)
        try:
            assert ledger.write([make_event(1, T0)]) == 1
            relay.freeze()
            started = time.monotonic()
            with pytest.raises(LedgerError, match="did not answer within 1 s"):
                ledger.write([make_event(2, T0)])
            assert time.monotonic() - started < 2.0
            relay.thaw()
            ledger.write([make_event(2, T0)])  # a fresh connection; the id is kept once however often sent
            assert ledger.stats().events == 2
        finally:
            ledger.close()


def test_record_in_sync_mode_never_waits_past_the_bound_on_a_frozen_server(
    url: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sync record() waits at most timeout + connect_timeout on a frozen server; every event arrives later."""
    from meterline import Meter

    monkeypatch.setenv("METERLINE_SPOOL_DIR", str(tmp_path))
    with frozen_relay(url, 5432) as relay:
        ledger = PostgresLedger(relay.url(url), schema=schema, timeout=1.0, connect_timeout=2)
        meter = Meter(ledger, durability="sync")
        try:
            ids = [meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai").id]
            relay.freeze()
            waits = []
            for _ in range(20):
                started = time.monotonic()
                ids.append(meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai").id)
                waits.append(time.monotonic() - started)
            assert max(waits) < 1.0 + 2 + 1.0  # the write's bound, then the probe's connect
            assert sum(waits) < 1.0 + 2 + 2.0  # after the first, the ledger rests: straight to the spool
            delivery = meter.stats().ledger
            assert delivery is not None
            assert delivery.spooled >= 20
            relay.thaw()
            direct = PostgresLedger(url, schema=schema)
            try:
                deadline = time.monotonic() + 60
                while direct.stats().events < len(ids) and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert sorted(event.id for event in direct.events()) == sorted(ids)
            finally:
                direct.close()
        finally:
            meter.close()
            ledger.close()


def test_migrates_a_version_5_store_adding_the_billing_columns(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 5 store (no tool calls, tiers or stated costs) opens as the current one: reports exact."""
    from meterline._usage import UNIT_FIELDS

    events = product_events(1200)
    before = [as_stored_before_billing(event) for event in events[:600]]
    _store_at(url, schema, 4, before)
    _migrate_to(url, schema, 5, monkeypatch)
    for table in _ROLLUPS:  # version 5 made them with the columns 6 adds: as version 5 did, without
        drops = ", ".join(f"DROP COLUMN {name}" for name in UNIT_FIELDS)
        _execute(url, f'ALTER TABLE "{schema}".meterline_{table} {drops}')
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 9
        assert_reports(reopened, before)
        assert reopened.write(events[600:]) == 600
        assert_reports(reopened, [*before, *events[600:]])
        assert sorted(reopened.events(), key=lambda event: event.id) == [*before, *events[600:]]
    finally:
        reopened.close()


def _migrate_to(url: str, schema: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bring the store to schema ``version`` as the meterline of that version did (its migrations only)."""
    from meterline.ledger import _postgres
    from meterline.ledger._postgres_migrations import MIGRATIONS

    with monkeypatch.context() as patch:
        patch.setattr(_postgres, "MIGRATIONS", {step: MIGRATIONS[step] for step in range(1, version + 1)})
        PostgresLedger(url, schema=schema).close()
    stored = _execute(url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'schema_version'")
    assert stored == [(str(version),)]


_ROLLUPS: tuple[str, ...] = ("rollup_hour_nodims", "rollup_dim_day", "rollup_dim_month")


def _zero_sums(url: str, schema: str) -> dict[str, int]:
    """Per roll-up table: how many of its sums (but the count of events) are stored as 0 rather than NULL."""
    from meterline.ledger._rows import ROLLUP_SUMS

    return {
        table: int(
            str(
                _execute(
                    url,
                    f"SELECT {' + '.join(f'count(*) FILTER (WHERE {name} = 0)' for name in ROLLUP_SUMS[1:])}"
                    f' FROM "{schema}".meterline_{table}',
                )[0][0]
            )
        )
        for table in _ROLLUPS
    }


def test_roll_ups_store_a_sum_of_zero_as_null(url: str, schema: str) -> None:
    """Written, late, pruned or re-priced: no roll-up stores a zero sum (NULL instead), every report exact."""
    events = product_events(1500)
    ledger = PostgresLedger(url, schema=schema)
    try:
        for end in range(len(events), 0, -500):  # newest first: late events reach the monthly roll-up
            ledger.write(events[max(0, end - 500) : end])
        ledger.prune(T0 + timedelta(hours=30))
        kept = [
            event for event in events if event.time_ns >= int((T0 + timedelta(hours=30)).timestamp()) * 10**9
        ]
        priced = [event for event in kept if event.cost is not None][:50]
        assert ledger.reprice([(event.id, None, "v9") for event in priced]) == len(priced)
        unpriced = {event.id for event in priced}
        kept = [
            dataclasses.replace(event, cost=None, price_version="v9") if event.id in unpriced else event
            for event in kept
        ]
        assert_reports(ledger, kept)
        assert _zero_sums(url, schema) == dict.fromkeys(_ROLLUPS, 0)
    finally:
        ledger.close()


def test_an_events_counts_of_zero_are_stored_as_null(ledger: PostgresLedger, url: str, schema: str) -> None:
    """An event's counts of 0 are stored as NULL, read back as 0: its events and reports exact."""
    from meterline.ledger._postgres_schema import SPARSE_EVENT_FIELDS

    events = product_events(600)
    assert ledger.write(events) == len(events)
    ((zeros, nulls),) = _execute(
        url,
        f"SELECT {' + '.join(f'count(*) FILTER (WHERE {name} = 0)' for name in SPARSE_EVENT_FIELDS)},"
        f" {' + '.join(f'count(*) FILTER (WHERE {name} IS NULL)' for name in SPARSE_EVENT_FIELDS)}"
        f' FROM "{schema}".meterline_events',
    )
    assert zeros == 0
    assert int(str(nulls)) > len(events)
    assert sorted(ledger.events(), key=lambda event: event.id) == sorted(events, key=lambda event: event.id)
    assert_reports(ledger, events)


def test_migrates_a_version_6_store_to_rows_by_value_without_zero_sums(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 6 store (zeros stored) opens as 9: its rows by value copied without zeros, reports exact."""
    from meterline.ledger._rows import ROLLUP_SUMS

    events = [as_stored_before_billing(event) for event in product_events(1200)]
    _store_at(url, schema, 4, events[:600])
    _migrate_to(url, schema, 6, monkeypatch)
    for table in _ROLLUPS:  # as version 6 stored them: every sum a number, none NULL
        _execute(
            url,
            f'UPDATE "{schema}".meterline_{table} SET '
            + ", ".join(f"{name} = coalesce({name}, 0)" for name in ROLLUP_SUMS[1:]),
        )
        _execute(
            url,
            f'ALTER TABLE "{schema}".meterline_{table} '
            + ", ".join(f"ALTER COLUMN {name} SET NOT NULL" for name in ROLLUP_SUMS[1:]),
        )
    zeros = _zero_sums(url, schema)
    assert zeros["rollup_hour_nodims"]
    assert zeros["rollup_dim_day"]  # (nothing is folded into months yet)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 9
        assert _zero_sums(url, schema) == {  # the hourly roll-up's stay until changed (version 7)
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
    """A version 7 store with folded months and hostile values opens as 9: reports exact, before and after."""
    from meterline.ledger._postgres_schema import _DAY_MONTH_SUMS, MONTH_KEY, PERIODS
    from meterline.ledger._rows import ROLLUP_SUMS

    events = [
        make_event(5000 + i, T0 + timedelta(hours=i), dims={"user": value, "session": value})
        for i, value in enumerate(HOSTILE)  # NUL, quotes, JSON and SQL text
    ]
    events += [as_stored_before_billing(event) for event in product_events(1500)]
    stored, later = events[:1200:2], [*events[1:1200:2], *events[1200:]]  # later: late ones among them
    _store_at(url, schema, 4, stored)
    _migrate_to(url, schema, 7, monkeypatch)
    folded = int((T0 + timedelta(days=3)).timestamp()) // 86_400 * 86_400  # as version 7 folded days
    _execute(
        url,
        f'INSERT INTO "{schema}".meterline_rollup_dim_month ({MONTH_KEY}, {", ".join(ROLLUP_SUMS)})'
        f" SELECT name, value, {PERIODS['month'].format('day')}, {_DAY_MONTH_SUMS}"
        f' FROM "{schema}".meterline_rollup_dim_day WHERE day < %s GROUP BY 1, 2, 3',
        (folded,),
    )
    _execute(
        url,
        f"UPDATE \"{schema}\".meterline_meta SET value = %s WHERE key = 'dim_months_until'",
        (str(folded),),
    )
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION == 9
        assert_reports(reopened, stored)
        assert by_key(reopened.totals(by=("session",), where={"session": list(HOSTILE)}))
        assert sum(event.time_ns < folded * 10**9 for event in later) > 100
        assert reopened.write(later) == len(later)
        assert_reports(reopened, events)
    finally:
        reopened.close()
    ((count, distinct),) = _execute(
        url, f'SELECT count(*), count(DISTINCT (name, value)) FROM "{schema}".meterline_dim_values'
    )
    assert int(str(count)) == int(str(distinct)) > len(HOSTILE)
    tables = _execute(
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
    _store_at(url, schema, 4, events)
    reopened = PostgresLedger(url, schema=schema)
    try:
        assert reopened.stats().schema_version == VERSION
        assert_reports(reopened, events)
        assert by_key(reopened.totals(by=("session",), where={"session": list(HOSTILE)}))
    finally:
        reopened.close()
    tables = _execute(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    assert "meterline_rollup_hour" not in {name for (name,) in tables}


def _store_at(url: str, schema: str, version: int, events: list[UsageEvent]) -> None:
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


def test_a_fold_that_cannot_take_its_lock_leaves_the_batch_stored(
    url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A fold held up past the timeout is logged, the batch stays stored; a later write folds those days."""
    events = product_events(600)  # five days
    ledger = PostgresLedger(url, schema=schema, timeout=1.0)
    try:
        assert ledger.write(events[:50]) == 50
        with psycopg.connect(url) as writer:  # another writer's transaction, holding the row shared
            writer.execute(
                f'SELECT value FROM "{schema}".meterline_meta WHERE key = %s FOR SHARE',  # a test schema
                ("dim_months_until",),
            )
            with caplog.at_level(logging.WARNING, logger="meterline"):
                assert ledger.write(events[50:550]) == 500
            assert "folding days into the PostgreSQL monthly roll-up failed" in caplog.text
        assert ledger.write(events[550:]) == 50  # the next write folds the days the failed fold left
        folded = _execute(
            url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'dim_months_until'"
        )
        assert int(str(folded[0][0])) == events[-1].time_ns // 10**9 // 86_400 * 86_400
        assert_reports(ledger, events)
    finally:
        ledger.close()
