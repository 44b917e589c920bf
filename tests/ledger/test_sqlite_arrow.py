"""The SQLite ledger's events as Arrow batches and as JSON lines equal the events, whatever their values."""

from __future__ import annotations

import dataclasses
import sqlite3
import tempfile
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings

from meterline import UsageEvent
from meterline.exceptions import LedgerError
from meterline.ledger import SQLiteLedger
from meterline.ledger import _sqlite as sqlite_ledger
from tests.ledger.arrow_tables import (
    assert_json_lines,
    expected_table,
    hostile_events,
    json_lines_of,
    read_batches,
)
from tests.ledger.conformance import T0, make_event, product_events

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("adbc_driver_sqlite")


def test_product_events_json_lines_are_the_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4,000 events: the JSON lines made from Arrow columns are ``json.dumps`` of each, as from rows."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write(product_events())
    expected = assert_json_lines(ledger)
    monkeypatch.setattr(sqlite_ledger, "fast_reader_installed", lambda: False)
    assert "".join(ledger.json_lines()).splitlines(keepends=True) == expected
    ledger.close()


def test_product_events_read_as_the_event_by_event_export_writes_them(tmp_path: Path) -> None:
    """4,000 events of thousands of users and sessions: every column of every event equal."""
    events = product_events()
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write(events)
    assert read_batches(ledger).equals(expected_table(events, tmp_path / "x"))
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    inside = [event for event in events if since <= event.time < until]
    assert read_batches(ledger, since=since, until=until).equals(expected_table(inside, tmp_path / "y"))
    ledger.close()


def test_a_column_null_for_a_whole_batch_then_set_keeps_its_type(tmp_path: Path) -> None:
    """Text, reals and costs that are NULL in the first 10,000 rows are read as text, reals, costs after."""
    bare = [
        dataclasses.replace(make_event(number, T0, cost=None, latency_ms=None), provider=None, model=None)
        for number in range(10_050)
    ]
    full = [
        dataclasses.replace(
            make_event(
                20_000 + number,
                T0 + timedelta(hours=1),
                cost="-0.25",
                dims={"user": "u,1", "zone": ""},
                service_tier="flex",
                reported_cost="0.5",
            ),
            operation_id="op-1",
            response_id="resp-1",
            request_model="gpt-4o-2024",
            links=("a" * 32,),
        )
        for number in range(3)
    ]
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write(bare + full)
    table = read_batches(ledger)
    assert table.num_rows == 10_053
    assert table.column("service_tier")[-1].as_py() == "flex"
    assert table.column("cost")[-1].as_py() == Decimal("-0.25")
    assert table.column("dimensions")[-1].as_py() == [("user", "u,1"), ("zone", "")]
    assert table.equals(expected_table(bare + full, tmp_path / "x"))
    ledger.close()


def test_one_read_is_one_snapshot(tmp_path: Path) -> None:
    """Events written while the batches are read are not among them."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write([make_event(number, T0, dims={"user": f"u{number}"}) for number in range(25_000)])
    batches = ledger.arrow_batches()
    first = next(batches)
    ledger.write([make_event(10**6 + number, T0, dims={"user": f"new{number}"}) for number in range(100)])
    assert first.num_rows + sum(batch.num_rows for batch in batches) == 25_000
    assert sum(batch.num_rows for batch in ledger.arrow_batches()) == 25_100
    ledger.close()


def test_a_reader_stopped_early_stops_its_thread(tmp_path: Path) -> None:
    """The batches are read ahead on a thread; closing them ends it, and with it the connection."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write([make_event(number, T0) for number in range(45_000)])
    for reader in (ledger.arrow_batches(), ledger.json_lines()):
        next(reader)
        assert any(thread.name == "meterline-ledger-read" for thread in threading.enumerate())
        reader.close()  # type: ignore[union-attr]
        assert not any(thread.name == "meterline-ledger-read" for thread in threading.enumerate())
    ledger.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("DELETE FROM meterline_dim_values WHERE name = 'user'", "dimension value is not"),
        ("DELETE FROM meterline_keys", "key is not"),
        ("UPDATE meterline_events SET dims = 'x,y'", "ids in text"),
    ],
)
def test_a_damaged_file_is_a_ledger_error(tmp_path: Path, damage: str, message: str) -> None:
    """Rows referring to what the ledger does not hold fail with a LedgerError, not wrong rows."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.write([make_event(1, T0, dims={"user": "u1"})])
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute(damage)
    with pytest.raises(LedgerError, match=message):
        read_batches(ledger)
    ledger.close()


def test_a_path_with_uri_characters_is_read(tmp_path: Path) -> None:
    """Spaces, ?, #, % and non-ASCII in the file's path: the ledger read is that file's."""
    ledger = SQLiteLedger(tmp_path / "a b?c#d%20é.db")
    ledger.write([make_event(number, T0) for number in range(3)])
    assert read_batches(ledger).num_rows == 3
    assert len("".join(ledger.json_lines()).splitlines()) == 3
    ledger.close()


def test_a_missing_file_is_a_ledger_error_and_is_not_created(tmp_path: Path) -> None:
    """A missing file is named in a LedgerError (it is opened read-only: nothing is created)."""
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.path = tmp_path / "gone.db"
    with pytest.raises(LedgerError, match=r"gone\.db"):
        read_batches(ledger)
    assert not (tmp_path / "gone.db").exists()


@settings(max_examples=40, deadline=None)
@given(events=hostile_events(["user", "org", "session", "x,y"], 30))
def test_hostile_values_read_exactly(events: list[UsageEvent]) -> None:
    """Commas, empty and unicode texts, negative and sub-pico costs, huge counts: batches and lines exact."""
    with tempfile.TemporaryDirectory() as directory:
        ledger = SQLiteLedger(Path(directory) / "l.db")
        ledger.write(events)
        assert read_batches(ledger).equals(expected_table(events, Path(directory) / "x"))
        assert "".join(ledger.json_lines()).splitlines(keepends=True) == json_lines_of(ledger)
        ledger.close()
