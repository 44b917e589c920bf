"""The one mapping between an event and a ledger row, and back; the roll-ups' columns.

Money in rows: an event's ``cost`` is stored as an exact decimal string; roll-ups add costs
as integers of 1e-12 USD (pico-dollars), exact for every price with at most six decimals
per million tokens (all published prices), and converted back to ``Decimal`` when read.
Times are integer nanoseconds since the Unix epoch; roll-ups are keyed by the hour.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any, Final

from meterline._dimensions import dimensions_json
from meterline._events import UsageEvent, finer_cost
from meterline._money import pico_of as money_pico_of
from meterline._money import to_usd, usd_text
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import LedgerError, MeterlineError

__all__ = [
    "EVENT_COLUMNS",
    "PICO",
    "ROLLUP_SUMS",
    "cost_columns",
    "dimensions_of",
    "event_from_row",
    "event_id",
    "event_json_line",
    "event_to_row",
    "hour_of",
    "iso_time",
    "json_or_null",
    "json_pages",
    "json_string",
    "nanoseconds",
    "pico_of",
    "usd_text",
    "utc",
]

PICO: Final = Decimal("1E-12")
_EXACT: Final = Context(prec=4000, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Roll-ups add costs as integers of this many USD."""

EVENT_COLUMNS: Final = (
    "id",
    "time_ns",
    "hour",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "measured",
    *USAGE_FIELDS,
    "cost",
    "cost_pico",
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
"""Columns of the events table, in order (`event_to_row` produces them in this order).

``hour`` is ``time_ns`` floored to the hour, in whole seconds since the epoch (UTC).
``measured`` is 0 for an event whose usage is unknown (its usage columns are then 0).
``cost`` is the exact decimal string or NULL; ``cost_pico`` the same in 1e-12 USD (NULL when
unpriced). ``dimensions`` and ``links`` are JSON (sorted keys). A re-priced event keeps its
previous cost and price version in ``previous_cost`` and ``previous_price_version``, which
are not written from events. ``batch`` is 0 or 1; ``reported_cost_pico`` the cost the
provider's response stated, in 1e-12 USD (NULL when it stated none).
"""

ROLLUP_SUMS: Final = (
    "events",
    "unmeasured",
    "unpriced",
    *USAGE_FIELDS,
    "cost_pico",
    "latency_ms",
    "tokens_saved",
)
"""Columns the hourly roll-up adds up, keyed by (hour, operation, status, provider, model, dimensions)."""


def hour_of(time_ns: int) -> int:
    """``time_ns`` floored to the hour, in seconds since the Unix epoch."""
    seconds = time_ns // 1_000_000_000
    return seconds - seconds % 3600


def pico_of(cost: Decimal | None) -> int | None:
    """``cost`` in integers of 1e-12 USD, rounded half-even past that precision (``None`` stays ``None``)."""
    return None if cost is None else money_pico_of(cost)


def cost_columns(event: UsageEvent) -> tuple[str | None, int | None]:
    """``event``'s cost as stored: the exact decimal string and the same in pico-dollars (or two ``None``).

    Both come from the integer the meter priced the event at (`UsageEvent.cost_pico`), without
    making the ``Decimal`` its ``cost`` field would be; only an event built by hand with a
    cost finer than a pico-dollar keeps its own text.
    """
    pico = event.cost_pico
    if pico is None:
        return None, None
    finer = finer_cost(event)
    if finer is not None or pico < 0:
        return str(event.cost), pico
    return usd_text(pico), pico


def event_id(event: UsageEvent) -> str:
    """``event.id`` (the ledger's key)."""
    return event.id


def event_to_row(event: UsageEvent) -> tuple[Any, ...]:
    """The row of `EVENT_COLUMNS` that stores ``event``. Prompt and completion text are never stored.

    The dimensions' JSON is made once per scope (every event of a scope shares one
    `Dimensions`), and an event priced by a compiled plan gets its cost columns by integer
    arithmetic (`cost_columns`).
    """
    usage = event.usage
    cost, pico = cost_columns(event)
    dimensions = event.dimensions
    links = event.links
    return (
        event_id(event),
        event.time_ns,
        hour_of(event.time_ns),
        event.operation,
        event.status,
        event.provider,
        event.model,
        event.request_model,
        0 if usage is None else 1,
        *(
            _NO_USAGE
            if usage is None
            else (
                usage.input_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.cache_write_1h_tokens,
                usage.output_tokens,
                usage.reasoning_tokens,
                usage.audio_input_tokens,
                usage.audio_output_tokens,
                usage.web_search_requests,
                usage.web_fetch_requests,
                usage.file_search_requests,
                usage.code_execution_requests,
            )
        ),
        cost,
        pico,
        event.price_version,
        event.latency_ms,
        dimensions_json(dimensions),
        event.operation_id,
        event.attempt,
        event.response_id,
        "[]" if not links else json.dumps(list(links), separators=(",", ":")),
        event.tokens_saved,
        event.service_tier,
        1 if event.batch else 0,
        event.reported_cost_pico,
    )


_NO_USAGE: Final = (0,) * len(USAGE_FIELDS)


def event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    """Rebuild the `UsageEvent` a row stores (the inverse of `event_to_row`).

    Raises:
        LedgerError: the row cannot be an event (a damaged file, a row changed by hand),
            naming its id.
    """
    try:
        return _event_from_row(row)
    except (ValueError, TypeError, KeyError, MeterlineError) as exc:  # json, int(), the event's checks
        raise LedgerError(f"the stored event {row.get('id')!r} is unreadable: {exc}") from exc


def _event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    usage = Usage(**{name: int(row[name]) for name in USAGE_FIELDS}) if row["measured"] else None
    reported = row["reported_cost_pico"]
    return UsageEvent.from_dict(
        {
            "id": row["id"],
            "time_ns": int(row["time_ns"]),
            "operation": row["operation"],
            "provider": row["provider"],
            "model": row["model"],
            "request_model": row["request_model"],
            "usage": None if usage is None else usage.to_dict(),
            "cost": row["cost"],
            "price_version": row["price_version"],
            "latency_ms": row["latency_ms"],
            "status": row["status"],
            "dimensions": json.loads(row["dimensions"]),
            "operation_id": row["operation_id"],
            "attempt": int(row["attempt"]),
            "response_id": row["response_id"],
            "links": json.loads(row["links"]),
            "tokens_saved": int(row["tokens_saved"]),
            "service_tier": row["service_tier"],
            "batch": bool(row["batch"]),
            "reported_cost": None if reported is None else str(to_usd(int(reported))),
        }
    )


_AT: Final = {name: index for index, name in enumerate(EVENT_COLUMNS)}
_USAGE_JSON: Final = "{" + ",".join(f'"{name}":%d' for name in sorted(USAGE_FIELDS)) + "}"
_USAGE_AT: Final = tuple(_AT[name] for name in sorted(USAGE_FIELDS))
json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
"""A string as JSON, exactly as ``json.dumps`` writes it (ASCII, escaped)."""


def event_json_line(row: Sequence[Any]) -> str:
    """The JSON line of the event a raw row (`EVENT_COLUMNS` order, dimensions as JSON) stores.

    Exactly ``json.dumps(event_from_row(row).to_dict(), separators=(",", ":"), sort_keys=True)``
    and a newline (a test checks it on every kind of event), written from the row's columns
    without a `UsageEvent`: keys in sorted order, strings through the json module's own
    escaping, the dimensions' JSON as the ledger made it (`Dimensions.json`'s format). For
    bulk export of rows the ledger checked when it stored them.
    """
    time_ns = row[_TIME_NS]
    cost = row[_COST]
    latency = row[_LATENCY]
    links = row[_LINKS]
    reported = row[_REPORTED]
    return (
        f'{{"attempt":{row[_ATTEMPT]},"batch":{"true" if row[_BATCH] else "false"}'
        f',"cost":{"null" if cost is None else json_string(str(Decimal(cost)))}'
        f',"dimensions":{row[_DIMENSIONS]},"id":{json_string(row[_ID])}'
        f',"latency_ms":{"null" if latency is None else float.__repr__(float(latency))}'
        f',"links":{links if links == "[]" else json.dumps(json.loads(links), separators=(",", ":"))}'
        f',"model":{json_or_null(row[_MODEL])},"operation":{json_string(row[_OPERATION])}'
        f',"operation_id":{json_or_null(row[_OPERATION_ID])},"partial_usage":null'
        f',"price_version":{json_or_null(row[_PRICE_VERSION])},"provider":{json_or_null(row[_PROVIDER])}'
        f',"reported_cost":{"null" if reported is None else json_string(str(to_usd(int(reported))))}'
        f',"request_model":{json_or_null(row[_REQUEST_MODEL])},"response_id":{json_or_null(row[_RESPONSE_ID])}'
        f',"service_tier":{json_or_null(row[_TIER])}'
        f',"status":{json_string(row[_STATUS])},"time":"{iso_time(time_ns)}"'
        f',"time_ns":{time_ns},"tokens_saved":{row[_TOKENS_SAVED]}'
        f',"usage":{_USAGE_JSON % tuple(row[at] for at in _USAGE_AT) if row[_MEASURED] else "null"}}}\n'
    )


def json_pages(pages: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """`event_json_line` of each row of ``pages`` (raw rows), one string per page."""
    for page in pages:
        yield "".join([event_json_line(row) for row in page])


def json_or_null(value: str | None) -> str:
    """``value`` as JSON: `json_string`, or ``null``."""
    return "null" if value is None else json_string(value)


def iso_time(time_ns: int) -> str:
    """A time in nanoseconds as `UsageEvent.to_dict` writes it: ``2026-01-01T00:00:15.552000Z``."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
    return f"{moment.isoformat()[:-6]}Z"


_ID, _TIME_NS, _OPERATION, _STATUS, _PROVIDER, _MODEL, _REQUEST_MODEL = (
    _AT[name] for name in ("id", "time_ns", "operation", "status", "provider", "model", "request_model")
)
_MEASURED, _COST, _PRICE_VERSION, _LATENCY, _DIMENSIONS = (
    _AT[name] for name in ("measured", "cost", "price_version", "latency_ms", "dimensions")
)
_OPERATION_ID, _ATTEMPT, _RESPONSE_ID, _LINKS, _TOKENS_SAVED = (
    _AT[name] for name in ("operation_id", "attempt", "response_id", "links", "tokens_saved")
)
_TIER, _BATCH, _REPORTED = (_AT[name] for name in ("service_tier", "batch", "reported_cost_pico"))


def dimensions_of(text: str) -> dict[str, Any]:
    """The dimensions a row's JSON text holds.

    Raises:
        LedgerError: the text is not a JSON object (a damaged file, a row changed by hand).
    """
    try:
        dims = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"stored dimensions {text!r:.80} are unreadable: {exc}") from exc
    if type(dims) is not dict:
        raise LedgerError(f"stored dimensions {text!r:.80} are unreadable: not a JSON object")
    return dims


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def nanoseconds(moment: datetime) -> int:
    """``moment`` in nanoseconds since the Unix epoch (a naive datetime is UTC)."""
    return (utc(moment) - _EPOCH) // _MICROSECOND * 1000


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
