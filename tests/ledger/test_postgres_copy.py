"""A batch as PostgreSQL COPY text: each line is the contract's row, escaped as COPY reads it."""

from __future__ import annotations

from meterline.ledger._postgres_copy import copy_line
from meterline.ledger._rows import event_to_row
from tests.ledger.conformance import HOSTILE, T0, make_event, metered_events


def _copy_text_of(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\uffff", "\uffff\uffff").replace("\x00", "\uffff0")
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def test_copy_lines_are_the_rows_of_the_contract() -> None:
    """The fast COPY line of every kind of event is exactly `event_to_row`'s row in COPY text."""
    _, events = metered_events()
    events += [make_event(i, T0, model=value, dims={"note": value}) for i, value in enumerate(HOSTILE)]
    events.append(make_event(99, T0, model="tab\there\nnew\\line", latency_ms=None, cost=None))
    cache: dict[int, tuple[object, str]] = {}
    texts: dict[str, str] = {}
    for event in events:
        expected = "\t".join(_copy_text_of(value) for value in event_to_row(event)) + "\n"
        assert copy_line(event, cache, texts) == expected  # type: ignore[arg-type]
