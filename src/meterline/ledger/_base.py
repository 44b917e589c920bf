"""The ledger's contract: what a backend stores, how events become rows, and how to read them back.

A ledger keeps every event a meter records, exactly once (the event id is the key), and
maintains hourly roll-ups in the same transaction, so reports read pre-aggregated rows
instead of scanning events. Backends: SQLite (embedded default) and PostgreSQL.

Money in rows: an event's ``cost`` is stored as an exact decimal string; roll-ups add costs
as integers of 1e-12 USD (pico-dollars), exact for every price with at most six decimals
per million tokens (all published prices), and converted back to ``Decimal`` when read.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any, Final, Literal, Protocol, runtime_checkable

from meterline._events import Dimensions, UsageEvent, _Derived
from meterline._ids import COUNTER_MASK
from meterline._usage import USAGE_FIELDS, Usage

__all__ = [
    "EVENT_COLUMNS",
    "GRANULARITIES",
    "PICO",
    "SCHEMA_VERSION",
    "Granularity",
    "LedgerBackend",
    "LedgerRow",
    "LedgerStats",
    "cost_columns",
    "event_from_row",
    "event_id",
    "event_to_row",
    "hour_of",
    "pico_of",
    "usd_text",
]

SCHEMA_VERSION: Final = 3
"""The schema this meterline writes; a ledger with a newer one is refused (see `LedgerBackend`).

Version 2 dropped the index of the events by hour: no query used it (reports read the
roll-ups), and every stored event paid for it.
"""

PICO: Final = Decimal("1E-12")
_EXACT: Final = Context(prec=4000, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Roll-ups add costs as integers of this many USD."""

Granularity = Literal["hour", "day", "month"]
GRANULARITIES: Final = ("hour", "day", "month")

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
)
"""Columns of the events table, in order (`event_to_row` produces them in this order).

``hour`` is ``time_ns`` floored to the hour, in whole seconds since the epoch (UTC).
``measured`` is 0 for an event whose usage is unknown (its usage columns are then 0).
``cost`` is the exact decimal string or NULL; ``cost_pico`` the same in 1e-12 USD (NULL when
unpriced). ``dimensions`` and ``links`` are JSON (sorted keys). A re-priced event keeps its
previous cost and price version in ``previous_cost`` and ``previous_price_version``, which
are not written from events.
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
    if cost is None:
        return None
    numerator, denominator = cost.as_integer_ratio()  # exact, and cheaper than Decimal arithmetic
    pico, rest = divmod(numerator * 1_000_000_000_000, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and pico % 2):
        pico += 1
    return pico


def _pico_of_atto(atto: int) -> int:
    """An amount of 1e-18 USD in 1e-12 USD, rounded half-even (as `pico_of`)."""
    pico, rest = divmod(atto, 1_000_000)
    if rest > 500_000 or (rest == 500_000 and pico % 2):
        pico += 1
    return pico


_ATTO_PER_USD: Final = 10**18


def usd_text(atto: int) -> str:
    """A non-negative amount of 1e-18 USD as an exact decimal string of USD (``"0.0035"``).

    No trailing zeros and never exponent notation; ``Decimal`` of it is the amount exactly.
    """
    if atto < _ATTO_PER_USD:
        return "0." + str(atto + _ATTO_PER_USD)[1:].rstrip("0") if atto > 0 else "0"
    whole, fraction = divmod(atto, _ATTO_PER_USD)
    return f"{whole}.{fraction:018d}".rstrip("0").rstrip(".")


# Slot readers that raise AttributeError for an unset slot without going through
# `UsageEvent.__getattr__` (which would derive the value, or format an error message).
_PLAN_OF: Final = vars(_Derived)["_plan"].__get__
_ID_HIGH_OF: Final = vars(_Derived)["_id_high"].__get__


def cost_columns(event: UsageEvent) -> tuple[str | None, int | None]:
    """``event``'s cost as stored: the exact decimal string and the same in 1e-12 USD (or two ``None``).

    An event the meter priced with a compiled plan (the common case) gets both from the
    plan's integer of 1e-18 USD, without making the ``Decimal`` its ``cost`` field would be
    (this runs for every event a ledger stores: `usd_text` and `pico_of` are inlined for
    costs under a dollar).
    """
    try:
        plan = _PLAN_OF(event)
    except AttributeError:
        cost = event.cost
        return (None, None) if cost is None else (str(cost), pico_of(cost))
    atto = plan.atto(event.usage)
    if not 0 < atto < _ATTO_PER_USD:
        if atto < 0:  # never from published prices; kept exact all the same
            cost = event.cost
            return str(cost), pico_of(cost)
        return usd_text(atto), _pico_of_atto(atto)
    pico, rest = divmod(atto, 1_000_000)
    if rest >= 500_000 and (rest > 500_000 or pico % 2):  # half to even, as `pico_of`
        pico += 1
    return "0." + str(atto + _ATTO_PER_USD)[1:].rstrip("0"), pico


def event_id(event: UsageEvent) -> str:
    """``event.id``, written out without storing it on the event (the same string ``event.id`` gives)."""
    try:
        high: str = _ID_HIGH_OF(event)
        return high + (event._id_count & COUNTER_MASK).to_bytes(4, "big").hex()
    except AttributeError:  # made by the constructor: the id is a field
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
            )
        ),
        cost,
        pico,
        event.price_version,
        event.latency_ms,
        dimensions.json()
        if type(dimensions) is Dimensions
        else json.dumps(dict(dimensions), sort_keys=True, separators=(",", ":")),
        event.operation_id,
        event.attempt,
        event.response_id,
        "[]" if not links else json.dumps(list(links), separators=(",", ":")),
        event.tokens_saved,
    )


_NO_USAGE: Final = (0,) * len(USAGE_FIELDS)


def event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    """Rebuild the `UsageEvent` a row stores (the inverse of `event_to_row`)."""
    usage = Usage(**{name: int(row[name]) for name in USAGE_FIELDS}) if row["measured"] else None
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
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """One group of a ledger report: the group's values and what its events add up to."""

    key: tuple[str | None, ...]
    """The values of the ``by`` dimensions, in order (``None`` where an event lacks one)."""
    period: datetime | None
    """Start of the hour, day or month (UTC) with a granularity; ``None`` without one."""
    events: int = 0
    """Events in the group."""
    unmeasured: int = 0
    """Model calls whose usage never arrived."""
    unpriced: int = 0
    """Measured model calls with no price."""
    usage: Usage = field(default_factory=Usage)
    """Sum of the measured usage."""
    cost: Decimal = Decimal(0)
    """Sum of the priced costs, in USD."""
    latency_ms: float = 0.0
    """Sum of the reported latencies, in milliseconds."""
    tokens_saved: int = 0
    """Tokens saved by the application's cache hits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerStats:
    """What a ledger holds."""

    url: str
    """Where the ledger is (password removed)."""
    schema_version: int
    """The schema version of the store."""
    events: int
    """Events stored."""
    first_time: datetime | None
    """Time of the oldest event."""
    last_time: datetime | None
    """Time of the newest event."""
    rollup_rows: int
    """Rows of the hourly roll-up."""


@runtime_checkable
class LedgerBackend(Protocol):
    """A durable store of events. Implementations: SQLite and PostgreSQL.

    Opening a backend applies forward migrations up to `SCHEMA_VERSION`, and refuses (with
    `meterline.LedgerError`) a store whose schema is newer than this meterline knows.
    Every method may raise `meterline.LedgerError`, which wraps the driver's error.
    """

    url: str

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once (the id is the key).

        Events already stored are skipped, and the roll-ups count only the new ones.

        Returns:
            How many events were new.
        """
        ...

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity | None = None,
    ) -> list[LedgerRow]:
        """Add up the stored events from the roll-ups (never by scanning events).

        ``by`` and ``where`` take event fields (operation, status, provider, model) and
        dimension names, which must be identifiers (never put in SQL text). ``since`` is
        inclusive, ``until`` exclusive, both rounded down to the hour (the roll-ups' grain).
        Rows come sorted by cost, highest first.
        """
        ...

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """Stream the stored events in id (time) order, in constant memory.

        ``after_id`` resumes after a cursor (the last id a consumer handled).
        """
        ...

    def prune(self, before: datetime) -> int:
        """Delete events (and roll-up rows) older than ``before``; return how many events went."""
        ...

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """Set new (id, cost, price_version) on stored events, keeping the previous ones for audit.

        The roll-ups are corrected by the difference. Returns how many events changed.
        """
        ...

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored."""
        ...

    def close(self) -> None:
        """Release the connection(s). Idempotent."""
        ...


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
