"""The SQLite ledger: the conformance suite, plus file mode, WAL, migrations, concurrency and failures."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import SCHEMA_VERSION
from meterline.ledger._rows import EVENT_COLUMNS
from meterline.ledger._sqlite import SQLiteLedger
from tests.ledger.conformance import T0, LedgerConformance, make_event


class TestSQLite(LedgerConformance):
    """The conformance suite on a SQLite file."""

    @pytest.fixture
    def ledger(self, tmp_path: Path) -> Iterator[SQLiteLedger]:
        """A fresh SQLite ledger in a temporary directory."""
        ledger = SQLiteLedger(tmp_path / "ledger.db")
        yield ledger
        ledger.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where a test's ledger file goes."""
    return tmp_path / "usage.db"


def snapshot(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every event and roll-up row in the file, read with a separate connection."""
    conn = sqlite3.connect(path)
    try:
        events = conn.execute("SELECT * FROM meterline_event_rows ORDER BY id").fetchall()
        rollups = conn.execute("SELECT * FROM meterline_rollup_hour_nodims ORDER BY 1, 2, 3, 4, 5").fetchall()
        # By value: ids depend on the order values were first seen; the newest rows may be in
        # the daily roll-up or still in its table of recent rows, depending on the writes.
        sums = (
            "events, unmeasured, unpriced, input_tokens, output_tokens, cost_pico, latency_ms, tokens_saved"
        )
        rollups += conn.execute(
            "SELECT v.name, v.value, r.day, k.operation, k.status, k.provider, k.model, sum(r.events),"
            " sum(r.unmeasured), sum(r.unpriced), sum(r.input_tokens), sum(r.output_tokens),"
            " sum(r.cost_pico), sum(r.latency_ms), sum(r.tokens_saved)"
            f" FROM (SELECT value_id, day, key_id, {sums} FROM meterline_rollup_dim_day UNION ALL"
            f" SELECT value_id, day, key_id, {sums} FROM meterline_rollup_dim_recent) AS r"
            " JOIN meterline_dim_values AS v ON v.value_id = r.value_id"
            " JOIN meterline_keys AS k ON k.key_id = r.key_id"
            " GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"
        ).fetchall()
    finally:
        conn.close()
    return events, rollups


def test_url_is_the_absolute_path(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The url is ``sqlite:///`` and the file's absolute path, even for a relative path."""
    monkeypatch.chdir(path.parent)
    ledger = SQLiteLedger("usage.db")
    try:
        assert ledger.url == f"sqlite:///{path}"
        assert ledger.stats().url == ledger.url
        assert repr(ledger) == f"SQLiteLedger({str(path)!r})"
    finally:
        ledger.close()


def test_files_are_readable_by_their_owner_only(path: Path) -> None:
    """The database and its WAL and shared-memory files are created with mode 0600."""
    old = os.umask(0)
    try:
        ledger = SQLiteLedger(path)
        ledger.write([make_event(1, T0)])
    finally:
        os.umask(old)
    try:
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.exists()
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        ledger.close()


def test_wal_and_normal_sync(path: Path) -> None:
    """The file is in WAL journal mode, and a second connection sees committed writes."""
    ledger = SQLiteLedger(path)
    ledger.write([make_event(1, T0)])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT COUNT(*) FROM meterline_events").fetchone() == (1,)
        assert ledger._conn is not None
        assert ledger._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        conn.close()
        ledger.close()


def test_writes_sort_in_memory_and_everything_else_through_files(path: Path) -> None:
    """A write's roll-ups sort in memory; reports sort through temporary files (bounded memory)."""
    ledger = SQLiteLedger(path)
    conn = ledger._conn
    assert conn is not None
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert conn.execute("PRAGMA temp_store").fetchone() == (1,)  # FILE
        ledger.write([make_event(1, T0, dims={"user": "u1"})])
        assert conn.execute("PRAGMA temp_store").fetchone() == (2,)  # MEMORY
        ledger.write([make_event(2, T0, dims={"user": "u1"})])
        assert ledger.totals(by=("user",))[0].events == 2
        assert conn.execute("PRAGMA temp_store").fetchone() == (1,)
        ledger.totals(by=("model",), granularity="day")
        ledger.prune(T0 - timedelta(days=1))
        assert conn.execute("PRAGMA temp_store").fetchone() == (1,)
        # Set when it changes only, and outside the transactions (SQLite refuses it inside one).
        pragmas = [text for text in statements if text.startswith("PRAGMA temp_store=")]
        assert pragmas == ["PRAGMA temp_store=MEMORY", "PRAGMA temp_store=FILE"]
        assert statements.index("PRAGMA temp_store=FILE") < statements.index("BEGIN")
    finally:
        conn.set_trace_callback(None)
        ledger.close()


def test_bad_timeout_is_refused(path: Path) -> None:
    """A timeout that is not a non-negative number is a `ConfigurationError`."""
    for timeout in (-1, "5", True, float("nan")):
        with pytest.raises(ConfigurationError):
            SQLiteLedger(path, timeout=timeout)  # type: ignore[arg-type]


def test_unopenable_file_is_a_ledger_error(tmp_path: Path) -> None:
    """A missing directory or a file that is not a database raises `LedgerError`."""
    with pytest.raises(LedgerError, match="cannot create"):
        SQLiteLedger(tmp_path / "missing" / "usage.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 200)
    with pytest.raises(LedgerError) as info:
        SQLiteLedger(garbage)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_migrates_an_empty_v0_store(path: Path) -> None:
    """A store without meterline's tables (version 0) is migrated to the current schema on open."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (x INTEGER)")
    conn.commit()
    conn.close()
    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION
        assert ledger.write([make_event(1, T0)]) == 1
    finally:
        ledger.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM meterline_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"unrelated", "meterline_meta", "meterline_events", "meterline_rollup_dim_day"} <= tables
    finally:
        conn.close()


def test_migrates_a_store_marked_version_0(path: Path) -> None:
    """A store whose meta table says version 0 gets the migrations and the current version."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meterline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meterline_meta VALUES ('schema_version', '0')")
    conn.commit()
    conn.close()
    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION
    finally:
        ledger.close()


def test_reopening_a_current_store_keeps_its_data(path: Path) -> None:
    """Reopening a store of the current version migrates nothing and keeps every event."""
    ledger = SQLiteLedger(path)
    events = [make_event(i, T0 + timedelta(hours=i)) for i in range(5)]
    ledger.write(events)
    before = snapshot(path)
    ledger.close()
    ledger = SQLiteLedger(path)
    try:
        assert list(ledger.events()) == events
        assert ledger.stats().schema_version == SCHEMA_VERSION
        assert snapshot(path) == before
    finally:
        ledger.close()


def test_a_failed_migration_changes_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations run in one transaction: one that fails leaves the store as it was."""
    import meterline.ledger._sqlite as module

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("THIS IS NOT SQL")

    monkeypatch.setattr(module, "MIGRATIONS", (broken,))
    with pytest.raises(LedgerError):
        SQLiteLedger(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        conn.close()


def test_refuses_a_newer_schema(path: Path) -> None:
    """A store written by a newer meterline is refused, naming both versions, and left untouched."""
    SQLiteLedger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE meterline_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="newer meterline") as info:
        SQLiteLedger(path)
    assert str(SCHEMA_VERSION + 1) in str(info.value)
    assert str(SCHEMA_VERSION) in str(info.value)
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT value FROM meterline_meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION + 1),)
    finally:
        conn.close()


def test_refuses_a_garbled_schema_version(path: Path) -> None:
    """A schema version that is not an integer is a `LedgerError`, not a crash."""
    SQLiteLedger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meterline_meta SET value = 'two' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="schema_version"):
        SQLiteLedger(path)


def test_two_ledgers_in_two_threads_store_each_event_once(path: Path) -> None:
    """Two ledgers on one file, writing overlapping batches from two threads, store every event once."""
    events = [make_event(i, T0 + timedelta(seconds=i)) for i in range(4000)]
    ledgers = [SQLiteLedger(path), SQLiteLedger(path)]
    written = [0, 0]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for start in range(0, 4000, 250):
                # Each thread writes every batch, and half of the next one: overlapping everywhere.
                batch = events[start : start + 375]
                written[index] += ledgers[index].write(batch if index == 0 else batch[::-1])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sum(written) == 4000
        assert [event.id for event in ledgers[1].events()] == [event.id for event in events]
        (row,) = ledgers[0].totals()
        assert row.events == 4000
        assert row.cost == Decimal("4.000")
        assert ledgers[0].stats().events == 4000
    finally:
        for ledger in ledgers:
            ledger.close()


def test_one_ledger_shared_by_threads(path: Path) -> None:
    """One ledger used by several threads at once (writes and reads) stays consistent."""
    ledger = SQLiteLedger(path)
    events = [make_event(i, T0 + timedelta(seconds=i)) for i in range(2000)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for start in range(offset * 100, 2000, 400):
                ledger.write(events[start : start + 100])
                ledger.totals(by=("model",), granularity="hour")
                sum(1 for _ in ledger.events(after_id=events[start].id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert ledger.stats().events == 2000
    finally:
        ledger.close()


def test_a_failing_write_leaves_the_ledger_unchanged(path: Path) -> None:
    """A write that fails half-way raises `LedgerError` and rolls back: no event, no roll-up of it."""
    ledger = SQLiteLedger(path)
    try:
        ledger.write([make_event(1, T0), make_event(2, T0, model="other")])
        before = snapshot(path)
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON meterline_rollup_hour_nodims WHEN NEW.model = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        conn.commit()
        conn.close()
        batch = [make_event(3, T0), make_event(4, T0, model="boom"), make_event(5, T0 + timedelta(hours=1))]
        with pytest.raises(LedgerError, match="boom") as info:
            ledger.write(batch)
        assert isinstance(info.value.__cause__, sqlite3.Error)
        assert snapshot(path) == before
        assert ledger.stats().events == 2
        # The ledger still works after the failure.
        assert ledger.write([batch[0], batch[2]]) == 2
        assert ledger.stats().events == 4
    finally:
        ledger.close()


def test_a_locked_file_is_a_ledger_error(path: Path) -> None:
    """A write that cannot get the file within the timeout raises `LedgerError` and stores nothing."""
    ledger = SQLiteLedger(path, timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerError, match="locked"):
            ledger.write([make_event(1, T0)])
        blocker.execute("ROLLBACK")
        assert ledger.stats().events == 0
        assert ledger.write([make_event(1, T0)]) == 1
    finally:
        blocker.close()
        ledger.close()


def open_and_write(path: Path) -> None:
    """Open a ledger on ``path`` and write one event to it."""
    ledger = SQLiteLedger(path)
    try:
        ledger.write([make_event(1, T0)])
    finally:
        ledger.close()


def test_a_read_only_file_is_a_ledger_error(path: Path) -> None:
    """Writing to a file the process may not write raises `LedgerError` and changes nothing."""
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    SQLiteLedger(path).close()
    path.chmod(0o400)
    try:
        with pytest.raises(LedgerError):
            open_and_write(path)
    finally:
        path.chmod(0o600)


def test_overflowing_counts_are_a_ledger_error(path: Path) -> None:
    """Sums past 64 bits fail the write with `LedgerError` and store nothing of the batch."""
    from meterline import Usage

    huge = Usage(input_tokens=2**62 + 1)
    ledger = SQLiteLedger(path)
    try:
        batch = [make_event(i, T0, usage=huge) for i in range(2)]
        with pytest.raises(LedgerError):
            ledger.write(batch)
        assert ledger.stats().events == 0
    finally:
        ledger.close()


def test_totals_past_64_bits_of_pico_dollars(path: Path) -> None:
    """A group whose cost passes 2**63 pico-dollars (9.2 million USD) still adds up exactly."""
    ledger = SQLiteLedger(path)
    try:
        events = [make_event(i, T0 + timedelta(hours=i), cost="5000000.000001") for i in range(3)]
        ledger.write(events)
        (row,) = ledger.totals()
        assert row.cost == Decimal("15000000.000003")
        assert row.events == 3
    finally:
        ledger.close()


def test_reprice_keeps_the_previous_cost(path: Path) -> None:
    """A re-priced event keeps its previous cost and price version in the audit columns."""
    ledger = SQLiteLedger(path)
    try:
        event = make_event(1, T0, cost="0.001")
        ledger.write([event])
        assert ledger.reprice([(event.id, Decimal("0.002"), "v2")]) == 1
        conn = sqlite3.connect(path)
        try:
            first = conn.execute("SELECT previous_cost, previous_price_version FROM meterline_event_rows")
            assert first.fetchone() == ("0.001", "test-prices")  # a cost exact in pico-dollars, kept
        finally:
            conn.close()
        assert ledger.reprice([(event.id, Decimal("0.003"), "v3")]) == 1
        conn = sqlite3.connect(path)
        try:
            row = conn.execute(
                "SELECT cost, cost_pico, price_version, previous_cost, previous_price_version"
                " FROM meterline_event_rows"
            ).fetchone()
        finally:
            conn.close()
        assert row == ("0.003", 3_000_000_000, "v3", "0.002", "v2")
    finally:
        ledger.close()


def test_prune_in_the_middle_of_an_hour_takes_its_events_out_of_the_rollups(path: Path) -> None:
    """Pruning in the middle of an hour, day and month leaves every roll-up with exactly the events kept."""
    ledger = SQLiteLedger(path)
    try:
        user = {"user": "u1"}
        times = [T0 + timedelta(minutes=10), T0 + timedelta(minutes=50), T0 + timedelta(days=3)]
        ledger.write([make_event(i, at, dims=user) for i, at in enumerate(times)])  # the third folds the rest
        assert ledger.prune(T0 + timedelta(minutes=30)) == 1
        assert ledger.stats().events == 2
        for by in ((), ("user",)):
            assert [row.events for row in ledger.totals(by=by)] == [2]
            assert [row.events for row in ledger.totals(by=by, granularity="month")] == [1, 1]
        assert ledger.prune(T0 + timedelta(hours=1)) == 1
        assert [row.events for row in ledger.totals(by=("user",))] == [1]
        assert ledger.totals(by=("user",), until=T0 + timedelta(days=1)) == []
    finally:
        ledger.close()


def test_the_rollups_agree_with_the_events(path: Path) -> None:
    """Each roll-up row equals its events added up in SQL, after writes, a reprice and a prune."""
    from tests.ledger.conformance import metered_events

    ledger = SQLiteLedger(path)
    try:
        _, events = metered_events()
        ledger.write(events)
        ledger.write(
            [make_event(i, T0 + timedelta(minutes=25 * i), dims={"user": f"u{i % 3}"}) for i in range(9)]
        )
        ledger.write([make_event(100, T0 + timedelta(days=40), dims={"user": "u1"})])  # folds January
        ledger.reprice([(events[0].id, Decimal("1.5"), "v2"), (events[6].id, Decimal("0.25"), "v2")])
        ledger.prune(T0 + timedelta(hours=1, minutes=20))
        calls = "k.operation NOT IN ('execute_tool', 'cache')"
        conn = sqlite3.connect(path)
        try:
            nodims = conn.execute(
                "SELECT hour, operation, status, provider, model, events, unpriced, cost_pico"
                " FROM meterline_rollup_hour_nodims ORDER BY 1, 2, 3, 4, 5"
            ).fetchall()
            from_events = conn.execute(
                "SELECT e.time_ns / 3600000000000 * 3600, k.operation, k.status, coalesce(k.provider, ''),"
                " coalesce(k.model, ''), COUNT(*),"
                f" SUM({calls} AND e.measured AND e.cost_pico IS NULL), coalesce(SUM(e.cost_pico), 0)"
                " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id"
                " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
            ).fetchall()
            by_value = conn.execute(
                "SELECT value_id, day, key_id, events, unpriced, cost_pico, cost_high, input_tokens"
                " FROM meterline_rollup_dim_day ORDER BY 1, 2, 3"
            ).fetchall()
            by_value_from_events = conn.execute(
                "SELECT j.value, e.time_ns / 86400000000000 * 86400, coalesce(k.rollup_id, k.key_id),"
                f" COUNT(*), SUM({calls} AND e.measured AND e.cost_pico IS NULL),"
                f" coalesce(SUM(CASE WHEN {calls} THEN e.cost_pico & 4294967295 END), 0),"
                f" coalesce(SUM(CASE WHEN {calls} THEN e.cost_pico >> 32 END), 0),"
                f" SUM(CASE WHEN {calls} THEN e.input_tokens ELSE 0 END)"
                " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id,"
                " json_each('[0' || iif(e.dims = '', '', ',' || e.dims) || ']') AS j"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ).fetchall()
            months = conn.execute(
                "SELECT value_id, month, events, cost_pico, cost_high"
                " FROM meterline_rollup_dim_month ORDER BY 1, 2"
            ).fetchall()
            months_from_days = conn.execute(
                "SELECT value_id, CAST(strftime('%s', day, 'unixepoch', 'start of month') AS INTEGER),"
                " SUM(events), SUM(cost_pico), SUM(cost_high) FROM meterline_rollup_dim_day"
                " WHERE day < (SELECT CAST(value AS INTEGER) FROM meterline_meta"
                " WHERE key = 'dim_months_until') GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
        finally:
            conn.close()
        assert nodims == from_events
        assert by_value == by_value_from_events
        assert months == months_from_days
        assert months
        assert len(nodims) > 3
        assert len(by_value) > 3
        by_model = {row.key: row for row in ledger.totals(by=("model",))}
        by_model_and_user = ledger.totals(by=("model", "user"))
        for key, row in by_model.items():
            parts = [part for part in by_model_and_user if part.key[0] == key[0]]
            assert row.cost == sum((part.cost for part in parts), Decimal(0))
            assert row.events == sum(part.events for part in parts)
    finally:
        ledger.close()


def test_one_large_batch_stores_what_one_event_at_a_time_does(tmp_path: Path) -> None:
    """Rows, roll-ups and counts of one batch (many statements, repeats, stored ids) equal single writes."""
    from tests.ledger.conformance import metered_events

    _, metered = metered_events()
    made = [
        make_event(
            i,
            T0 + timedelta(minutes=7 * i),
            dims={"user": f"u{i % 5}"} if i % 4 else None,
            cost=None if i % 11 == 0 else "0.000123",
            operation="execute_tool" if i % 13 == 0 else "chat",
            latency_ms=None if i % 6 == 0 else 1.5 * i,
            tokens_saved=i % 3,
        )
        for i in range(1, 300)
    ]
    events = [*metered, *made]
    batch = [*events, *events[10:40], events[3]]  # 300-odd rows: several statement sizes, repeats
    one, many = SQLiteLedger(tmp_path / "one.db"), SQLiteLedger(tmp_path / "many.db")
    try:
        assert sum(one.write([event]) for event in events) == len(events)
        assert many.write(events[100:150]) == 50
        assert many.write(batch) == len(events) - 50
        assert many.write(batch) == 0
    finally:
        one.close()
        many.close()
    assert snapshot(tmp_path / "many.db") == snapshot(tmp_path / "one.db")
    conns = [sqlite3.connect(tmp_path / name) for name in ("one.db", "many.db")]
    try:
        nodims = [
            conn.execute("SELECT * FROM meterline_rollup_hour_nodims ORDER BY 1, 2, 3, 4, 5").fetchall()
            for conn in conns
        ]
    finally:
        for conn in conns:
            conn.close()
    assert nodims[0] == nodims[1]


def test_nulls_and_look_alike_values_are_stored_apart(path: Path) -> None:
    """A missing text is NULL while the text '0' and '' stay text; a missing latency is NULL."""
    from meterline import Usage, UsageEvent
    from meterline._dimensions import Dimensions

    look_alike = UsageEvent(
        id="0" * 31 + "1",
        time_ns=make_event(1, T0).time_ns,
        operation="0",
        provider="",
        model="0",
        request_model="0",
        usage=Usage(input_tokens=1),
        cost=None,
        price_version="0",
        latency_ms=0.0,
        status="0",
        dimensions=Dimensions(),
        operation_id="0",
        response_id="",
    )
    missing = make_event(2, T0, model=None, provider=None, latency_ms=None, cost=None)
    ledger = SQLiteLedger(path)
    try:
        assert ledger.write([look_alike, missing]) == 2
        assert list(ledger.events()) == [look_alike, missing]
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute(
                "SELECT provider, model, request_model, cost, price_version, latency_ms, operation_id,"
                " response_id FROM meterline_event_rows ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
        assert rows == [
            ("", "0", "0", None, "0", 0.0, "0", ""),
            (None, None, None, None, None, None, None, None),
        ]
    finally:
        ledger.close()


def test_a_missing_and_an_empty_provider_share_one_rollup_row(path: Path) -> None:
    """Events without a provider and with provider '' in one batch add up into the same roll-up row."""
    ledger = SQLiteLedger(path)
    try:
        events = [
            make_event(1, T0, provider=None),
            make_event(2, T0, provider=""),
            make_event(3, T0, provider=None, latency_ms=None),
        ]
        assert ledger.write(events) == 3
        (row,) = ledger.totals(by=("provider",))
        assert (row.key, row.events, row.cost, row.latency_ms) == ((None,), 3, Decimal("0.003"), 20.0)
    finally:
        ledger.close()


def test_migrates_a_version_4_store_adding_the_billing_columns(path: Path) -> None:
    """A version 4 store (no tool calls, tiers or stated costs; text ids) opens as today's: reports exact."""
    from meterline._usage import UNIT_FIELDS
    from meterline.ledger import _sqlite_migrations as migrations
    from meterline.ledger import _sqlite_schema as schema
    from tests.ledger.conformance import as_stored_before_billing, assert_reports, product_events
    from tests.ledger.sqlite_stores import as_version_6

    events = product_events(1200)
    before = [as_stored_before_billing(event) for event in events[:600]]
    ledger = SQLiteLedger(path)
    try:
        ledger.write(before)
    finally:
        ledger.close()
    conn = sqlite3.connect(path, isolation_level=None)  # as version 4 left it
    as_version_6(conn)
    conn.execute("DROP VIEW meterline_event_rows")
    conn.execute("UPDATE meterline_events SET id = lower(hex(id)) WHERE typeof(id) = 'blob'")
    for table in ("events", "rollup_hour_nodims", "rollup_dim_day", "rollup_dim_month"):
        added = (
            UNIT_FIELDS
            if table != "events"
            else (*UNIT_FIELDS, "service_tier", "batch", "reported_cost_pico")
        )
        for name in added:
            conn.execute(f"ALTER TABLE meterline_{table} DROP COLUMN {name}")
    view = schema.event_rows_view(
        f"{schema.DIMS_JSON} AS dimensions", schema.VIEW_EXTRA, migrations._V4_EVENT_COLUMNS
    )
    conn.execute("CREATE VIEW meterline_event_rows AS" + view)
    conn.execute("UPDATE meterline_meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    reopened = SQLiteLedger(path)
    try:
        assert reopened.stats().schema_version == SCHEMA_VERSION == 9
        with contextlib.closing(sqlite3.connect(path)) as reader:  # the ids migrated to bytes
            kinds = reader.execute("SELECT DISTINCT typeof(id) FROM meterline_events").fetchall()
        assert kinds == [("blob",)]
        assert_reports(reopened, before)
        assert reopened.write(events[600:]) == 600
        assert_reports(reopened, [*before, *events[600:]])
        assert list(reopened.events()) == [*before, *events[600:]]
    finally:
        reopened.close()


def test_a_fold_reads_the_days_rows_by_key_not_the_whole_daily_roll_up(path: Path) -> None:
    """Folding days into months finds their rows through their events (time index) and the primary key."""
    from meterline.ledger._sqlite_folds import KEYED_DAYS
    from tests.ledger.conformance import assert_reports, product_events, write_by_day

    events = product_events(1200)  # five days across a month's end
    ledger = SQLiteLedger(path)
    try:
        write_by_day(ledger, events)
        assert_reports(ledger, events)
    finally:
        ledger.close()
    conn = sqlite3.connect(path)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {KEYED_DAYS}", (0, 86400))]
    finally:
        conn.close()
    assert any(
        step.startswith("SEARCH meterline_rollup_dim_day USING PRIMARY KEY (value_id=?") for step in plan
    )
    assert any(step.startswith("SEARCH e USING INDEX meterline_events_time") for step in plan)
    assert not any(step.startswith("SCAN") and "meterline_" in step for step in plan), plan


def test_migrates_a_version_1_store_keeping_its_events(path: Path) -> None:
    """A version 1 store (with the events' hour index) opens as the current version with every event."""
    from meterline.ledger._sqlite_migrations import MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE meterline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO meterline_meta VALUES ('schema_version', '1')")
    conn.close()
    from meterline.ledger._rows import EVENT_COLUMNS, event_to_row
    from meterline.ledger._sqlite_migrations import _V4_EVENT_COLUMNS as OLD_COLUMNS
    from tests.ledger.conformance import HOSTILE

    events = [make_event(i, T0 + timedelta(minutes=i)) for i in range(3)]
    old = [
        events[0],
        make_event(7, T0, model=None, provider=None, latency_ms=None, cost=None),
        *(make_event(10 + i, T0, model=value, dims={"note": value}) for i, value in enumerate(HOSTILE)),
    ]
    conn = sqlite3.connect(path, isolation_level=None)  # events stored by version 1 (its own columns)
    marks = ", ".join("?" * (len(OLD_COLUMNS) + 2))
    rows = [dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True)) for event in old]
    conn.executemany(
        f"INSERT INTO meterline_events ({', '.join(OLD_COLUMNS)}, previous_cost, previous_price_version)"
        f" VALUES ({marks})",
        [(*(row[name] for name in OLD_COLUMNS), "0.5", "v0") for row in rows],
    )
    conn.close()
    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION == 9
        assert sorted(ledger.events(), key=lambda event: event.id) == sorted(old, key=lambda event: event.id)
        assert ledger.write(events) == 2  # the first is stored already
        stored = {event.id for event in ledger.events()}
        assert stored == {event.id for event in (*old, *events)}
    finally:
        ledger.close()
    conn = sqlite3.connect(path)
    try:
        audit = conn.execute(
            "SELECT DISTINCT previous_cost, previous_price_version FROM meterline_event_rows"
        )
        assert set(audit.fetchall()) == {("0.5", "v0"), (None, None)}
    finally:
        conn.close()
    conn = sqlite3.connect(path)
    try:
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        )
        assert indexes.fetchall() == [  # version 1's hour index is gone
            ("meterline_events_time",),
            ("meterline_rollup_dim_day_total_by_day",),
            ("meterline_rollup_dim_month_by_month",),
        ]
    finally:
        conn.close()


def test_the_view_and_the_raw_rows_show_the_same_dimensions(path: Path) -> None:
    """The view's dimensions (built in SQL) equal `event_rows`' (built in Python), hostile values included."""
    import json

    from tests.ledger.conformance import HOSTILE

    events = [make_event(i, T0, dims={"note": value, "user": f"u{i}"}) for i, value in enumerate(HOSTILE)]
    ledger = SQLiteLedger(path)
    try:
        ledger.write(events)
        raw = [row[EVENT_COLUMNS.index("dimensions")] for page in ledger.event_rows() for row in page]
    finally:
        ledger.close()
    conn = sqlite3.connect(path)
    try:
        shown = [text for (text,) in conn.execute("SELECT dimensions FROM meterline_event_rows ORDER BY id")]
    finally:
        conn.close()
    assert raw == [event.dimensions.json() for event in events]  # type: ignore[attr-defined]
    assert [json.loads(text) for text in shown] == [json.loads(text) for text in raw]


def test_ids_of_any_text_are_stored_read_repriced_and_paged(path: Path) -> None:
    """Ids meterline makes are stored as bytes, any other id as text; each reads back, re-prices and pages."""
    from meterline import UsageEvent

    texts = ["evt-1", "A" * 32, "0a" * 15 + " 1", "ü" * 32, "'; DROP TABLE meterline_events; --"]
    made = [make_event(number, T0 + timedelta(minutes=number)) for number in range(3)]
    foreign = [
        UsageEvent.from_dict({**make_event(10 + n, T0).to_dict(), "id": text}) for n, text in enumerate(texts)
    ]
    ordered = [*sorted(foreign, key=lambda event: event.id), *made]  # other ids first, then the packed
    ledger = SQLiteLedger(path)
    try:
        assert ledger.write([*made, *foreign]) == 8
        assert ledger.write([*foreign, *made]) == 0
        assert list(ledger.events()) == ordered
        for at, event in enumerate(ordered):
            assert [e.id for e in ledger.events(after_id=event.id)] == [e.id for e in ordered[at + 1 :]]
        for at in (1, 5):  # after a text id, after a packed one: the Arrow reader's lines
            lines = "".join(ledger.json_lines(after_id=ordered[at].id)).splitlines()
            assert [json.loads(line)["id"] for line in lines] == [event.id for event in ordered[at + 1 :]]
        assert ledger.reprice([(event.id, Decimal("0.5"), "v2") for event in ordered]) == 8
        assert {event.cost for event in ledger.events()} == {Decimal("0.5")}
        assert ledger.totals()[0].cost == Decimal("4.0")
    finally:
        ledger.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        kinds = list(conn.execute("SELECT typeof(id), COUNT(*) FROM meterline_events GROUP BY 1 ORDER BY 1"))
        view = {row[0] for row in conn.execute("SELECT id FROM meterline_event_rows")}
    assert kinds == [("blob", 3), ("text", 5)]
    assert view == {event.id for event in ordered}


def test_recent_rows_merged_past_their_limit_leave_every_report_exact(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes merge the newest daily rows by value past their limit; every report stays the events' sums."""
    from meterline.ledger import _sqlite as module
    from tests.ledger.conformance import assert_reports, product_events

    monkeypatch.setattr(module, "RECENT_ROWS", 2000)
    events = product_events(3000)
    ledger = SQLiteLedger(path)
    try:
        sizes = []
        for at in range(0, len(events), 250):
            ledger.write(events[at : at + 250])
            with contextlib.closing(sqlite3.connect(path)) as reader:
                ((rows,),) = reader.execute("SELECT COUNT(*) FROM meterline_rollup_dim_recent")
            sizes.append(rows)
            if at % 1000 == 0:
                assert_reports(ledger, events[: at + 250])
        assert 0 < max(sizes) <= 2000  # a write that passes the limit merges them all
        assert sizes.count(0) >= 2  # merged on the way (past the limit, or by a fold at a new day)
        assert_reports(ledger, events)
    finally:
        ledger.close()


def test_a_value_another_connection_pruned_is_never_bound_to_its_old_id(path: Path) -> None:
    """A connection that used a value another one has pruned stores it anew: nothing lost or misattributed."""
    first, second = SQLiteLedger(path), SQLiteLedger(path)
    try:
        first.write([make_event(1, T0, dims={"session": "s1"})])  # s1's id, cached by ``first``
        assert second.prune(T0 + timedelta(hours=1)) == 1  # s1 deleted: its id is free again
        second.write([make_event(2, T0 + timedelta(hours=2), dims={"session": "s2"})])  # takes it
        first.write([make_event(3, T0 + timedelta(hours=3), dims={"session": "s1"})])
        for ledger in (first, second):
            assert {row.key: row.events for row in ledger.totals(by=("session",))} == {("s1",): 1, ("s2",): 1}
            dims = [dict(event.dimensions) for event in ledger.events()]
            assert dims == [{"session": "s2"}, {"session": "s1"}]
            assert ledger.stats().dimension_values == 2
    finally:
        first.close()
        second.close()


def test_reports_by_one_dimension_read_folded_days_from_their_sums_per_value_and_day(path: Path) -> None:
    """Folded days outside whole months, or by day: read from sums per value and day, not the keyed rows."""
    from meterline.ledger._sqlite_schema import RECENT, ROLLUPS, folded_until
    from tests.ledger.conformance import FOLDED_DAYS_REPORTS, assert_reports, product_events, write_by_day

    events = product_events(1200)  # five days across a month's end
    ledger = SQLiteLedger(path)
    try:
        write_by_day(ledger, events)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            folded = folded_until(conn)
            assert folded > int((T0 + timedelta(days=3)).timestamp())
            deleted = [  # the keyed rows of the folded days gone (merged into the daily roll-up, or not)
                conn.execute(f"DELETE FROM {table} WHERE day < ?", (folded,)).rowcount
                for table in (ROLLUPS[1], RECENT)
            ]
            assert sum(deleted) > 1000
        assert_reports(ledger, events, FOLDED_DAYS_REPORTS)
    finally:
        ledger.close()
