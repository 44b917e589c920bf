"""A batch as PostgreSQL COPY text: each line is the contract's row, escaped as COPY reads it."""

from __future__ import annotations

from meterline.ledger._postgres_copy import DimensionSets, copy_line
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


def test_copy_lines_are_the_rows_of_the_contract() -> None:
    """Each COPY line is `event_to_row`'s row (counts of 0 NULL), then its set's number; values once."""
    _, events = metered_events()
    events += [make_event(i, T0, model=value, dims={"note": value}) for i, value in enumerate(HOSTILE)]
    events.append(make_event(99, T0, model="tab\there\nnew\\line", latency_ms=None, cost=None))
    sets = DimensionSets()
    texts: dict[str, str] = {}
    numbers: dict[int, object] = {}
    for event in events:
        line = copy_line(event, sets, texts)
        row, _, number = line.rstrip("\n").rpartition("\t")
        assert row == "\t".join(
            "\\N" if name in SPARSE_EVENT_FIELDS and value == 0 else _copy_text_of(value)
            for name, value in zip(EVENT_COLUMNS, event_to_row(event), strict=True)
        )
        assert numbers.setdefault(int(number), event.dimensions) is event.dimensions  # a set per object
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
