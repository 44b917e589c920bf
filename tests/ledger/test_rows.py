"""The ledger contract's helpers: exact cost columns without ``Decimal`` work, and ids as written."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from meterline import Meter, Usage
from meterline._events import _UNSET
from meterline.ledger._rows import EVENT_COLUMNS, cost_columns, event_id, event_to_row, pico_of
from tests.ledger.conformance import T0, make_event, metered_events


@pytest.mark.parametrize(
    ("cost", "pico"),
    [
        (None, None),
        ("0.00472", 4_720_000_000),
        ("2.5E-12", 2),  # half to even
        ("3.5E-12", 4),
        ("-2.5E-12", -2),
        ("1E-30", 0),
        ("5000000.000001", 5_000_000_000_001_000_000),
    ],
)
def test_pico_of_rounds_half_to_even(cost: str | None, pico: int | None) -> None:
    """A cost in 1e-12 USD is exact where it can be, and rounded half to even past that."""
    assert pico_of(None if cost is None else Decimal(cost)) == pico


def test_cost_columns_of_metered_events_match_their_decimal_cost() -> None:
    """For every kind of metered event, the stored cost text and pico-dollars equal its ``cost``."""
    _, events = metered_events()
    for event in events:
        text, pico = cost_columns(event)
        if event.cost is None:
            assert (text, pico) == (None, None)
        else:
            assert text is not None
            assert Decimal(text) == event.cost
            assert pico == pico_of(event.cost)


def test_cost_columns_leave_a_lazy_cost_underived() -> None:
    """An event priced inline keeps its cost underived: the ledger's columns need no ``Decimal``."""
    meter = Meter()
    event = meter.record(Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300), model="gpt-4o")
    text, pico = cost_columns(event)
    assert not _is_set(event, "cost")
    assert text is not None
    assert Decimal(text) == event.cost
    assert pico == pico_of(event.cost)


def test_event_id_is_the_events_id() -> None:
    """`event_id` gives the id a metered or hand-made event has, without storing it on the event."""
    meter = Meter()
    lazy = meter.record(Usage(input_tokens=1), model="gpt-4o")
    assert not _is_set(lazy, "id")
    assert event_id(lazy) == lazy.id
    made = make_event(7, T0 + timedelta(minutes=1))
    assert event_id(made) == made.id == f"{7:032x}"


def test_event_to_row_holds_the_exact_cost() -> None:
    """A row's cost text reads back as the event's exact cost, and its pico-dollars agree."""
    event = make_event(1, T0, cost="0.0000001")  # str() of this Decimal is in exponent notation
    row = dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True))
    assert Decimal(row["cost"]) == event.cost
    assert row["cost_pico"] == 100_000


def _is_set(event: object, name: str) -> bool:
    """Whether the field ``name`` of ``event`` is written out yet (a recorded event's id and cost are not)."""
    value = object.__getattribute__(event, f"_{name}")
    return value is not None and value is not _UNSET
