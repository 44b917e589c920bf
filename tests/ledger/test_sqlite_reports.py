"""Tests for the SQLite ledger's reports: the way a report by one dimension finds its rows."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from meterline import UsageEvent
from meterline.ledger import SQLiteLedger
from meterline.ledger import _sqlite_reports as reports
from meterline.ledger._sqlite_folds import DAY_TOTALS
from meterline.ledger._sqlite_schema import ROLLUPS, folded_until
from tests.ledger.conformance import (
    FOLDED_DAYS_REPORTS,
    MANY_VALUES_REPORTS,
    PRODUCT_REPORTS,
    assert_reports,
    assert_reports_through_a_prune_and_a_repricing,
    many_values_events,
    write_by_day,
)

_DAY: Final = 86_400


@pytest.fixture
def many_values(tmp_path: Path) -> tuple[Path, list[UsageEvent]]:
    """A ledger whose sessions are mostly of the past: 6,000 old ones, 1,200 recent events."""
    events = many_values_events()
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    try:
        write_by_day(ledger, events, batch=1000)
    finally:
        ledger.close()
    return path, events


def test_a_dimension_of_many_values_is_read_from_the_ranges_rows_or_events(
    many_values: tuple[Path, list[UsageEvent]],
) -> None:
    """Folded days by their index of the day, days not folded by their events' values; few values by value."""
    path, events = many_values
    with contextlib.closing(sqlite3.connect(path)) as conn:
        newest = folded_until(conn)
        two_days = (newest - 2 * _DAY, newest)
        assert reports.way_in(conn, DAY_TOTALS, "session", *two_days) == "range"
        assert reports.way_in(conn, ROLLUPS[1], "session", newest, newest + _DAY) == "events"
        assert reports.way_in(conn, DAY_TOTALS, "agent", *two_days) == "values"
        assert reports.way_in(conn, ROLLUPS[1], "agent", newest, newest + _DAY) == "values"
        # Every day of the ledger: more rows than sessions.
        assert reports.way_in(conn, DAY_TOTALS, "session", None, None) == "values"
    ledger = SQLiteLedger(path)
    try:
        assert_reports(ledger, events, MANY_VALUES_REPORTS)
    finally:
        ledger.close()


def test_each_way_in_reads_only_what_its_index_finds(many_values: tuple[Path, list[UsageEvent]]) -> None:
    """The range by its period's index, or the events' by time, each value and row by key: none read whole."""
    path, _ = many_values
    with contextlib.closing(sqlite3.connect(path)) as conn:
        ways: list[tuple[reports.Way, str, str]] = [
            ("range", DAY_TOTALS, "day"),
            ("range", ROLLUPS[2], "month"),
            ("events", ROLLUPS[1], "day"),
            ("values", ROLLUPS[1], "day"),
        ]
        for way, table, column in ways:
            source, args = reports.from_clause(way, table, "", 0, _DAY)
            sql = f"SELECT SUM(r.events){source} WHERE v.name = ? AND r.{column} >= ? AND r.{column} < ?"
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [*args, "session", 0, _DAY])]
            assert not any(step.startswith("SCAN") and "meterline" in step for step in plan), plan
            if way == "range":
                assert plan[0] == f"SEARCH r USING INDEX {table}_by_{column} ({column}>? AND {column}<?)"
                assert plan[1] == "SEARCH v USING INTEGER PRIMARY KEY (rowid=?)"
            elif way == "events":
                assert any(step.startswith("SEARCH e USING INDEX meterline_events_time") for step in plan), (
                    plan
                )
                assert plan[-1].startswith("SEARCH r USING PRIMARY KEY (value_id=? AND day>? AND day<?)"), (
                    plan
                )
            else:
                assert plan[0].startswith("SEARCH v USING COVERING INDEX"), plan


@pytest.mark.parametrize("way", ["values", "range", "events"])
def test_every_way_in_gives_every_report_exactly(
    many_values: tuple[Path, list[UsageEvent]], way: reports.Way, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However a report reads every value's rows, it equals the events, past a prune and re-pricing too."""
    path, events = many_values
    monkeypatch.setattr(reports, "way_in", lambda *_: way)
    ledger = SQLiteLedger(path)
    try:
        assert_reports(ledger, events, [*PRODUCT_REPORTS, *FOLDED_DAYS_REPORTS, *MANY_VALUES_REPORTS])
        assert_reports_through_a_prune_and_a_repricing(ledger, events, len(events))
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("loaded", "pushed", "by_text"), [(0, 0, 3), (1, 1, 1), (10**6, 900, 3), (10**6, 900, 0)]
)
def test_reports_by_events_are_exact_however_their_values_are_read(
    many_values: tuple[Path, list[UsageEvent]],
    loaded: int,
    pushed: int,
    by_text: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sets decoded whole or from the values read at once, filters in SQL (by text, as JSON) or not: exact."""
    path, events = many_values
    monkeypatch.setattr(reports, "_MAX_LOADED", loaded)
    monkeypatch.setattr(reports, "_MAX_PUSHED", pushed)
    monkeypatch.setattr(reports, "_BY_TEXT", by_text)
    by_events = [report for report in PRODUCT_REPORTS if len({*report["by"], *report.get("where", ())}) > 1]
    ledger = SQLiteLedger(path)
    try:
        assert_reports(ledger, events, [*by_events, *MANY_VALUES_REPORTS])
        assert_reports_through_a_prune_and_a_repricing(ledger, events, len(events))
    finally:
        ledger.close()
