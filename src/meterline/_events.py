"""The event: one metered happening (a model call, a tool call, a cache lookup), priced once.

An event carries its cost explicitly, as an integer of pico-dollars (`UsageEvent.cost_pico`)
worked out once, where the meter priced it. Live totals, budgets, the ledger and the
exporters all read that integer; ``cost`` is the same amount as a ``Decimal`` of USD.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, TypeVar

from meterline._dimensions import Dimensions, check_size, check_text, where_filters
from meterline._ids import COUNTER_MASK
from meterline._money import pico_of, pico_of_exact, to_usd
from meterline._providers import MAX_TIER_LENGTH, canonical_provider, provider_as_stored
from meterline._reported import MAX_REPORTED_PICO
from meterline._usage import Usage, check_event_tokens
from meterline.exceptions import ConfigurationError, MalformedUsageError

__all__ = [
    "CACHE_OPERATION",
    "MAX_ATTEMPT",
    "MAX_DURATION_MS",
    "NOT_MODEL_CALLS",
    "TOOL_OPERATION",
    "TOOL_SUCCESS",
    "UsageEvent",
    "check_billing",
    "check_call",
    "check_dimensions",
    "check_grouping",
    "check_latency",
    "check_operation_id",
    "check_recorded",
    "check_status",
    "event_filters",
    "finer_cost",
    "recorded_event",
]

TOOL_OPERATION: Final = "execute_tool"
"""The operation of tool events (OpenTelemetry's ``gen_ai.operation.name`` for tool calls)."""
CACHE_OPERATION: Final = "cache"
"""The operation of an application's own response-cache lookups (status ``hit`` or ``miss``)."""
NOT_MODEL_CALLS: Final = frozenset({TOOL_OPERATION, CACHE_OPERATION})
"""Operations that are not model calls: never priced, never unmeasured, never requests."""
TOOL_SUCCESS: Final = frozenset({"success", "completed", "ok"})
"""Tool statuses counted as successes; any other status is a failure."""

_UNSET: Final[Any] = object()
"""``cost`` not written out yet: the event was recorded with its pico-dollars only."""

_T = TypeVar("_T")


def _read_only_fields(cls: type[_T]) -> type[_T]:
    """Make each dataclass field of ``cls`` a read-only property over the slot ``_<name>``.

    ``id`` and ``cost`` are written by hand in the class (they are formatted on first read).
    """
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name not in cls.__dict__:
            setattr(cls, field.name, property(attrgetter(f"_{field.name}"), doc=f"See `{cls.__name__}`."))
    return cls


@_read_only_fields
@dataclass(init=False, eq=True, unsafe_hash=True)
class UsageEvent:
    """One metered happening: a model call, a tool call or a cache lookup.

    Events are immutable values: they compare, hash, copy and pickle by their fields, and
    ``dataclasses.fields``, ``asdict`` and ``replace`` work on them. ``id`` is unique and
    sortable by time, and serves as the idempotency key everywhere an event is stored or sent.

    Each field is a read-only property over a private slot, as in `fractions.Fraction`: the
    meter fills the slots of a new event with plain stores (about 0.3 µs, the largest step of
    ``record()``), where a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` (2 µs; ``bench/bench_core.py``).
    """

    __slots__ = (
        "_attempt",
        "_batch",
        "_cost",
        "_cost_pico",
        "_dimensions",
        "_id",
        "_id_count",
        "_id_high",
        "_latency_ms",
        "_links",
        "_model",
        "_operation",
        "_operation_id",
        "_partial_usage",
        "_price_version",
        "_provider",
        "_reported_cost_pico",
        "_request_model",
        "_response_id",
        "_service_tier",
        "_status",
        "_time_ns",
        "_tokens_saved",
        "_usage",
    )

    id: str
    """Unique event id (32 hex digits of a UUIDv7); the idempotency key."""
    time_ns: int
    """When the event was recorded, in nanoseconds since the Unix epoch (UTC)."""
    operation: str
    """``chat``, ``embeddings``, ``text_completion``, ``generate_content``, ``execute_tool``, ``cache``…"""
    provider: str | None
    """OpenTelemetry provider name (``openai``, ``anthropic``, ``gcp.gemini``…), if known."""
    model: str | None
    """The model that served the call (the dated id from the response when it had one)."""
    request_model: str | None
    """The model the caller asked for, when it differs from ``model``; else ``None``."""
    usage: Usage | None
    """Token usage, or ``None`` when the call's usage is unknown (counted as *unmeasured*)."""
    cost: Decimal | None
    """Cost in USD, or ``None`` when unpriced or unmeasured (never a made-up zero)."""
    price_version: str | None
    """The price data that produced ``cost`` (genai-prices version and override digest)."""
    latency_ms: float | None
    """Duration of the call in milliseconds, if reported."""
    status: str
    """``ok`` or an error status for model calls; ``success``/``failure`` for tools; ``hit``/``miss``."""
    dimensions: Mapping[str, str]
    """Attribution: the dimensions of every active scope merged with the event's tags."""
    operation_id: str | None
    """Groups the retries and fallbacks of one logical call (the same for every attempt)."""
    attempt: int
    """Which attempt of ``operation_id`` this event is (1 for the first)."""
    response_id: str | None
    """The provider's id of the response, when it had one."""
    links: tuple[str, ...]
    """Ids of related events (for a tool event: the model calls that asked for it)."""
    tokens_saved: int
    """For a cache hit: the tokens the application did not have to spend."""
    partial_usage: Usage | None
    """For a call cut before its final usage arrived (a stream that ended early): the usage
    reported until then, a lower bound. ``usage`` is then ``None``: the call is unmeasured,
    never taken as exact. Not kept by the ledger."""
    service_tier: str | None
    """The service tier that served the call, as the provider reported it (OpenAI ``flex``,
    ``priority``, ``default``; Anthropic ``standard``, ``priority``) or the caller gave it;
    ``None`` when neither said. A tier with prices of its own is priced at them."""
    batch: bool
    """The call went through a provider's Batch API, priced at the batch rate (half the
    standard one at OpenAI, Anthropic and Google)."""
    reported_cost: Decimal | None
    """The cost the provider's response stated itself (OpenRouter's ``usage.cost``), in USD,
    kept beside ``cost`` so that a wrong price table shows up; ``None`` when it stated none."""

    def __init__(
        self,
        *,
        id: str,
        time_ns: int,
        operation: str,
        provider: str | None,
        model: str | None,
        request_model: str | None,
        usage: Usage | None,
        cost: Decimal | None,
        price_version: str | None,
        latency_ms: float | None,
        status: str,
        dimensions: Mapping[str, str],
        operation_id: str | None = None,
        attempt: int = 1,
        response_id: str | None = None,
        links: tuple[str, ...] = (),
        tokens_saved: int = 0,
        partial_usage: Usage | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        reported_cost: Decimal | None = None,
    ) -> None:
        self._id = id
        self._id_high = ""
        self._id_count = 0
        self._time_ns = time_ns
        self._operation = operation
        self._provider = provider
        self._model = model
        self._request_model = request_model
        self._usage = usage
        self._cost = cost
        self._cost_pico = None if cost is None else pico_of(cost)
        self._price_version = price_version
        self._latency_ms = latency_ms
        self._status = status
        self._dimensions = dimensions
        self._operation_id = operation_id
        self._attempt = attempt
        self._response_id = response_id
        self._links = links
        self._tokens_saved = tokens_saved
        self._partial_usage = partial_usage
        self._service_tier = service_tier
        self._batch = batch
        self._reported_cost_pico = None if reported_cost is None else pico_of(reported_cost)

    @property  # type: ignore[no-redef]
    def id(self) -> str:
        """Unique event id (32 hex digits of a UUIDv7); the idempotency key."""
        value: str | None = self._id
        if value is None:  # recorded: written out on first read (most events are never asked)
            value = self._id = self._id_high + (self._id_count & COUNTER_MASK).to_bytes(4, "big").hex()
        return value

    @property  # type: ignore[no-redef]
    def cost(self) -> Decimal | None:
        """Cost in USD, or ``None`` when unpriced or unmeasured (never a made-up zero)."""
        value = self._cost
        if value is _UNSET:  # recorded: `cost_pico` as a Decimal, made on first read
            pico = self._cost_pico
            value = self._cost = None if pico is None else to_usd(pico)
        return value

    @property  # type: ignore[no-redef]
    def reported_cost(self) -> Decimal | None:
        """The cost the provider's response stated, in USD (to the pico-dollar), or ``None``."""
        pico = self._reported_cost_pico
        return None if pico is None else to_usd(pico)

    @property
    def reported_cost_pico(self) -> int | None:
        """`reported_cost` in pico-dollars (rounded half to even), or ``None``."""
        pico: int | None = self._reported_cost_pico
        return pico

    @property
    def cost_pico(self) -> int | None:
        """The cost in pico-dollars (1e-12 USD), or ``None`` when unpriced or unmeasured.

        This is the one integer the meter priced: live totals, budgets and the ledger add it
        up. An event built by hand with a finer ``cost`` has it rounded half to even.
        """
        pico: int | None = self._cost_pico
        return pico

    @property
    def time(self) -> datetime:
        """``time_ns`` as an aware UTC ``datetime`` (microsecond precision)."""
        seconds, nanos = divmod(self._time_ns, 1_000_000_000)
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)

    @property
    def model_call(self) -> bool:
        """Whether the event is a model call (not a tool call or a cache lookup)."""
        return self._operation not in NOT_MODEL_CALLS

    @property
    def unmeasured(self) -> bool:
        """A model call whose usage never arrived."""
        return self._usage is None and self._operation not in NOT_MODEL_CALLS

    @property
    def unpriced(self) -> bool:
        """A measured model call that could not be priced."""
        return self._usage is not None and self._cost_pico is None and self._operation not in NOT_MODEL_CALLS

    def __reduce__(self) -> tuple[Callable[[tuple[Any, ...]], UsageEvent], tuple[tuple[Any, ...]]]:
        # Pickled (and copied) by its fields, as the constructor takes them.
        return _unpickle, (tuple(getattr(self, name) for name in _FIELD_NAMES),)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: money as decimal strings, usage as a dict, time as RFC 3339."""
        usage = self._usage
        cost = self.cost
        reported = self.reported_cost
        return {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "time_ns": self._time_ns,
            "operation": self._operation,
            "provider": self._provider,
            "model": self._model,
            "request_model": self._request_model,
            "usage": None if usage is None else usage.to_dict(),
            "cost": None if cost is None else str(cost),
            "price_version": self._price_version,
            "latency_ms": self._latency_ms,
            "status": self._status,
            "dimensions": dict(self._dimensions),
            "operation_id": self._operation_id,
            "attempt": self._attempt,
            "response_id": self._response_id,
            "links": list(self._links),
            "tokens_saved": self._tokens_saved,
            "partial_usage": None if self._partial_usage is None else self._partial_usage.to_dict(),
            "service_tier": self._service_tier,
            "batch": self._batch,
            "reported_cost": None if reported is None else str(reported),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageEvent:
        """Rebuild an event from `to_dict` output.

        Raises:
            MalformedUsageError: when a field is missing or has the wrong type.
        """
        try:
            usage = data["usage"]
            cost = data["cost"]
            dimensions = data.get("dimensions")
            reported = data.get("reported_cost")
            return cls(
                id=str(data["id"]),
                time_ns=int(data["time_ns"]),
                operation=str(data["operation"]),
                provider=data["provider"],
                model=data["model"],
                request_model=data.get("request_model"),
                usage=None if usage is None else Usage.from_dict(usage),
                cost=None if cost is None else Decimal(str(cost)),
                price_version=data.get("price_version"),
                latency_ms=data.get("latency_ms"),
                status=str(data["status"]),
                # A `Dimensions` given (shared by events read together) is kept as it is.
                dimensions=dimensions if type(dimensions) is Dimensions else Dimensions(dimensions or {}),
                operation_id=data.get("operation_id"),
                attempt=int(data.get("attempt", 1)),
                response_id=data.get("response_id"),
                links=tuple(data.get("links") or ()),
                tokens_saved=int(data.get("tokens_saved", 0)),
                partial_usage=_usage_or_none(data.get("partial_usage")),
                service_tier=data.get("service_tier"),
                batch=data.get("batch", False) is True,
                reported_cost=None if reported is None else Decimal(str(reported)),
            )
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise MalformedUsageError(
                "event", dict(data), f"a UsageEvent.to_dict() mapping ({exc!r})"
            ) from exc


def _usage_or_none(data: Any) -> Usage | None:
    return None if data is None else Usage.from_dict(data)


_new_event: Final[Callable[[type[UsageEvent]], Any]] = object.__new__
_FIELD_NAMES: Final = tuple(field.name for field in fields(UsageEvent))


def _unpickle(values: tuple[Any, ...]) -> UsageEvent:
    return UsageEvent(**dict(zip(_FIELD_NAMES, values, strict=True)))


def recorded_event(
    time_ns: int,
    operation: str,
    provider: str | None,
    model: str | None,
    request_model: str | None,
    usage: Usage | None,
    cost_pico: int | None,
    price_version: str | None,
    latency_ms: float | None,
    status: str,
    dimensions: Mapping[str, str],
    operation_id: str | None,
    attempt: int,
    response_id: str | None,
    links: tuple[str, ...],
    tokens_saved: int,
    id_high: str,
    id_count: int,
    partial_usage: Usage | None = None,
    service_tier: str | None = None,
    batch: bool = False,
    reported_cost_pico: int | None = None,
    id: str | None = None,
) -> UsageEvent:
    """The event the meter records: every field as given (checked by the caller), no copying.

    The id is written out on first read from ``id_high`` (the millisecond prefix) and
    ``id_count`` (the counter value the meter drew), unless the event has one already (``id``:
    an event read back from the spool), and ``cost`` from ``cost_pico``.
    """
    event = _new_event(UsageEvent)
    event._id = id
    event._id_high = id_high
    event._id_count = id_count
    event._time_ns = time_ns
    event._operation = operation
    event._provider = provider
    event._model = model
    event._request_model = request_model
    event._usage = usage
    event._cost = _UNSET
    event._cost_pico = cost_pico
    event._price_version = price_version
    event._latency_ms = latency_ms
    event._status = status
    event._dimensions = dimensions
    event._operation_id = operation_id
    event._attempt = attempt
    event._response_id = response_id
    event._links = links
    event._tokens_saved = tokens_saved
    event._partial_usage = partial_usage
    event._service_tier = service_tier
    event._batch = batch
    event._reported_cost_pico = reported_cost_pico
    return event  # type: ignore[no-any-return]


def finer_cost(event: UsageEvent) -> Decimal | None:
    """The event's exact cost when `UsageEvent.cost_pico` rounds it, else ``None``.

    Only an event built by hand (or read back) with a cost finer than a pico-dollar has one:
    the meter prices in whole pico-dollars.
    """
    cost = event._cost
    if cost is _UNSET or cost is None:
        return None
    return cost if pico_of_exact(cost) is None else None


def event_filters(where: Mapping[str, object] | None) -> dict[str, frozenset[object]]:
    """A report's ``where`` as name -> allowed values, as events store them.

    `where_filters`' values, a provider's made canonical (`provider_as_stored`): events keep
    the canonical name, so ``"OpenAI"`` finds ``"openai"`` and ``"gemini"`` ``"gcp.gemini"``.

    Raises:
        ConfigurationError: on a name that is not a lower-case identifier.
    """
    filters = where_filters(where)
    if "provider" in filters:
        filters["provider"] = frozenset(map(provider_as_stored, filters["provider"]))
    return filters


def check_call(model: object, provider: object, operation: object, status: object) -> None:
    """Check the fields that make up a roll-up row's key, the first time the row is needed.

    Raises:
        ConfigurationError: naming the argument and what was expected.
    """
    if model is not None:
        if type(model) is not str:
            raise ConfigurationError(f"model={model!r}: expected a str or None")
        check_text(model, "model")
    canonical_provider(provider)  # type: ignore[arg-type]  # raises ConfigurationError on a bad name
    if type(operation) is not str or not operation:
        raise ConfigurationError(f"operation={operation!r}: expected a non-empty str")
    check_text(operation, "operation")
    check_status(status)


def check_status(status: object) -> None:
    """Raises `ConfigurationError` unless ``status`` is a non-empty str."""
    if type(status) is not str or not status:
        raise ConfigurationError(f"status={status!r}: expected a non-empty str")
    check_text(status, "status")


def check_grouping(attempt: object, operation_id: object, response_id: object, request_model: object) -> None:
    """Check the fields that group attempts and name the response.

    Raises:
        ConfigurationError: naming the argument and what was expected.
    """
    if type(attempt) is not int or not 1 <= attempt <= MAX_ATTEMPT:
        raise ConfigurationError(f"attempt={attempt!r}: expected an int from 1 to {MAX_ATTEMPT}")
    for argument, value in (
        ("request_model", request_model),
        ("operation_id", operation_id),
        ("response_id", response_id),
    ):
        if value is not None:
            if type(value) is not str:
                raise ConfigurationError(f"{argument}={value!r}: expected a str or None")
            check_text(value, argument)


def check_billing(service_tier: object, batch: object) -> None:
    """Check how a call was billed: the service tier (a short name or ``None``) and batch mode.

    Raises:
        ConfigurationError: naming the argument and what was expected.
    """
    if service_tier is not None:
        if type(service_tier) is not str or not 0 < len(service_tier) <= MAX_TIER_LENGTH:
            raise ConfigurationError(
                f"service_tier={service_tier!r}: expected None or a tier name of 1 to {MAX_TIER_LENGTH}"
                " characters ('default', 'flex', 'priority'…)"
            )
        check_text(service_tier, "service_tier")
    if type(batch) is not bool:
        raise ConfigurationError(f"batch={batch!r}: expected True or False")


def check_operation_id(operation_id: object) -> None:
    """Raises `ConfigurationError` unless ``operation_id`` is a str or ``None``."""
    if operation_id is not None:
        if type(operation_id) is not str:
            raise ConfigurationError(f"operation_id={operation_id!r}: expected a str or None")
        check_text(operation_id, "operation_id")


def check_latency(latency_ms: object, argument: str = "latency_ms") -> float:
    """A duration in milliseconds as a float (an int is accepted).

    Raises:
        ConfigurationError: unless it is a number from 0 to `MAX_DURATION_MS` (a year).
    """
    if type(latency_ms) is int and 0 <= latency_ms <= MAX_DURATION_MS:
        latency_ms = float(latency_ms)
    if type(latency_ms) is not float or not 0.0 <= latency_ms <= MAX_DURATION_MS:
        raise ConfigurationError(
            f"{argument}={latency_ms!r}: expected a number of milliseconds from 0 to"
            f" {MAX_DURATION_MS:.0f} (a year)"
        )
    return latency_ms


MAX_DURATION_MS: Final = 365 * 86_400_000.0
"""The longest latency or tool duration accepted, in milliseconds (a year): sums of many stay
far from float overflow, which a value like ``1e303`` would reach at once."""
MAX_ATTEMPT: Final = 2**31 - 1
"""The highest attempt number accepted (what every store's integer column holds with room)."""


_TEXT_FIELDS: Final = (
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "price_version",
    "operation_id",
    "response_id",
    "service_tier",
)


def check_recorded(event: UsageEvent, *, dimensions: bool = True) -> None:
    """Raises a `MeterlineError` unless ``event`` holds only what `Meter.record` accepts.

    For events read back from outside the meter (a spool file, an import): a cost below zero, a
    latency past `MAX_DURATION_MS`, an attempt out of range or text no store can keep is
    refused with a `ConfigurationError`, a usage or partial usage past the token bound with a
    `MalformedUsageError`, each naming the field, as the meter would have refused it.

    Args:
        event: The event to check.
        dimensions: Whether to check its dimensions' text too; ``False`` when the caller has
            checked this very `Dimensions` object already (a spool's events share their
            scope's, checked once each by `check_dimensions`).
    """
    exact = finer_cost(event)  # the cost when finer than its pico-dollars, which are then exact
    pico = event.cost_pico
    if (exact < 0) if exact is not None else (pico is not None and pico < 0):
        raise ConfigurationError(f"cost={event.cost}: expected a cost of at least 0 USD")
    reported = event.reported_cost_pico
    if reported is not None and not 0 <= reported <= MAX_REPORTED_PICO:
        raise ConfigurationError(
            f"reported_cost={event.reported_cost}: expected a cost from 0 to"
            f" {MAX_REPORTED_PICO // 10**12:,} USD"
        )
    if type(event.batch) is not bool:
        raise ConfigurationError(f"batch={event.batch!r}: expected True or False")
    if event.latency_ms is not None:
        check_latency(event.latency_ms)
    if not 1 <= event.attempt <= MAX_ATTEMPT:
        raise ConfigurationError(f"attempt={event.attempt!r}: expected an int from 1 to {MAX_ATTEMPT}")
    for usage in (event.usage, event.partial_usage):
        if usage is not None:
            check_event_tokens(usage)
    if event.tokens_saved < 0:
        raise ConfigurationError(f"tokens_saved={event.tokens_saved!r}: expected an int of at least 0")
    for name in _TEXT_FIELDS:
        value = getattr(event, name)
        if value is not None:
            check_text(value, name)
    if dimensions:
        check_dimensions(event.dimensions)


def check_dimensions(dimensions: Mapping[str, str]) -> None:
    """Raises `ConfigurationError` unless every store can keep ``dimensions``' values, and all of them."""
    for name, value in dimensions.items():
        check_text(value, name)
    check_size(dimensions)
