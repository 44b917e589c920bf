"""The SQLite ledger's migrations: a version 3 store of hostile values migrates losslessly."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import Usage
from tests.ledger.sqlite_stores import as_version_6, as_version_7, as_version_8

_DIM_TEXT = st.one_of(
    st.sampled_from(
        ["'; DROP TABLE meterline_events; --", "", "0", "null", '{"a":1}', "ü", "😀", "a,b", "1"]
    ),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
)
_EVENTS = st.lists(
    st.tuples(
        # A cost in pico-dollars, from 0 to a 25th of 2**63 (no roll-up row of 25 events passes 64 bits).
        st.one_of(st.none(), st.integers(min_value=0, max_value=(2**63 - 1) // 25)),
        st.integers(min_value=0, max_value=2**40),  # input tokens
        st.sampled_from(["gpt-4o", None, "m,1", "x'y"]),
        st.dictionaries(st.sampled_from(["user", "session", "tool", "team"]), _DIM_TEXT, max_size=4),
        st.sampled_from(["chat", "execute_tool"]),
        st.integers(min_value=0, max_value=3 * 86_400),  # seconds after T0
    ),
    min_size=1,
    max_size=25,
)


def _events(specs: list[tuple[Any, ...]], ids: list[str] | None = None) -> list[Any]:
    """The events of ``specs`` (see `_EVENTS`), numbered in order, or with ``ids`` when given."""
    from meterline import UsageEvent
    from tests.ledger.conformance import T0, make_event

    events = [
        make_event(
            number,
            T0 + timedelta(seconds=offset),
            cost=None if pico is None else str(Decimal(pico).scaleb(-12)),
            usage=Usage(input_tokens=tokens, output_tokens=1) if operation == "chat" else None,
            model=model,
            operation=operation,
            dims=dims,
        )
        for number, (pico, tokens, model, dims, operation, offset) in enumerate(specs)
    ]
    if ids is None:
        return events
    return [
        UsageEvent.from_dict({**event.to_dict(), "id": event_id})
        for event_id, event in zip(ids, events, strict=False)
    ]


def _assert_totals(ledger: Any, events: list[Any], groupings: tuple[tuple[str, ...], ...]) -> None:
    """Every report of ``groupings`` over ``ledger`` equals the sums of ``events``, to the last digit."""
    from tests.ledger.conformance import expected_rows

    for by in groupings:
        rows = {(row.key, row.period): (row.events, row.usage, row.cost) for row in ledger.totals(by=by)}
        expected = {key: (sums[0], sums[3], sums[4]) for key, sums in expected_rows(events, by).items()}
        assert rows == expected, by


@given(_EVENTS)
@settings(max_examples=60, deadline=None)
def test_migrating_from_version_3_keeps_every_event_and_cost(
    tmp_path_factory: pytest.TempPathFactory, specs: list[tuple[Any, ...]]
) -> None:
    """A version 3 store of hostile values opens as the current version, every event, cost and total exact."""
    from meterline.ledger import SCHEMA_VERSION, SQLiteLedger
    from meterline.ledger._rows import EVENT_COLUMNS, event_to_row
    from meterline.ledger._sqlite_migrations import (
        _V3_ADD_KEY,
        _V3_COLUMNS,
        _V3_KEY_FIELDS,
        _V4_SUMS,
        MIGRATIONS,
    )
    from meterline.ledger._sqlite_schema import key_text

    events = _events(specs)
    path = tmp_path_factory.mktemp("v3") / "ledger.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE meterline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for migrate in MIGRATIONS[:3]:
        migrate(conn)
    conn.execute("INSERT INTO meterline_meta VALUES ('schema_version', '3')")
    for event in events:  # as version 3 stored them
        row = dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True))
        fields = tuple(row[name] for name in _V3_KEY_FIELDS)
        conn.execute(_V3_ADD_KEY, (key_text(fields), *fields))
        ((row["key_id"],),) = conn.execute(
            "SELECT key_id FROM meterline_event_keys WHERE key = ?", (key_text(fields),)
        )
        marks = ", ".join("?" * len(_V3_COLUMNS))
        conn.execute(
            f"INSERT INTO meterline_events ({', '.join(_V3_COLUMNS)}) VALUES ({marks})",
            [row[name] for name in _V3_COLUMNS],
        )
    conn.execute(
        f"INSERT INTO meterline_rollup_hour_nodims SELECT hour, operation, status, coalesce(provider, ''),"
        f" coalesce(model, ''), COUNT(*), SUM(1 - measured) * (operation = 'chat'),"
        f" SUM(measured AND cost_pico IS NULL) * (operation = 'chat'),"
        f" {', '.join(f'SUM({name})' for name in _V4_SUMS[3:-3])}, coalesce(SUM(cost_pico), 0),"
        " coalesce(SUM(latency_ms), 0.0), SUM(tokens_saved) FROM meterline_event_rows GROUP BY 1, 2, 3, 4, 5"
    )
    conn.close()
    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION
        assert list(ledger.events()) == sorted(events, key=lambda event: event.id)
        _assert_totals(ledger, events, (("user",), ("model", "tool"), ("session",), ()))
    finally:
        ledger.close()


_ID_TEXT = st.one_of(
    st.binary(min_size=16, max_size=16).map(bytes.hex),  # as meterline makes them: packed
    st.binary(min_size=16, max_size=16).map(lambda raw: raw.hex().upper()),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40),
)


@given(st.lists(_ID_TEXT, min_size=1, max_size=20, unique=True), _EVENTS)
@settings(max_examples=60, deadline=None)
def test_migrating_from_version_5_packs_the_ids_and_keeps_every_event(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], specs: list[tuple[Any, ...]]
) -> None:
    """A version 5 store (text ids) of hostile ids and values opens as today's: ids, events, totals exact."""
    from meterline.ledger import SCHEMA_VERSION, SQLiteLedger
    from meterline.ledger._sqlite_schema import stored_id

    events = _events(specs, ids)
    path = tmp_path_factory.mktemp("v5") / "ledger.db"
    ledger = SQLiteLedger(path)
    try:
        ledger.write(events)
    finally:
        ledger.close()
    conn = sqlite3.connect(path, isolation_level=None)  # as version 5 stored them: every id in text
    as_version_6(conn)
    conn.execute("UPDATE meterline_events SET id = lower(hex(id)) WHERE typeof(id) = 'blob'")
    conn.execute("UPDATE meterline_meta SET value = '5' WHERE key = 'schema_version'")
    conn.close()
    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION
        stored = sorted(events, key=lambda event: (isinstance(stored_id(event.id), bytes), event.id))
        assert list(ledger.events()) == stored
        _assert_totals(ledger, events, (("user",), ("model", "tool"), ()))
        assert ledger.write(events) == 0  # every id is still known: none stored twice
    finally:
        ledger.close()
    reader = sqlite3.connect(path)
    try:
        kinds = dict(reader.execute("SELECT typeof(id), COUNT(*) FROM meterline_events GROUP BY 1"))
    finally:
        reader.close()
    assert kinds.get("blob", 0) == sum(isinstance(stored_id(event.id), bytes) for event in events)


def _store_of(tmp_path: Path, *, by_day: bool) -> tuple[Path, list[Any]]:
    """A store of today's version holding the first 600 of 900 product events (written by day, or at once)."""
    from meterline.ledger import SQLiteLedger
    from tests.ledger.conformance import product_events, write_by_day

    events = product_events(900)
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    try:
        if by_day:
            write_by_day(ledger, events[:600])
        else:
            ledger.write(events[:600])
    finally:
        ledger.close()
    return path, events


def _assert_migrated(path: Path, events: list[Any]) -> None:
    """The store opens as today's version: every report exact, then past writes, a prune and re-pricing."""
    from meterline.ledger import SCHEMA_VERSION, SQLiteLedger
    from tests.ledger.conformance import (
        FOLDED_DAYS_REPORTS,
        assert_reports,
        assert_reports_through_a_prune_and_a_repricing,
    )

    ledger = SQLiteLedger(path)
    try:
        assert ledger.stats().schema_version == SCHEMA_VERSION == 9
        assert_reports(ledger, events[:600])
        assert_reports(ledger, events[:600], FOLDED_DAYS_REPORTS)
        assert_reports_through_a_prune_and_a_repricing(ledger, events, 600)
    finally:
        ledger.close()


def test_migrating_from_version_6_keeps_every_report_through_writes_a_prune_and_a_repricing(
    tmp_path: Path,
) -> None:
    """A version 6 store (no recent rows table) opens as 9: reports exact after writes, prune, repricing."""
    from meterline.ledger._sqlite_schema import RECENT

    path, events = _store_of(tmp_path, by_day=False)
    conn = sqlite3.connect(path, isolation_level=None)
    as_version_6(conn)
    conn.close()
    _assert_migrated(path, events)  # written into the new table, beside the rows version 6 wrote
    with contextlib.closing(sqlite3.connect(path)) as reader:
        assert reader.execute(f"SELECT COUNT(*) FROM {RECENT}").fetchone() == (0,)  # merged by the prune


def test_migrating_from_version_7_fills_the_folded_days_sums_and_keeps_every_report(tmp_path: Path) -> None:
    """A version 7 store (no folded sums per value and day) opens as 9 with them: reports exact, then too."""
    from meterline.ledger import SQLiteLedger
    from meterline.ledger._sqlite_folds import DAY_TOTALS

    path, events = _store_of(tmp_path, by_day=True)
    conn = sqlite3.connect(path, isolation_level=None)
    folded = set(conn.execute(f"SELECT * FROM {DAY_TOTALS}"))
    as_version_7(conn)
    conn.close()
    SQLiteLedger(path).close()
    with contextlib.closing(sqlite3.connect(path)) as reader:
        refilled = set(reader.execute(f"SELECT * FROM {DAY_TOTALS}"))
    assert folded
    assert refilled == folded  # as the writes had folded them
    _assert_migrated(path, events)


def test_migrating_from_version_8_indexes_the_folded_periods_and_keeps_every_report(tmp_path: Path) -> None:
    """A version 8 store opens as 9 with both folded roll-ups indexed by period: reports exact, then too."""
    from meterline.ledger import SQLiteLedger

    path, events = _store_of(tmp_path, by_day=True)
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_by\\_%' ESCAPE '\\'"
    conn = sqlite3.connect(path, isolation_level=None)
    as_version_8(conn)
    assert conn.execute(indexes).fetchall() == []
    conn.close()
    SQLiteLedger(path).close()
    with contextlib.closing(sqlite3.connect(path)) as reader:
        assert sorted(reader.execute(indexes)) == [
            ("meterline_rollup_dim_day_total_by_day",),
            ("meterline_rollup_dim_month_by_month",),
        ]
    _assert_migrated(path, events)
