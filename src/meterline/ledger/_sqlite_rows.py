"""A batch of events as the SQLite ledger binds it: the parameters of its multi-row ``INSERT``.

The writer's hot path: one pass over the batch, the fields that repeat from event to event
bound once (as a ``key_id``), and the dimensions as the ids of their values. SQLite then
adds the new rows into the roll-ups itself (`ROLL_UP_NODIMS`, `ROLL_UP_DIMS`).
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

from meterline._dimensions import dimensions_json
from meterline._events import UsageEvent, finer_cost
from meterline._usage import USAGE_FIELDS
from meterline.ledger._rows import cost_columns
from meterline.ledger._sqlite_schema import stored_id

__all__ = ["bind_rows"]

_FIELDS_OF: Final = attrgetter(
    "time_ns",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "usage",
    "price_version",
    "latency_ms",
    "dimensions",
    "operation_id",
    "attempt",
    "response_id",
    "links",
    "tokens_saved",
    "service_tier",
    "batch",
    "reported_cost_pico",
)
_USAGE_OF: Final = attrgetter(*USAGE_FIELDS)
_NO_USAGE: Final = (0,) * (1 + len(USAGE_FIELDS))  # measured, then the counts
_NAN: Final = float("nan")
_EXACT_IN_PICO: Final = "exact in pico-dollars"
"""A marker: the cost text is not stored (the view derives it from ``cost_pico``)."""


def bind_rows(
    events: Sequence[UsageEvent],
    known: Mapping[tuple[Any, ...], int],
    key_id: Callable[[tuple[Any, ...]], int],
    known_dims: Mapping[str, str],
    dims_ids: Callable[[str, Mapping[str, str]], str],
) -> list[Any]:
    """The parameters of `insert_events` for ``events``: their rows, one after the other, in one list.

    The values of `event_to_row` (a test checks it) in the order of `STORED_COLUMNS`: the id
    as `stored_id`, the key fields replaced by their id (``known[fields]``, else
    ``key_id(fields)``), the dimensions' JSON by the ids of their values
    (``known_dims[json]``, else ``dims_ids(json, dimensions)``); ``None`` bound as the integer
    0 in a text column, as -1 for the stated cost and as NaN for the latency (see
    `insert_events`); a cost exact in pico-dollars stored as the integer alone. Written out
    inline, into one flat list: it runs for every event on the writer thread, which shares
    the GIL with the threads recording them.
    """
    values: list[Any] = []
    extend = values.extend
    for event in events:
        (
            time_ns,
            operation,
            status,
            provider,
            model,
            request_model,
            usage,
            price_version,
            latency,
            dimensions,
            operation_id,
            attempt,
            response_id,
            links,
            tokens_saved,
            tier,
            batch,
            reported,
        ) = _FIELDS_OF(event)
        pico = event.cost_pico
        cost: str | None
        if pico is not None and pico >= 0 and finer_cost(event) is None:
            # The common case: exact to the pico-dollar. Only the integer is stored; the
            # view writes the text out (formatting it here cost a tenth of this loop).
            cost = _EXACT_IN_PICO
        else:
            cost, pico = cost_columns(event)
        dims = dimensions_json(dimensions)
        fields = (operation, status, provider, model, request_model, price_version)
        found = known.get(fields)
        ids = known_dims.get(dims)
        extend(
            (
                stored_id(event.id),
                time_ns,
                key_id(fields) if found is None else found,
                dims_ids(dims, dimensions) if ids is None else ids,
            )
        )
        extend(_NO_USAGE if usage is None else (1, *_USAGE_OF(usage)))
        extend(
            (
                0 if cost is None or cost is _EXACT_IN_PICO else cost,
                pico,
                _NAN if latency is None else latency,
                0 if operation_id is None else operation_id,
                attempt,
                0 if response_id is None else response_id,
                "[]" if not links else json.dumps(list(links), separators=(",", ":")),
                tokens_saved,
                0 if tier is None else tier,
                1 if batch else 0,
                -1 if reported is None else reported,
            )
        )
    return values
