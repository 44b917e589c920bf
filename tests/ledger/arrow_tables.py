"""For the tests of the ledgers' Arrow readers: what a reader gives, what it should give, hostile events."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from meterline import Usage, UsageEvent
from meterline.ledger import export_parquet
from tests.ledger.conformance import T0, make_event, ns

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def read_batches(ledger: Any, **bounds: object) -> Any:
    """Every batch the ledger's ``arrow_batches`` gives, as one table."""
    batches = list(ledger.arrow_batches(**bounds))
    return pa.Table.from_batches(batches).combine_chunks()


def expected_table(events: list[UsageEvent], directory: Path) -> Any:
    """The events as the event-by-event Parquet export writes them, in id order, without ``day``."""
    export_parquet(events, directory)
    return pq.read_table(directory).drop_columns(["day"]).sort_by("id").combine_chunks()


def json_lines_of(ledger: Any) -> list[str]:
    """``json.dumps`` of each event the ledger gives back, as its ``json_lines`` promises its lines."""
    return [
        json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True) + "\n" for event in ledger.events()
    ]


def assert_json_lines(ledger: Any) -> list[str]:
    """The ledger's JSON lines are `json_lines_of` it, whole, after an id and since a time; those lines."""
    expected = json_lines_of(ledger)
    assert "".join(ledger.json_lines()).splitlines(keepends=True) == expected
    tenth = json.loads(expected[9])["id"]
    assert "".join(ledger.json_lines(after_id=tenth)).splitlines(keepends=True) == expected[10:]
    since = T0 + timedelta(days=1)
    inside = [line for line in expected if json.loads(line)["time_ns"] >= ns(since)]
    assert "".join(ledger.json_lines(since=since)).splitlines(keepends=True) == inside
    return expected


TEXT = st.text(max_size=12)
"""Short texts: any characters but lone surrogates (hypothesis's default), empty among them."""


@st.composite
def hostile_events(draw: st.DrawFn, names: list[str], most: int) -> list[UsageEvent]:
    """Up to ``most`` events: any texts as values (of ``names``), sub-pico and negative costs, links."""
    events = []
    for number in range(draw(st.integers(min_value=1, max_value=most))):
        cost = draw(st.none() | st.decimals(min_value=-(10**6), max_value=10**6, places=14, allow_nan=False))
        reported = draw(st.none() | st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False))
        event = make_event(
            number,
            T0 + timedelta(minutes=number),
            cost=None if cost is None else str(cost),
            usage=Usage(input_tokens=draw(st.integers(min_value=0, max_value=2**53)), output_tokens=1),
            latency_ms=draw(st.none() | st.floats(min_value=0, max_value=1e12, allow_nan=False)),
            dims=draw(st.dictionaries(st.sampled_from(names), TEXT, max_size=3)),
            service_tier=draw(st.none() | TEXT),
            reported_cost=None if reported is None else str(reported),
        )
        links = draw(st.lists(st.text(min_size=1, max_size=40), max_size=2))
        events.append(dataclasses.replace(event, links=tuple(links)))
    return events
