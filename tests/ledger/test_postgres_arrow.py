"""The PostgreSQL ledger's events read as Arrow batches: exactly what the event-by-event export writes."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import UsageEvent
from meterline.ledger import _postgres as postgres_ledger
from meterline.ledger._parquet import dimension_pairs
from meterline.ledger._postgres import PostgresLedger
from meterline.ledger._postgres_arrow import _read_maps
from tests.ledger.arrow_tables import (
    TEXT,
    assert_json_lines,
    expected_table,
    hostile_events,
    json_lines_of,
    read_batches,
)
from tests.ledger.conformance import HOSTILE, T0, make_event, product_events
from tests.ledger.postgres_stores import execute

pytestmark = pytest.mark.services

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pc = pytest.importorskip("pyarrow.compute")
pytest.importorskip("adbc_driver_postgresql")


def test_product_events_read_as_the_event_by_event_export_writes_them(
    url: str, schema: str, tmp_path: Path
) -> None:
    """4,000 events of thousands of users and sessions, hostile values among them: every column equal."""
    events = product_events()
    events += [
        make_event(9000 + i, T0 + timedelta(hours=i), model=value, dims={"user": value, "note\x00": value})
        for i, value in enumerate(HOSTILE)  # NUL, quotes, JSON and SQL text in names and values
    ]
    ledger = PostgresLedger(url, schema=schema)
    try:
        ledger.write(events)
        assert read_batches(ledger).equals(expected_table(events, tmp_path / "x"))
        since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
        inside = [event for event in events if since <= event.time < until]
        assert read_batches(ledger, since=since, until=until).equals(expected_table(inside, tmp_path / "y"))
    finally:
        ledger.close()


def test_product_events_json_lines_are_the_events(
    url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4,000 events and hostile ones: the JSON lines made from Arrow columns are ``json.dumps`` of each."""
    events = product_events()
    events += [
        make_event(
            9000 + i, T0 + timedelta(hours=i), model=value, cost="0.0000000000001", dims={"n\x00": value}
        )
        for i, value in enumerate(HOSTILE)  # NUL, quotes, JSON and SQL text; a cost finer than a pico-dollar
    ]
    ledger = PostgresLedger(url, schema=schema)
    try:
        ledger.write(events)
        expected = assert_json_lines(ledger)
        monkeypatch.setattr(postgres_ledger, "fast_reader_installed", lambda: False)
        assert "".join(ledger.json_lines()).splitlines(keepends=True) == expected
    finally:
        ledger.close()


def test_a_dimension_name_no_ledger_wrote_is_decoded_by_python(url: str, schema: str, tmp_path: Path) -> None:
    """A set changed by hand to a name never stored (Arrow's reader is not told of it) is read exactly."""
    events = product_events(300)
    ledger = PostgresLedger(url, schema=schema)
    try:
        ledger.write(events)
        execute(
            url,
            f'UPDATE "{schema}".meterline_events SET dimensions = %s WHERE id = %s',
            ('{"by_hand":"1"}', events[7].id),
        )
        table = read_batches(ledger)
    finally:
        ledger.close()
    events[7] = dataclasses.replace(events[7], dimensions={"by_hand": "1"})
    assert table.equals(expected_table(events, tmp_path / "x"))


@settings(max_examples=60, deadline=None)
@given(sets=st.lists(st.dictionaries(TEXT, TEXT, max_size=4), min_size=1, max_size=8, unique_by=json.dumps))
def test_arrows_json_reader_decodes_what_python_does(sets: list[dict[str, str]]) -> None:
    """Any names and values (NUL, quotes, newlines, unicode): the maps Arrow makes are Python's, or none."""
    texts = [json.dumps(dims, sort_keys=True, separators=(",", ":")) for dims in sets]
    names = sorted({name for dims in sets for name in dims})
    maps = _read_maps(pa, pc, texts, names)
    if maps is not None:
        assert maps.to_pylist() == dimension_pairs(texts)
    if names:  # a name the reader is not told of: no maps, decoded by Python instead
        assert _read_maps(pa, pc, texts, names[1:]) is None


@settings(max_examples=25, deadline=None)
@given(events=hostile_events(["user", "org", "x,y", "n\x00"], 20))
def test_hostile_values_read_exactly(
    url: str, tmp_path_factory: pytest.TempPathFactory, events: list[UsageEvent]
) -> None:
    """Commas, NUL, empty and unicode texts, negative and sub-pico costs, huge counts: every column exact."""
    schema = f"meterline_test_{uuid.uuid4().hex[:12]}"
    ledger = PostgresLedger(url, schema=schema)
    try:
        ledger.write(events)
        assert read_batches(ledger).equals(expected_table(events, tmp_path_factory.mktemp("x")))
        assert "".join(ledger.json_lines()).splitlines(keepends=True) == json_lines_of(ledger)
    finally:
        ledger.close()
        execute(url, f'DROP SCHEMA "{schema}" CASCADE')
