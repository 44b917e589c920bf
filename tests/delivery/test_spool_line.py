"""Spool lines: every event comes back exactly as it went in; a line changed on disk is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline import Meter, MeterlineError, Usage, UsageEvent
from meterline._delivery._spool_line import FORMAT, read_line, spool_lines
from meterline._dimensions import Dimensions
from tests.test_usage import usages

_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
"""Text every store keeps: any character but a lone surrogate."""
_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda name: name not in {"operation", "status", "provider", "model"}
)


@st.composite
def events(draw: st.DrawFn) -> UsageEvent:
    """Events as a meter records them or as they are read back: every field, every shape."""
    costs = st.one_of(
        st.none(),
        st.integers(0, 10**20).map(lambda pico: Decimal(pico).scaleb(-12)),  # to the pico-dollar
        st.decimals(min_value=0, max_value=10**6, places=15, allow_nan=False),  # finer (built by hand)
    )
    return UsageEvent(
        id=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        time_ns=draw(st.integers(0, 2**63 - 1)),
        operation=draw(st.sampled_from(["chat", "embeddings", "execute_tool", "cache"])),
        provider=draw(st.none() | st.sampled_from(["openai", "anthropic"])),
        model=draw(st.none() | _TEXT),
        request_model=draw(st.none() | _TEXT),
        usage=draw(st.none() | usages()),
        cost=draw(costs),
        price_version=draw(st.none() | _TEXT),
        latency_ms=draw(st.none() | st.floats(0, 365 * 86_400_000.0)),
        status=draw(st.sampled_from(["ok", "error", "rate_limited"])),
        dimensions=Dimensions(draw(st.dictionaries(_NAMES, _TEXT, max_size=4))),
        operation_id=draw(st.none() | _TEXT),
        attempt=draw(st.integers(1, 2**31 - 1)),
        response_id=draw(st.none() | _TEXT),
        links=tuple(draw(st.lists(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), max_size=3))),
        tokens_saved=draw(st.integers(0, 10**12)),
        partial_usage=draw(st.none() | usages()),
        service_tier=draw(st.none() | st.sampled_from(["flex", "priority"])),
        batch=draw(st.booleans()),
        reported_cost=draw(st.none() | st.integers(0, 10**15).map(lambda pico: Decimal(pico).scaleb(-12))),
    )


def _fields(event: UsageEvent) -> dict[str, Any]:
    """Every field, the costs as their exact text and pico-dollars: equal means the very same event."""
    fields = event.to_dict()
    fields["cost_pico"] = event.cost_pico
    fields["reported_cost_pico"] = event.reported_cost_pico
    fields["cost"] = None if event.cost is None else Decimal(fields["cost"])
    return fields


def _line(event: UsageEvent) -> bytes:
    (line,) = spool_lines([event]).splitlines()
    return line


@given(events())
def test_every_event_comes_back_exactly(event: UsageEvent) -> None:
    """Any event, spooled and read back, has every field it had, its cost to the last digit."""
    back = read_line(_line(event), {})
    assert back == event
    assert _fields(back) == _fields(event)


@given(events())
def test_a_line_of_the_first_format_is_still_read(event: UsageEvent) -> None:
    """A line an earlier version wrote (`UsageEvent.to_dict`'s object) is read as it was written."""
    back = read_line(json.dumps(event.to_dict()).encode(), {})
    assert _fields(back) == _fields(event)


def test_a_recorded_event_is_one_short_ascii_line() -> None:
    """A recorded event's line is ASCII JSON: format first, cost in pico-dollars, dimensions last."""
    meter = Meter()
    with meter.scope(user="Zoë", session="s-1"):
        event = meter.record(Usage(input_tokens=1200, output_tokens=30), model="gpt-4o", provider="openai")
    data = spool_lines([event])
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.isascii()
    values = json.loads(data)
    assert values[0] == FORMAT
    assert values[8] == event.cost_pico
    assert values[-1] == {"session": "s-1", "user": "Zoë"}
    assert read_line(data.strip(), {}) == event


def test_events_read_together_share_their_dimensions() -> None:
    """Lines with equal dimensions give one `Dimensions` object, as a meter's scope gives its events."""
    meter = Meter()
    with meter.scope(user="u1"):
        first, second = (meter.record(Usage(input_tokens=1), model="gpt-4o") for _ in range(2))
    shared: dict[Any, Dimensions] = {}
    one, two = (read_line(line, shared) for line in spool_lines([first, second]).splitlines())
    assert one.dimensions is two.dimensions
    assert type(one.dimensions) is Dimensions


@pytest.mark.parametrize("value", ["u\ud800", "x" * 257])
def test_dimensions_no_store_keeps_are_refused_on_every_line(value: str) -> None:
    """A dimension value no store keeps is refused on each line that holds it, not only the first."""
    line = json.dumps([*_VALID[:-1], {"user": value}]).encode()
    shared: dict[Any, Dimensions] = {}
    for _ in range(2):
        with pytest.raises(MeterlineError, match="user="):
            read_line(line, shared)
    assert shared == {}


def test_a_first_format_line_has_its_dimensions_checked_whatever_their_shape() -> None:
    """A line of the first format whose dimensions are pairs, not an object, has their text checked too."""
    data = Meter().record(Usage(input_tokens=1), model="gpt-4o").to_dict()
    data["dimensions"] = [["user", "u\ud800"]]
    with pytest.raises(MeterlineError, match="user="):
        read_line(json.dumps(data).encode(), {})


def test_a_priced_event_comes_back_with_its_pico_dollars() -> None:
    """A line's cost in pico-dollars is read as the meter recorded it: the same integer, the same Decimal."""
    event = Meter().record(Usage(input_tokens=1234, output_tokens=56), model="gpt-4o", provider="openai")
    back = read_line(_line(event), {})
    assert back.cost_pico == event.cost_pico
    assert event.cost_pico
    assert back.cost == event.cost
    assert str(back.cost) == str(event.cost)


_VALID = json.loads(_line(Meter().record(Usage(input_tokens=5), model="gpt-4o", tags={"user": "u1"})))
_WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(st.integers(0, len(_VALID) - 1), _WRONG)
def test_a_changed_value_is_refused_or_read_as_written(at: int, value: object) -> None:
    """A line with one value changed is refused with a MeterlineError, or read holding exactly that value.

    A value no ledger column holds (a time past 2**63) is read: the ledger puts its event in
    its dead letters, with the reason, where a refused line would only be logged.
    """
    changed = list(_VALID)
    changed[at] = value
    try:
        event = read_line(json.dumps(changed).encode(), {})
    except MeterlineError:
        return
    assert json.loads(_line(event)) == changed  # nothing coerced: what was read is what is written


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({1: 42}, "id"),
        ({2: 1.5e18}, "time_ns"),
        ({2: True}, "time_ns"),
        ({7: [1, 2]}, "usage"),
        ({7: [-1] + [0] * 11}, "input_tokens"),
        ({17: [2**41] + [0] * 11}, "input_tokens"),  # a partial usage past what record() takes
        ({8: -5}, "cost"),
        ({8: "NaN"}, "cost"),
        ({13: 0}, "attempt"),
        ({15: [7]}, "links"),
        ({19: 1}, "batch"),
        ({21: {"user": 5}}, "dimensions"),
        ({0: 3}, "spool line"),
    ],
)
def test_a_forged_value_is_refused_naming_it(change: dict[int, object], field: str) -> None:
    """A value of the wrong type, or one record() refuses, raises a MeterlineError that names it."""
    forged = list(_VALID)
    for at, value in change.items():
        forged[at] = value
    with pytest.raises(MeterlineError, match=field):
        read_line(json.dumps(forged).encode(), {})


@given(st.integers(1, len(json.dumps(_VALID)) - 1))
def test_a_truncated_line_is_refused(length: int) -> None:
    """A line cut anywhere is refused (not JSON, or not a whole line), never read as an event."""
    with pytest.raises((ValueError, MeterlineError)):
        read_line(json.dumps(_VALID).encode()[:length], {})
