"""The PostgreSQL ledger: the conformance suite against a real server, plus what only it does.

Each test gets its own PostgreSQL schema, dropped afterwards. Without a server the tests
skip (or fail with ``METERLINE_REQUIRE_SERVICES=1``); see `tests.ledger.services`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline import ConfigurationError, Usage
from meterline.exceptions import LedgerError
from meterline.ledger._postgres import PostgresLedger
from meterline.ledger._postgres_schema import VERSION
from tests.ledger.conformance import (
    FOLDED_DAYS_REPORTS,
    MANY_VALUES_REPORTS,
    PRODUCT_REPORTS,
    T0,
    LedgerConformance,
    assert_reports,
    assert_reports_through_a_prune_and_a_repricing,
    make_event,
    many_values_events,
    product_events,
    write_by_day,
)
from tests.ledger.postgres_stores import ROLLUPS, execute, zero_sums
from tests.storage.freezer import frozen_relay

pytestmark = pytest.mark.services

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def ledger(url: str, schema: str) -> Iterator[PostgresLedger]:
    """A fresh, empty PostgreSQL ledger in its own schema."""
    ledger = PostgresLedger(url, schema=schema)
    yield ledger
    ledger.close()


class TestPostgres(LedgerConformance):
    """The conformance suite, on PostgreSQL."""

    schema_version = VERSION


# -- opening and migrating ------------------------------------------------------------------


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
    execute(
        url, f"UPDATE \"{schema}\".meterline_meta SET value = '{VERSION + 1}' WHERE key = 'schema_version'"
    )
    with pytest.raises(LedgerError, match="newer meterline"):
        PostgresLedger(url, schema=schema)
    assert execute(url, f'SELECT count(*) FROM "{schema}".meterline_events') == [(1,)]


def test_prune_drops_the_months_that_end_before_it(ledger: PostgresLedger, url: str, schema: str) -> None:
    """Retention drops whole monthly partitions, deletes the rest row by row, and keeps totals exact."""
    events = [make_event(i, T0 + timedelta(days=15 * i)) for i in range(6)]  # January to April
    ledger.write(events)

    def partitions() -> list[str]:
        found = execute(
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
    execute(url, "SELECT pg_terminate_backend(%s)", (pid,))
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
    (stored,) = execute(url, f'SELECT dimensions, model FROM "{schema}".meterline_events')
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
    costs = execute(url, f'SELECT cost::text, cost_pico::text FROM "{schema}".meterline_events ORDER BY id')
    assert costs[1] == ("1234567890123456.123456789012", "1234567890123456123456789012")
    assert [event.cost for event in ledger.events()] == [event.cost for event in events]
    assert ledger.reprice([(events[1].id, Decimal("0.3"), "v2")]) == 1
    (row,) = ledger.totals()
    assert row.cost == Decimal("0.600000000001")
    audit = execute(
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
        every = (*ROLLUPS, "rollup_dim_day_total")
        assert zero_sums(url, schema, every) == dict.fromkeys(every, 0)
    finally:
        ledger.close()


_ODD_TEXT = st.text(
    st.sampled_from(["a", '"', "\\", "u", "0", "\x00", "\u2028", "\uffff", "💸", "\n", "'", "%"])
)
_NUMBERS = itertools.count(10_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(_ODD_TEXT, st.none() | _ODD_TEXT), min_size=1, max_size=6))
def test_reports_from_the_events_read_any_value_from_their_json(
    ledger: PostgresLedger, pairs: list[tuple[str, str | None]]
) -> None:
    """By two dimensions, filtered on a third, the events' values come back exactly, NUL and escapes too."""
    run = uuid.uuid4().hex  # this example's events alone
    events = [
        make_event(next(_NUMBERS), T0, dims={"a": a, "run": run} | ({} if b is None else {"b": b}))
        for a, b in pairs
    ]
    ledger.write(events)
    rows = ledger.totals(by=("a", "b"), where={"run": run})
    assert {row.key: row.events for row in rows} == Counter(pairs)


def test_a_days_rows_are_read_alone_after_a_vacuum_freed_space_in_old_pages(
    ledger: PostgresLedger, url: str, schema: str
) -> None:
    """Rows of a new day written into space a vacuum freed in old pages are read without the rest."""
    events = product_events(8000)  # five days; the upserts of each leave dead row versions behind
    last_day = events[-1].time_ns // 10**9 // 86_400 * 86_400
    earlier = [event for event in events if event.time_ns < last_day * 10**9]
    for at in range(0, len(earlier), 500):
        ledger.write(earlier[at : at + 500])
    table = f'"{schema}".meterline_rollup_dim_day'
    execute(url, f"VACUUM {table}")  # as autovacuum does: their space is free for new rows
    for at in range(len(earlier), len(events), 500):
        ledger.write(events[at : at + 500])
    page = "(ctid::text::point)[0]"
    shared = execute(  # the new day's rows went into old pages too
        url,
        f"SELECT count(DISTINCT {page}) FROM {table} WHERE day = %s"
        f" AND {page} IN (SELECT {page} FROM {table} WHERE day < %s)",
        (last_day, last_day),
    )[0][0]
    assert int(str(shared)) > 0
    execute(url, f"VACUUM {table}")  # its index then holds no dead version: one entry a row
    pages = execute(url, f"SELECT count(DISTINCT {page}) FROM {table} WHERE day = %s", (last_day,))[0][0]
    with psycopg.connect(url) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_indexscan = off")  # a bitmap scan, which counts the pages it reads
        ((plan,),) = conn.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM {table}"
            " WHERE day >= %s AND day < %s".encode(),
            (last_day, last_day + 86_400),
        ).fetchall()
    scan = plan[0]["Plan"]["Plans"][0]
    assert scan["Node Type"] == "Bitmap Heap Scan"
    assert scan["Actual Rows"] > 0
    assert scan.get("Lossy Heap Blocks", 0) == 0
    assert scan["Exact Heap Blocks"] == pages  # the pages holding that day's rows, no other
    assert_reports(ledger, events)


def test_a_role_that_does_not_own_the_index_still_folds(
    ledger: PostgresLedger, url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer that does not own the tables folds the days all the same, exactly."""
    from urllib.parse import urlsplit, urlunsplit

    # The days of the first month (two), whose partition the owner makes: only an owner can.
    events = [
        event
        for event in product_events(600)
        if event.time_ns < T0.replace(month=2, day=1, hour=0).timestamp() * 1e9
    ]
    assert ledger.write(events[:1]) == 1
    role = f"{schema}_writer"  # a test schema's name: fixed text
    grants = [
        f'CREATE ROLE "{role}" LOGIN',
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "{schema}" TO "{role}"',
    ]
    for statement in grants:
        execute(url, statement)
    parts = urlsplit(url)
    writer = PostgresLedger(
        urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}")), schema=schema
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="meterline"):
            assert writer.write(events[1:]) == len(events) - 1
        assert "folding days into the PostgreSQL monthly roll-up failed" not in caplog.text
        folded = execute(url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'dim_months_until'")
        assert int(str(folded[0][0])) == events[-1].time_ns // 10**9 // 86_400 * 86_400
        assert_reports(writer, events)
    finally:
        writer.close()
        execute(url, f'DROP OWNED BY "{role}"')
        execute(url, f'DROP ROLE "{role}"')


def test_an_events_counts_of_zero_are_stored_as_null(ledger: PostgresLedger, url: str, schema: str) -> None:
    """An event's counts of 0 are stored as NULL, read back as 0: its events and reports exact."""
    from meterline.ledger._postgres_schema import SPARSE_EVENT_FIELDS

    events = product_events(600)
    assert ledger.write(events) == len(events)
    ((zeros, nulls),) = execute(
        url,
        f"SELECT {' + '.join(f'count(*) FILTER (WHERE {name} = 0)' for name in SPARSE_EVENT_FIELDS)},"
        f" {' + '.join(f'count(*) FILTER (WHERE {name} IS NULL)' for name in SPARSE_EVENT_FIELDS)}"
        f' FROM "{schema}".meterline_events',
    )
    assert zeros == 0
    assert int(str(nulls)) > len(events)
    assert sorted(ledger.events(), key=lambda event: event.id) == sorted(events, key=lambda event: event.id)
    assert_reports(ledger, events)


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
        folded = execute(url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'dim_months_until'")
        assert int(str(folded[0][0])) == events[-1].time_ns // 10**9 // 86_400 * 86_400
        assert_reports(ledger, events)
    finally:
        ledger.close()


def test_a_write_waits_for_a_prune_before_it_looks_its_values_up(url: str, schema: str) -> None:
    """A write takes the fold row first: while a prune holds it, the write has touched no value yet."""
    ledger = PostgresLedger(url, schema=schema, timeout=30.0)
    try:
        ledger.write([make_event(1, T0, dims={"session": "s1"})])
        with psycopg.connect(url) as pruning:  # a prune's transaction, holding the row exclusively
            pruning.execute(
                f'SELECT value FROM "{schema}".meterline_meta WHERE key = %s FOR UPDATE',  # a test schema
                ("dim_months_until",),
            )
            with ThreadPoolExecutor(1) as pool:
                writing = pool.submit(ledger.write, [make_event(2, T0, dims={"session": "s2"})])
                waiting: list[tuple[object, ...]] = []
                deadline = time.monotonic() + 10
                while not waiting and time.monotonic() < deadline:
                    waiting = execute(
                        url,
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                        (f'%"{schema}"."meterline_meta"%FOR SHARE%',),
                    )
                assert waiting, "the write never waited for the prune's lock"
                locked = execute(
                    url,
                    "SELECT c.relname FROM pg_locks AS l JOIN pg_class AS c ON c.oid = l.relation"
                    " WHERE l.pid = %s",
                    (waiting[0][0],),
                )
                assert {"meterline_dim_values", "meterline_events"}.isdisjoint(name for (name,) in locked)
                pruning.rollback()
                assert writing.result(timeout=30) == 1
        assert {row.key: row.events for row in ledger.totals(by=("session",))} == {("s1",): 1, ("s2",): 1}
    finally:
        ledger.close()


def test_reports_by_one_dimension_read_folded_days_from_their_sums_per_value_and_day(
    ledger: PostgresLedger, url: str, schema: str
) -> None:
    """Folded days outside whole months, or by day: read from sums per value and day, not the keyed rows."""
    events = product_events(1200)  # five days across a month's end: days are folded as they pass
    for start in range(0, len(events), 100):
        ledger.write(events[start : start + 100])
    ((folded,),) = execute(
        url, f"SELECT value FROM \"{schema}\".meterline_meta WHERE key = 'dim_months_until'"
    )
    assert int(str(folded)) > int((T0 + timedelta(days=3)).timestamp())
    execute(url, f'DELETE FROM "{schema}".meterline_rollup_dim_day WHERE day < %s', (int(str(folded)),))
    assert_reports(ledger, events, FOLDED_DAYS_REPORTS)


def test_every_values_sums_over_a_short_range_of_many_values_are_read_from_the_range(
    ledger: PostgresLedger, url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter that keeps the events without the dimension reads every value's sums from the range's rows."""
    from meterline.ledger import _postgres_reports as reports

    events = many_values_events()
    write_by_day(ledger, events, batch=1000)
    execute(url, f'ANALYZE "{schema}".meterline_dim_values')  # as autovacuum would
    execute(url, f'ANALYZE "{schema}".meterline_rollup_dim_day_total')
    chosen: list[tuple[str, str, bool]] = []
    choose = reports._Reader.range_first

    def spy(reader: Any, dimension: str, source: Any, first: int | None, last: int | None) -> bool:
        choice = choose(reader, dimension, source, first, last)
        chosen.append((dimension, source, choice))
        return choice

    monkeypatch.setattr(reports._Reader, "range_first", spy)
    since = T0 + timedelta(days=3)
    assert_reports(ledger, events, [{"by": ("session",), "where": {"session": ["s1", None]}, "since": since}])
    assert ("session", "days", True) in chosen
    chosen.clear()
    assert_reports(ledger, events, [{"by": ("agent",), "where": {"agent": ["a1", None]}, "since": since}])
    assert chosen
    assert not any(choice for _, _, choice in chosen)


@pytest.mark.parametrize("range_first", [True, False])
def test_every_values_sums_read_either_way_give_every_report_exactly(
    ledger: PostgresLedger, range_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the range's rows or by value, every report equals the events, past a prune and re-pricing too."""
    from meterline.ledger import _postgres_reports as reports

    monkeypatch.setattr(reports._Reader, "range_first", lambda *_: range_first)
    events = many_values_events()
    write_by_day(ledger, events, batch=1000)
    assert_reports(ledger, events, [*PRODUCT_REPORTS, *FOLDED_DAYS_REPORTS, *MANY_VALUES_REPORTS])
    assert_reports_through_a_prune_and_a_repricing(ledger, events, len(events))
