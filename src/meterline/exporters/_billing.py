"""Billing formats: CloudEvents for OpenMeter, and Stripe meter events.

A format turns one `UsageEvent` into the documents a billing system ingests, always the
same documents for the same event (ids included), so a re-sent batch is deduplicated by
the receiver: OpenMeter deduplicates on CloudEvents ``source`` + ``id``, Stripe on the meter
event ``identifier`` (for at least 24 hours). Money is a decimal string, never a float.
"""

from __future__ import annotations as _annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, Final, Protocol

from meterline._dimensions import DIMENSION_NAME
from meterline._events import NOT_MODEL_CALLS, UsageEvent
from meterline.exceptions import ConfigurationError, ExportError, safe_repr

__all__ = [
    "CLOUDEVENT_TYPE",
    "STRIPE_QUANTITIES",
    "BillingFormat",
    "CloudEvents",
    "Stripe",
    "StripeMeter",
    "cloudevent",
]

CLOUDEVENT_TYPE: Final = "io.meterline.usage.v1"
"""The CloudEvents ``type`` of exported events (a reverse-DNS, versioned name)."""

STRIPE_QUANTITIES: Final = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "file_search_requests",
    "code_execution_requests",
    "cost",
)
"""What a `StripeMeter` can bill: a count of `meterline.Usage` (tokens or server-side tool
calls), or ``cost`` (USD)."""

STRIPE_MAX_DIGITS: Final = 15
"""Stripe rejects meter event values with more significant digits than this."""
STRIPE_MAX_TEXT: Final = 100
"""Longest ``event_name`` and ``identifier`` Stripe accepts."""
STRIPE_MAX_AGE_S: Final = 35 * 86400
"""Stripe takes meter events at most 35 days old…"""
STRIPE_MAX_AHEAD_S: Final = 300
"""…and at most 5 minutes in the future."""
STRIPE_MAX_BATCH: Final = 100
"""Most events per request of Stripe's meter event stream."""

_ROUND: Final = Context(prec=STRIPE_MAX_DIGITS, rounding=ROUND_HALF_EVEN)


def _rfc3339(event: UsageEvent) -> str:
    return event.time.isoformat().replace("+00:00", "Z")


def cloudevent(
    event: UsageEvent,
    *,
    source: str,
    subject_dimension: str | None = None,
    type: str = CLOUDEVENT_TYPE,
) -> dict[str, Any]:
    """One event as a CloudEvents 1.0 structured-mode JSON object (OpenMeter's ingest format).

    ``id`` is the event id, so a re-sent event is deduplicated (``source`` + ``id``); money is
    a decimal string (``data.cost.amount``, USD); ``subject`` is the value of
    ``subject_dimension`` (the billing customer), omitted when the event lacks it. Token
    counts are inclusive, as OpenTelemetry counts them; ``None`` when the usage is unknown.
    ``server_tool_calls`` counts the provider's own tools the call ran (web searches…);
    ``reported_cost`` is what the provider's response said the call cost, if it did.
    """
    usage = event.usage
    data: dict[str, Any] = {
        "operation": event.operation,
        "provider": event.provider,
        "request_model": event.request_model or event.model,
        "response_model": event.model,
        "response_id": event.response_id,
        "status": event.status,
        "input_tokens": None if usage is None else usage.input_tokens,
        "output_tokens": None if usage is None else usage.output_tokens,
        "cache_read_input_tokens": None if usage is None else usage.cache_read_tokens,
        "cache_write_input_tokens": None if usage is None else usage.cache_write_tokens,
        "reasoning_output_tokens": None if usage is None else usage.reasoning_tokens,
        "server_tool_calls": None
        if usage is None
        else {
            "web_search": usage.web_search_requests,
            "web_fetch": usage.web_fetch_requests,
            "file_search": usage.file_search_requests,
            "code_execution": usage.code_execution_requests,
        },
        "service_tier": event.service_tier,
        "batch": event.batch,
        "cost": None
        if event.cost is None
        else {"amount": str(event.cost), "currency": "USD", "source": "local"},
        "reported_cost": None
        if event.reported_cost is None
        else {"amount": str(event.reported_cost), "currency": "USD", "source": "provider"},
        "pricing": None if event.price_version is None else {"catalog_version": event.price_version},
        "latency_ms": event.latency_ms,
        "operation_id": event.operation_id,
        "attempt": event.attempt,
        "dimensions": dict(event.dimensions),
    }
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": type,
        "time": _rfc3339(event),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject_dimension is not None and subject_dimension in event.dimensions:
        document["subject"] = event.dimensions[subject_dimension]
    return document


class BillingFormat(Protocol):
    """How events become documents for a billing endpoint (`CloudEvents`, `Stripe`)."""

    @property
    def name(self) -> str:
        """The format's name (``cloudevents``, ``stripe``)."""
        ...

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of a batch's body."""
        ...

    @property
    def max_batch(self) -> int:
        """Most documents one request may carry."""
        ...

    def render(self, event: UsageEvent) -> list[dict[str, Any]]:
        """The documents of ``event`` (none when it bills nothing), the same at every call.

        Raises:
            ExportError: the event cannot be expressed in this format.
        """
        ...

    def body(self, documents: Sequence[Mapping[str, Any]]) -> bytes:
        """The request body that delivers ``documents`` in one batch."""
        ...


def _check_dimension(name: str | None, argument: str) -> None:
    if name is not None and (type(name) is not str or not DIMENSION_NAME.fullmatch(name)):
        raise ConfigurationError(
            f"{argument}={safe_repr(name)}: expected a dimension name (a lower-case identifier)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudEvents:
    """CloudEvents 1.0, structured JSON: one document per event (tool and cache events included).

    A batch is a JSON array sent as ``application/cloudevents-batch+json``, which
    OpenMeter's ``POST /api/v1/events`` accepts.

    Raises:
        ConfigurationError: on an empty ``source`` or ``type``, or a bad ``subject_dimension``.
    """

    source: str
    """The CloudEvents ``source`` (a URI-reference, stable per producer, e.g. ``//meterline/api``)."""
    subject_dimension: str | None = None
    """The dimension that names the billing customer (``subject``); ``None`` leaves it out."""
    type: str = CLOUDEVENT_TYPE
    """The CloudEvents ``type`` (OpenMeter matches meters on it)."""
    name: str = field(default="cloudevents", init=False)
    content_type: str = field(default="application/cloudevents-batch+json", init=False)
    max_batch: int = field(default=1000, init=False)

    def __post_init__(self) -> None:
        for argument, value in (("source", self.source), ("type", self.type)):
            if type(value) is not str or not value:
                raise ConfigurationError(f"{argument}={safe_repr(value)}: expected a non-empty string")
        _check_dimension(self.subject_dimension, "subject_dimension")

    def render(self, event: UsageEvent) -> list[dict[str, Any]]:
        """The event's one CloudEvent."""
        return [
            cloudevent(event, source=self.source, subject_dimension=self.subject_dimension, type=self.type)
        ]

    def body(self, documents: Sequence[Mapping[str, Any]]) -> bytes:
        """A JSON array of the CloudEvents."""
        return json.dumps(list(documents), separators=(",", ":"), sort_keys=True).encode("utf-8")


def _decimal(value: object, argument: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = Decimal("NaN")
    if isinstance(value, bool | float) or not number.is_finite() or number <= 0:
        raise ConfigurationError(
            f"{argument}={safe_repr(value)}: expected a positive decimal (a Decimal, int or string)"
        )
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class StripeMeter:
    """One Stripe billing meter, and what of each event it bills.

    Examples: ``StripeMeter(event_name="llm_output_tokens", quantity="output_tokens")``;
    ``StripeMeter(event_name="llm_cost_micro_usd", quantity="cost", unit="0.000001")`` bills
    the cost in micro-dollars.

    Raises:
        ConfigurationError: on an empty or over-long ``event_name``, an unknown ``quantity``
            or a ``unit`` that is not a positive decimal.
    """

    event_name: str
    """The meter's event name in Stripe (at most 100 characters)."""
    quantity: str
    """One of `STRIPE_QUANTITIES`."""
    unit: Decimal = Decimal(1)
    """The value sent is the quantity divided by this (for ``cost``: USD per unit billed)."""

    def __post_init__(self) -> None:
        if type(self.event_name) is not str or not 0 < len(self.event_name) <= STRIPE_MAX_TEXT:
            raise ConfigurationError(
                f"event_name={safe_repr(self.event_name)}: "
                f"expected a string of 1 to {STRIPE_MAX_TEXT} characters"
            )
        if self.quantity not in STRIPE_QUANTITIES:
            raise ConfigurationError(
                f"quantity={safe_repr(self.quantity)}: expected one of {', '.join(STRIPE_QUANTITIES)}"
            )
        object.__setattr__(self, "unit", _decimal(self.unit, "unit"))

    def identifier(self, event_id: str) -> str:
        """The Stripe ``identifier`` of this meter's event for ``event_id`` (stable, ≤ 100 characters)."""
        identifier = f"{event_id}:{self.event_name}"
        if len(identifier) <= STRIPE_MAX_TEXT:
            return identifier
        return f"{event_id}:{hashlib.sha256(self.event_name.encode('utf-8')).hexdigest()[:32]}"


def _stripe_value(event: UsageEvent, meter: StripeMeter) -> str | None:
    """The meter's value for ``event`` as a decimal string, or ``None`` when there is nothing to bill."""
    usage = event.usage
    if usage is None:
        return None
    if meter.quantity == "cost":
        if event.cost is None:
            return None
        amount = event.cost
    elif meter.quantity == "total_tokens":
        amount = Decimal(usage.total_tokens)
    else:
        amount = Decimal(getattr(usage, meter.quantity))
    if not amount:
        return None
    value = _ROUND.divide(amount, meter.unit) if meter.unit != 1 or meter.quantity == "cost" else amount
    if value.adjusted() >= STRIPE_MAX_DIGITS:
        raise ExportError(
            f"event {event.id}: {meter.quantity}={amount} is {value} {meter.event_name} units, more than "
            f"Stripe's {STRIPE_MAX_DIGITS} significant digits; bill it in a larger unit"
        )
    if value.adjusted() < -STRIPE_MAX_DIGITS:
        return None  # rounds to nothing in this unit
    text = format(value.normalize(), "f")
    return None if Decimal(text) == 0 else text


@dataclass(frozen=True, slots=True, kw_only=True)
class Stripe:
    """Stripe meter events: one per meter per event with something to bill.

    Each document is ``{"event_name", "identifier", "timestamp", "payload": {<customer_key>:
    <customer>, "value": <decimal string>}}``. The ``identifier`` is ``<event id>:<event
    name>`` (a digest replaces a name too long for Stripe's 100 characters), so every
    re-send of an event is deduplicated. Values have at most 15 significant digits (cost is
    rounded half-even to 15; a count past that is refused). Model calls whose usage is
    unknown, unpriced calls (for a ``cost`` meter), zero quantities, tools and cache lookups
    produce no meter event. A batch is ``{"events": [...]}``, the body of Stripe's
    ``POST /v2/billing/meter_event_stream`` (at most 100 events).

    Raises:
        ConfigurationError: on no meters, two meters with one event name, or a bad dimension or key.
    """

    meters: tuple[StripeMeter, ...]
    """The meters to feed."""
    customer_dimension: str
    """The dimension whose value is the Stripe customer id (e.g. ``customer``)."""
    customer_key: str = "stripe_customer_id"
    """The payload key of the customer (the meter's ``customer_mapping``)."""
    value_key: str = "value"
    """The payload key of the value (the meter's ``value_settings``)."""
    name: str = field(default="stripe", init=False)
    content_type: str = field(default="application/json", init=False)
    max_batch: int = field(default=STRIPE_MAX_BATCH, init=False)

    def __post_init__(self) -> None:
        meters = tuple(self.meters)
        if not meters or not all(isinstance(meter, StripeMeter) for meter in meters):
            raise ConfigurationError(f"meters={safe_repr(self.meters)}: expected one or more StripeMeter")
        names = [meter.event_name for meter in meters]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"meters: event names {names!r} repeat; each meter needs its own")
        object.__setattr__(self, "meters", meters)
        _check_dimension(self.customer_dimension, "customer_dimension")
        for argument, value in (("customer_key", self.customer_key), ("value_key", self.value_key)):
            if type(value) is not str or not value:
                raise ConfigurationError(f"{argument}={safe_repr(value)}: expected a non-empty string")

    def render(self, event: UsageEvent, *, now: float | None = None) -> list[dict[str, Any]]:
        """The event's meter events (one per meter with a non-zero value).

        Args:
            event: The event.
            now: The current time in seconds since the epoch (to check Stripe's time window).

        Raises:
            ExportError: the event bills something but lacks the customer dimension, is
                outside Stripe's time window (35 days old to 5 minutes ahead), or a value
                has more than 15 significant digits.
        """
        if event.operation in NOT_MODEL_CALLS or event.usage is None:
            return []
        values = [
            (meter, value) for meter in self.meters if (value := _stripe_value(event, meter)) is not None
        ]
        if not values:
            return []
        customer = event.dimensions.get(self.customer_dimension)
        if not customer:
            raise ExportError(
                f"event {event.id} has no {self.customer_dimension!r} dimension: Stripe needs the customer "
                f"(record it inside meter.scope({self.customer_dimension}=...))"
            )
        timestamp = event.time_ns // 1_000_000_000
        current = time.time() if now is None else now
        if not current - STRIPE_MAX_AGE_S <= timestamp <= current + STRIPE_MAX_AHEAD_S:
            raise ExportError(
                f"event {event.id} at {_rfc3339(event)} is outside Stripe's window "
                "(at most 35 days old, 5 minutes ahead); export a later --since"
            )
        return [
            {
                "event_name": meter.event_name,
                "identifier": meter.identifier(event.id),
                "timestamp": timestamp,
                "payload": {self.customer_key: customer, self.value_key: value},
            }
            for meter, value in values
        ]

    def body(self, documents: Sequence[Mapping[str, Any]]) -> bytes:
        """``{"events": [...]}``, as Stripe's meter event stream takes them."""
        return json.dumps({"events": list(documents)}, separators=(",", ":"), sort_keys=True).encode("utf-8")
