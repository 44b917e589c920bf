"""The SQLite ledger's dictionaries: ids cached both ways, each cache starting again alone when full."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from meterline import UsageEvent
from meterline.ledger import SQLiteLedger, _sqlite_keys, _sqlite_schema
from tests.ledger.conformance import T0, assert_reports, make_event, product_events


def _values_stored(
    ledger: SQLiteLedger, events: list[UsageEvent], monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The dimension values the ledger asked SQLite to store while writing ``events`` in batches of 50."""
    statements: list[str] = []
    original = _sqlite_schema.add_value

    def add_value(conn: sqlite3.Connection, name: str, value: str) -> int:
        statements.append(f"{name}={value}")
        return original(conn, name, value)

    monkeypatch.setattr(_sqlite_keys, "add_value", add_value)
    for start in range(0, len(events), 50):
        ledger.write(events[start : start + 50])
    return statements


def test_a_full_cache_of_dimension_sets_keeps_the_values_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the sets of dimensions fill their cache, each value is still stored (and looked up) once."""
    monkeypatch.setattr(_sqlite_keys, "_MAX_CACHED", 100)
    # 30 values in 1,000 sets: the sets' cache starts again many times, the values' never.
    events = [
        make_event(
            number,
            T0 + timedelta(seconds=number),
            dims={
                "user": f"u{number % 10}",
                "session": f"s{number // 10 % 10}",
                "agent": f"a{number // 100}",
            },
        )
        for number in range(1000)
    ]
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    try:
        stored = _values_stored(ledger, events, monkeypatch)
        assert sorted(stored) == sorted(
            {f"{name}={value}" for e in events for name, value in e.dimensions.items()}
        )
        assert len(stored) == 30
        assert_reports(ledger, events)
    finally:
        ledger.close()


def test_a_full_cache_of_values_starts_again_and_reads_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cache's size, values are looked up again: their ids, and every report, stay exact."""
    events = product_events(1200)
    values = {(name, value) for event in events for name, value in event.dimensions.items()}
    monkeypatch.setattr(_sqlite_keys, "_MAX_CACHED", len(values) // 4)
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    try:
        stored = _values_stored(ledger, events, monkeypatch)
        assert len(stored) > len(set(stored)) == len(values)  # some looked up again, each stored once
        conn = sqlite3.connect(tmp_path / "ledger.db")
        try:
            ((count,),) = conn.execute("SELECT COUNT(*) FROM meterline_dim_values")
        finally:
            conn.close()
        assert count == len(values)
        assert_reports(ledger, events)
        assert list(ledger.events()) == sorted(events, key=lambda event: event.id)
    finally:
        ledger.close()


def test_a_prune_counts_itself_only_when_it_deletes_values(tmp_path: Path) -> None:
    """`values_pruned` grows by one for each prune that deleted values, and for no other."""
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    try:
        ledger.write([make_event(n, T0 + timedelta(hours=n), dims={"user": f"u{n % 2}"}) for n in range(4)])
        conn = sqlite3.connect(tmp_path / "ledger.db")
        assert _sqlite_keys.values_pruned(conn) == 0
        ledger.prune(T0 + timedelta(hours=1))  # u0's first event goes, u0 stays
        assert _sqlite_keys.values_pruned(conn) == 0
        ledger.prune(T0 + timedelta(hours=2, minutes=30))  # only u1's last event is left
        assert _sqlite_keys.values_pruned(conn) == 1
        assert conn.execute("SELECT name, value FROM meterline_dim_values").fetchall() == [("user", "u1")]
        conn.close()
    finally:
        ledger.close()
