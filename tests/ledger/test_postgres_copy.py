"""A batch as PostgreSQL COPY rows: each is the contract's row, its text escaped as the columns store it."""

from __future__ import annotations

from meterline.ledger._postgres_copy import TEXT_COLUMNS, DimensionSets, copy_row
from meterline.ledger._postgres_schema import SPARSE_EVENT_FIELDS
from meterline.ledger._rows import EVENT_COLUMNS, event_to_row
from tests.ledger.conformance import HOSTILE, T0, make_event, metered_events


def _copy_text_of(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\uffff", "\uffff\uffff").replace("\x00", "\uffff0")
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _stored(name: str, value: object) -> object:
    """A value of `event_to_row` as the COPY row holds it: counts of 0 NULL, text columns escaped."""
    if name in SPARSE_EVENT_FIELDS and value == 0:
        return None
    if name in TEXT_COLUMNS and isinstance(value, str):
        return value.replace("\uffff", "\uffff\uffff").replace("\x00", "\uffff0")
    return value


def test_copy_rows_are_the_rows_of_the_contract() -> None:
    """Each COPY row is `event_to_row`'s row (counts of 0 NULL), then its set's number; values once."""
    _, events = metered_events()
    events += [make_event(i, T0, model=value, dims={"note": value}) for i, value in enumerate(HOSTILE)]
    events.append(make_event(99, T0, model="tab\there\nnew\\line", latency_ms=None, cost=None))
    sets = DimensionSets()
    texts: dict[str, str] = {}
    numbers: dict[int, object] = {}
    for event in events:
        *row, number = copy_row(event, sets, texts)
        assert row == [
            _stored(name, value) for name, value in zip(EVENT_COLUMNS, event_to_row(event), strict=True)
        ]
        assert type(number) is int
        assert numbers.setdefault(number, event.dimensions) is event.dimensions  # a set per object
    values = {}  # value number: its (name, value) COPY text, each pair numbered once
    for line in sets.values:
        value_no, name, value = line.rstrip("\n").split("\t")
        values[int(value_no)] = f"{name}\t{value}"
    assert len(set(values.values())) == len(values) == len(sets.values)
    expected = sorted(
        f"{number}\t{_copy_text_of(name)}\t{_copy_text_of(value)}"
        for number, dims in numbers.items()
        for name, value in dims.items()  # type: ignore[attr-defined]
    )
    got = []
    for line in sets.lines:
        set_no, value_no = line.rstrip("\n").split("\t")
        got.append(f"{set_no}\t{values[int(value_no)]}")
    assert sorted(got) == expected
