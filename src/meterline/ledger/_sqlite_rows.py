"""A batch of events as the SQLite ledger stores it: bound rows, and the roll-up sums they add.

The writer's hot path: one pass over the batch makes the parameters of the multi-row
``INSERT`` (the fields that repeat from event to event bound once, as a ``key_id``), and
one more adds each new event into the sums of both roll-up tables, in Python, so SQLite is
asked one upsert per roll-up row rather than one per event.
"""

from __future__ import annotations as _annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any, Final

from meterline._dimensions import Dimensions
from meterline._events import UsageEvent, finer_cost
from meterline._usage import USAGE_FIELDS
from meterline.ledger._rows import (
    cost_columns,
    event_id,
)
from meterline.ledger._sqlite_schema import (
    HOUR_AT,
    KEY_ID_AT,
    LATENCY_AT,
    MEASURED,
    NOT_MODEL_CALLS,
    PICO_AT,
    SAVED_AT,
    USAGE_AT,
    WIDTH,
)

__all__ = ["bind_rows", "drop_dims", "rollup"]

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
) -> list[Any]:
    """The parameters of `insert_events` for ``events``: their rows, one after the other, in one list.

    The values of `event_to_row` (a test checks it) in the order of `STORED_COLUMNS`: the
    key fields replaced by their id (``known[fields]``, else ``key_id(fields)``); ``None``
    bound as the integer 0 in a text column and as NaN for the latency (see
    `insert_events`); a cost exact in pico-dollars stored as the integer alone. Written out inline, into one
    flat list: it runs for every event on the writer thread, which shares the GIL with the
    threads recording them.
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
        ) = _FIELDS_OF(event)
        pico = event.cost_pico
        cost: str | None
        if pico is not None and pico >= 0 and finer_cost(event) is None:
            # The common case: exact to the pico-dollar. Only the integer is stored; the
            # view writes the text out (formatting it here cost a tenth of this loop).
            cost = _EXACT_IN_PICO
        else:
            cost, pico = cost_columns(event)
        dims = (
            dimensions.json()
            if type(dimensions) is Dimensions
            else json.dumps(dict(dimensions), sort_keys=True, separators=(",", ":"))
        )
        fields = (operation, status, provider, model, request_model, price_version, dims)
        found = known.get(fields)
        extend(
            (
                event_id(event),
                time_ns,
                time_ns // 3_600_000_000_000 * 3600,  # hour_of(time_ns)
                key_id(fields) if found is None else found,
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
            )
        )
    return values


def rollup(values: list[Any], fields: Mapping[int, tuple[Any, ...]]) -> dict[tuple[Any, ...], list[Any]]:
    """Add rows of `bind_rows` up per roll-up key (hour, operation, status, provider, model, dimensions).

    Rows are grouped by (hour, key_id) first, then each group lands on its roll-up key, taken
    from ``fields`` (key_id -> the key's fields, in the order of ``meterline_event_keys``).
    A column of the rows is a slice of ``values``; the rows of a group are picked out of each
    column, and added up by ``sum`` (in C): integers stay exact, and a sum past 64 bits fails
    the write when bound (`OverflowError`). A batch is often of one group (one scope's events).
    """
    columns = [values[at::WIDTH] for at in range(WIDTH)]
    keys = list(zip(columns[HOUR_AT], columns[KEY_ID_AT], strict=True))
    first = keys[0]
    groups: dict[tuple[Any, ...], list[int] | None]
    if keys.count(first) == len(keys):
        groups = {first: None}  # every row
    else:
        groups = {}
        for index, key in enumerate(keys):
            rows = groups.get(key)
            if rows is None:
                groups[key] = [index]
            else:
                rows.append(index)
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for (hour, key_id), rows in groups.items():
        operation, status, provider, model, _, _, dims = fields[key_id]
        picked: Sequence[Sequence[Any]]
        if rows is None:
            picked = columns
        elif len(rows) == 1:
            (row,) = rows
            picked = [(column[row],) for column in columns]
        else:
            pick = itemgetter(*rows)
            picked = [pick(column) for column in columns]
        measured = picked[MEASURED]
        picos = picked[PICO_AT]
        count = len(measured)
        unmeasured = unpriced = 0
        if operation not in NOT_MODEL_CALLS:
            unmeasured = count - sum(measured)
            if None in picos:
                unpriced = sum(1 for flag, pico in zip(measured, picos, strict=True) if flag and pico is None)
        latency = sum(picked[LATENCY_AT])
        if math.isnan(latency):  # some latencies are missing (NaN in the rows)
            latency = sum(value for value in picked[LATENCY_AT] if not math.isnan(value))
        total = [
            count,
            unmeasured,
            unpriced,
            *(sum(picked[at]) for at in USAGE_AT),  # zeros when unmeasured
            sum(filter(None, picos)),  # None when unpriced
            float(latency),
            sum(picked[SAVED_AT]),
        ]
        # The key as stored: '' for a missing provider or model. Several keys (request model,
        # price version; a missing provider and '') land on one roll-up row.
        rollup_key = (hour, operation, status, provider or "", model or "", dims)
        merged = sums.get(rollup_key)
        if merged is None:
            sums[rollup_key] = total
        else:
            for i, value in enumerate(total):
                merged[i] += value
    return sums


def drop_dims(sums: Mapping[tuple[Any, ...], list[Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """Sums per roll-up key added up over the dimensions (the key's last part)."""
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for key, values in sums.items():
        total = merged.get(key[:-1])
        if total is None:
            merged[key[:-1]] = list(values)
        else:
            for i, value in enumerate(values):
                total[i] += value
    return merged
