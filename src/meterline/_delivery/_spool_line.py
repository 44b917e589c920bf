"""An event as a line of the spool, and back: what `Spool.append` writes and a replay reads.

A line is a JSON array of the event's fields, its format first::

    [2, id, time_ns, operation, provider, model, request_model, usage, cost, price_version,
     latency_ms, status, operation_id, attempt, response_id, links, tokens_saved,
     partial_usage, service_tier, batch, reported_cost, dimensions]

a usage as its counts in `USAGE_FIELDS` order, the cost as its pico-dollars when they are
all of it (an event the meter priced), else as its decimal text, and the dimensions last, as
their own compact JSON (`Dimensions.json`, which a scope's events share, made once). The
spool takes the events a destination could not take, or that a full queue spilled: when
the store is slower than the calls, most of them, on a thread that shares the GIL with the
application's. Over the events of `bench/bench_ledger_scale.py`'s workload, written as
`UsageEvent.to_dict`'s JSON object (the first format), a line took 11.7 µs and 740 bytes
and was read back in 19.1 µs; as this array, 4.5 µs and 294 bytes, read back in 17.6 µs (the
checks, most of it). Two threads recording flat out onto a SQLite ledger, which spills 70 %
of their events (`bench/bench_record_under_load.py`), made 41,000 calls a second, now 46,000.
Reading a line back then became cheaper with every check kept (29-33 -> 20-24 µs, 1.7-1.9x
``json.loads`` of the lines alone, `bench/bench_spool.py` on a busier machine): the values'
types tested in one pass, the usage checked in one pass (`usage_of_counts`), each distinct
set of dimensions checked once, and the cost kept as its pico-dollars, as the meter records
it, with no ``Decimal`` made and taken apart again.

Lines of the first format, written by earlier versions, are still read. Either is read as
strictly as `Meter.record` takes an event: each field's type, then `check_recorded`, so a
line changed on disk is refused, naming the field, rather than stored.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from operator import attrgetter, contains
from typing import Any, Final

from meterline._dimensions import Dimensions, dimensions_json
from meterline._events import UsageEvent, check_dimensions, check_recorded, finer_cost, recorded_event
from meterline._money import to_usd
from meterline._usage import USAGE_FIELDS, Usage, usage_of_counts
from meterline.exceptions import MalformedUsageError

__all__ = ["FORMAT", "SharedDimensions", "read_line", "spool_lines"]

FORMAT: Final = 2
"""The format of the lines `spool_lines` writes (1: `UsageEvent.to_dict`'s JSON object)."""

SharedDimensions = dict[tuple[tuple[str, str], ...], Dimensions]
"""The dimensions read so far, by their items: events of one scope get one object, as recorded."""

_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_NONE: Final = type(None)
_TEXT: Final = (str,)
_TEXT_OR_NONE: Final = (str, _NONE)
_INT: Final = (int,)  # `type(value) in` these: a bool is not an int here
_VALUES: Final = (  # a line's values in order, named as `UsageEvent` takes them, with their types
    ("format", _INT),
    ("id", _TEXT),
    ("time_ns", _INT),
    ("operation", _TEXT),
    ("provider", _TEXT_OR_NONE),
    ("model", _TEXT_OR_NONE),
    ("request_model", _TEXT_OR_NONE),
    ("usage", (list, _NONE)),
    ("cost", (int, str, _NONE)),  # pico-dollars, or decimal text of USD
    ("price_version", _TEXT_OR_NONE),
    ("latency_ms", (float, int, _NONE)),
    ("status", _TEXT),
    ("operation_id", _TEXT_OR_NONE),
    ("attempt", _INT),
    ("response_id", _TEXT_OR_NONE),
    ("links", (list,)),
    ("tokens_saved", _INT),
    ("partial_usage", (list, _NONE)),
    ("service_tier", _TEXT_OR_NONE),
    ("batch", (bool,)),
    ("reported_cost", (int, _NONE)),  # pico-dollars
    ("dimensions", (dict,)),
)
_NAMES: Final = tuple(name for name, _ in _VALUES)
_TYPES: Final = tuple(frozenset(types) for _, types in _VALUES)
"""Each value's allowed types, as sets: `_from_values` tests them all at once."""
_FIELDS: Final = attrgetter(  # an event's values for its line, the format aside
    *({"cost": "cost_pico", "reported_cost": "reported_cost_pico"}.get(name, name) for name in _NAMES[1:])
)
_COUNTS: Final = attrgetter(*USAGE_FIELDS)
_USAGE: Final = _NAMES.index("usage")
_COST: Final = _NAMES.index("cost")
_PARTIAL: Final = _NAMES.index("partial_usage")


def spool_lines(events: Sequence[UsageEvent]) -> bytes:
    """``events`` as spool lines, each ending with a newline, in UTF-8 (ASCII: JSON escapes the rest)."""
    return "".join([_line(event) for event in events]).encode("utf-8")


def _line(event: UsageEvent) -> str:
    values = [FORMAT, *_FIELDS(event)]
    dimensions = values.pop()
    for at in (_USAGE, _PARTIAL):
        if values[at] is not None:
            values[at] = _COUNTS(values[at])
    if values[_COST] is not None and finer_cost(event) is not None:  # finer than a pico-dollar
        values[_COST] = str(event.cost)
    return f"{_ENCODE(values)[:-1]},{dimensions_json(dimensions)}]\n"


def read_line(line: bytes, shared: SharedDimensions) -> UsageEvent:
    """The event a spool line holds, of either format, checked as `Meter.record` checks one.

    Raises:
        MeterlineError: a `MalformedUsageError` naming the value of the wrong type or shape,
            or the `ConfigurationError` of `check_recorded` (a cost below zero, text no
            store keeps…).
        ValueError: the line is not JSON.
    """
    value = json.loads(line.decode())  # as text: json.loads would first guess the bytes' encoding
    if type(value) is dict:  # the first format: `UsageEvent.to_dict`, checked whole
        dims = value.get("dimensions")
        if type(dims) is dict and dims:
            value["dimensions"] = _shared(dims, shared)
        event = UsageEvent.from_dict(value)
        check_recorded(event)
    else:
        event = _from_values(value, shared)
        check_recorded(event, dimensions=False)  # its shared `Dimensions` was checked when first read
    return event


def _from_values(values: Any, shared: SharedDimensions) -> UsageEvent:
    if type(values) is not list or len(values) != len(_VALUES) or values[0] != FORMAT:
        expected = f"a JSON array of {len(_VALUES)} values, format {FORMAT}"
        raise MalformedUsageError("spool line", values, expected)
    if not all(map(contains, _TYPES, map(type, values))):  # one pass in C; the culprit named below
        for (name, types), value in zip(_VALUES, values, strict=True):
            if type(value) not in types:
                raise MalformedUsageError(name, value, " or ".join(kind.__name__ for kind in types))
    # Unpacked by name, then one dict: 19 µs a line where `dict(zip(...))` and its edits took 22
    # (`bench/bench_spool.py`, alternating runs).
    (
        _,
        event_id,
        time_ns,
        operation,
        provider,
        model,
        request_model,
        usage,
        cost,
        price_version,
        latency_ms,
        status,
        operation_id,
        attempt,
        response_id,
        links,
        tokens_saved,
        partial_usage,
        service_tier,
        batch,
        reported_cost,
        dimensions,
    ) = values
    if not all(type(link) is str for link in links):
        raise MalformedUsageError("links", links, "a list of event ids")
    if not all(type(text) is str for text in dimensions.values()):
        raise MalformedUsageError("dimensions", dimensions, "an object of text values")
    fields: dict[str, Any] = {
        "time_ns": time_ns,
        "operation": operation,
        "provider": provider,
        "model": model,
        "request_model": request_model,
        "usage": _usage(usage, "usage"),
        "price_version": price_version,
        "latency_ms": latency_ms,
        "status": status,
        "dimensions": _shared(dimensions, shared),
        "operation_id": operation_id,
        "attempt": attempt,
        "response_id": response_id,
        "links": tuple(links),
        "tokens_saved": tokens_saved,
        "partial_usage": _usage(partial_usage, "partial_usage"),
        "service_tier": service_tier,
        "batch": batch,
    }
    if type(cost) is str:  # finer than a pico-dollar: the event keeps its exact Decimal
        return UsageEvent(
            id=event_id,
            cost=_decimal(cost),
            reported_cost=None if reported_cost is None else to_usd(reported_cost),
            **fields,
        )
    # As the meter records one: its pico-dollars, the Decimal made only if read (most never are).
    return recorded_event(
        **fields, cost_pico=cost, reported_cost_pico=reported_cost, id=event_id, id_high="", id_count=0
    )


def _usage(counts: list[Any] | None, name: str) -> Usage | None:
    """A `Usage` of ``counts`` in `USAGE_FIELDS` order (checked as `Usage` checks them)."""
    if counts is None:
        return None
    if len(counts) != len(USAGE_FIELDS):
        expected = f"a list of {len(USAGE_FIELDS)} counts ({', '.join(USAGE_FIELDS)})"
        raise MalformedUsageError(name, counts, expected)
    return usage_of_counts(tuple(counts))


def _decimal(text: str) -> Decimal:
    """A cost's decimal text as a finite `Decimal`."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal("NaN")
    if not value.is_finite():
        raise MalformedUsageError("cost", text, "a decimal number of USD")
    return value


def _shared(dims: dict[str, str], shared: SharedDimensions) -> Dimensions:
    """The one `Dimensions` of these items read so far (one object per scope, as recorded).

    Its values are checked when first read (`check_dimensions`), not again for each event.
    """
    key = tuple(dims.items())
    known = shared.get(key)
    if known is None:
        check_dimensions(dims)
        known = shared[key] = Dimensions(dims)
    return known
