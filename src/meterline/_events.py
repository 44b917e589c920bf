"""Values the meter hands out: `UsageEvent`, `Totals` and their parts."""

from __future__ import annotations as _annotations

import json as _json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, NoReturn

from meterline._ids import COUNTER_MASK
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, MalformedUsageError

__all__ = [
    "CACHE_OPERATION",
    "DIMENSION_NAME",
    "EMPTY_DIMENSIONS",
    "TOOL_OPERATION",
    "Dimensions",
    "OperationTotals",
    "ToolStats",
    "Totals",
    "UsageEvent",
    "check_names",
    "where_filters",
]

TOOL_OPERATION: Final = "execute_tool"
"""The operation of tool events (OpenTelemetry's ``gen_ai.operation.name`` for tool calls)."""
CACHE_OPERATION: Final = "cache"
"""The operation of an application's own response-cache lookups (status ``hit`` or ``miss``)."""
TOOL_SUCCESS: Final = frozenset({"success", "completed", "ok"})
"""Tool statuses counted as successes; any other status is a failure."""

_ZERO: Final = Decimal(0)


DIMENSION_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A dimension name (and any name used to group or filter): a lower-case identifier.

Names are checked against it before use, and never put in SQL text by the ledgers."""


def check_names(names: Sequence[str], argument: str) -> tuple[str, ...]:
    """Check ``names`` (event fields or dimension names) given as ``argument``.

    Raises:
        ConfigurationError: on a bare string (``by="user"``) or a name that is not a
            lower-case identifier.
    """
    if isinstance(names, str):
        raise ConfigurationError(
            f"{argument}={names!r}: expected a tuple of names, e.g. {argument}=({names!r},)"
        )
    for name in names:
        if type(name) is not str or not DIMENSION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"{argument}: {name!r}: expected an event field or a dimension name "
                "(a lower-case identifier: [a-z_][a-z0-9_]*, at most 63 characters)"
            )
    return tuple(names)


def where_filters(where: Mapping[str, object] | None) -> dict[str, frozenset[object]]:
    """``where`` as name -> allowed values: one value, or any of a set, list or tuple.

    ``None`` matches events without the dimension (or without a provider or model).

    Raises:
        ConfigurationError: on a name that is not a lower-case identifier.
    """
    if not where:
        return {}
    check_names(tuple(where), "where")
    return {
        name: frozenset(value) if isinstance(value, set | frozenset | list | tuple) else frozenset((value,))
        for name, value in where.items()
    }


class Dimensions(dict[str, str]):
    """An event's dimensions: a read-only ``dict`` of str to str.

    Events share their scope's dimensions, so they must not change: every mutating method
    raises ``TypeError``. Being a ``dict``, it serialises with ``json.dumps`` as it is, and it
    hashes, copies and pickles like the value it is.
    """

    __slots__ = ("_json",)

    def json(self) -> str:
        """The dimensions as compact JSON with sorted keys (made once: the value never changes)."""
        try:
            return self._json
        except AttributeError:
            self._json: str = _json.dumps(self, sort_keys=True, separators=(",", ":"))
            return self._json

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an event's dimensions are read-only; copy them with dict(...) to change them")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __copy__(self) -> Dimensions:
        return self

    def __deepcopy__(self, memo: object) -> Dimensions:
        return self

    def __reduce__(self) -> tuple[type[Dimensions], tuple[dict[str, str]]]:
        return Dimensions, (dict(self),)

    def __repr__(self) -> str:
        return f"Dimensions({dict.__repr__(self)})"


EMPTY_DIMENSIONS: Final = Dimensions()


class _Derived:
    """Private state from which an event made on the record path derives ``id`` and ``cost``.

    `Meter.record` captures everything an event is at the moment it is recorded, but leaves
    two fields to be written out on first use: ``id`` (from the millisecond prefix and the
    counter it drew) and ``cost`` (from the usage and the compiled price). Turning them into
    a string and a ``Decimal`` is a third of the record path's work, and many events are
    never asked for either; whoever reads them first (a subscriber, the ledger's writer
    thread, ``==``, ``repr``) gets the value the eager path would have made, once.
    """

    __slots__ = ("_id_count", "_id_high", "_plan")
    _id_count: int
    _id_high: str
    _plan: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEvent(_Derived):
    """One metered happening: a model call, a tool call or a cache lookup.

    Events are immutable. ``id`` is unique and sortable by time, and serves as the
    idempotency key everywhere an event is stored or sent.
    """

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
    operation_id: str | None = None
    """Groups the retries and fallbacks of one logical call (the same for every attempt)."""
    attempt: int = 1
    """Which attempt of ``operation_id`` this event is (1 for the first)."""
    response_id: str | None = None
    """The provider's id of the response, when it had one."""
    links: tuple[str, ...] = ()
    """Ids of related events (for a tool event: the model calls that asked for it)."""
    tokens_saved: int = 0
    """For a cache hit: the tokens the application did not have to spend."""

    if not TYPE_CHECKING:  # a __getattr__ would hide typos in attribute names from type checkers

        def __getattr__(self, name: str) -> Any:
            # Reached only for a field the record path left unset: derive it once, keep it.
            if name == "cost":
                value = self._plan.cost_of(self.usage)
            elif name == "id":
                value = self._id_high + (self._id_count & COUNTER_MASK).to_bytes(4, "big").hex()
            else:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            object.__setattr__(self, name, value)
            return value

    @property
    def time(self) -> datetime:
        """``time_ns`` as an aware UTC ``datetime`` (microsecond precision)."""
        seconds, nanos = divmod(self.time_ns, 1_000_000_000)
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)

    @property
    def unmeasured(self) -> bool:
        """A model call whose usage never arrived."""
        return self.usage is None and self.operation not in (TOOL_OPERATION, CACHE_OPERATION)

    @property
    def unpriced(self) -> bool:
        """A measured model call that could not be priced."""
        return (
            self.usage is not None
            and self.cost is None
            and self.operation not in (TOOL_OPERATION, CACHE_OPERATION)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: money as decimal strings, usage as a dict, time as RFC 3339."""
        return {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "time_ns": self.time_ns,
            "operation": self.operation,
            "provider": self.provider,
            "model": self.model,
            "request_model": self.request_model,
            "usage": None if self.usage is None else self.usage.to_dict(),
            "cost": None if self.cost is None else str(self.cost),
            "price_version": self.price_version,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "dimensions": dict(self.dimensions),
            "operation_id": self.operation_id,
            "attempt": self.attempt,
            "response_id": self.response_id,
            "links": list(self.links),
            "tokens_saved": self.tokens_saved,
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
                dimensions=Dimensions(data.get("dimensions") or {}),
                operation_id=data.get("operation_id"),
                attempt=int(data.get("attempt", 1)),
                response_id=data.get("response_id"),
                links=tuple(data.get("links") or ()),
                tokens_saved=int(data.get("tokens_saved", 0)),
            )
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise MalformedUsageError(
                "event", dict(data), f"a UsageEvent.to_dict() mapping ({exc!r})"
            ) from exc


class _EventBuilder(_Derived):
    """Same slots as `UsageEvent`, mutable: filled on the record path, then re-classed.

    See `meterline._usage.mutable_twin` for why; unlike a twin, it may leave ``id`` and
    ``cost`` unset for `UsageEvent` to derive (see `_Derived`).
    """

    __slots__ = UsageEvent.__slots__


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationTotals:
    """What one operation (``chat``, ``embeddings``…) added up to."""

    calls: int = 0
    """Events of this operation."""
    usage: Usage = field(default_factory=Usage)
    """Sum of the measured usage."""
    cost: Decimal = _ZERO
    """Sum of the priced costs, in USD."""
    unmeasured: int = 0
    """Calls whose usage never arrived (not in ``usage``)."""
    unpriced: int = 0
    """Measured calls that could not be priced (in ``usage``, not in ``cost``)."""
    errors: int = 0
    """Calls whose status was not ``ok``."""
    latency_ms: float = 0.0
    """Sum of the reported latencies, in milliseconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolStats:
    """Statistics of one tool (or tool category)."""

    calls: int = 0
    """Times the tool ran."""
    successes: int = 0
    """Runs whose status was ``success``, ``completed`` or ``ok``."""
    failures: int = 0
    """All other runs."""
    duration_ms: float = 0.0
    """Sum of the reported durations, in milliseconds."""
    input_tokens: int = 0
    """Sum of the tokens the tool reported consuming on input (informational)."""
    output_tokens: int = 0
    """Sum of the tokens the tool reported producing (informational)."""
    linked_calls: int = 0
    """Links to model-call ids recorded with the tool's runs."""
    llm_call_ids: tuple[str, ...] = ()
    """The distinct linked model-call ids, sorted (oldest first; at most the 256 most recent are kept)."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """Everything recorded in a scope (its children included) or in a slice of the meter.

    Tool usage is informational: it is in ``tools`` but never in ``usage`` or ``cost``, so a
    tool's own model calls, recorded with ``record()``, are not counted twice.
    """

    events: int = 0
    """Every event: model calls, tool calls and cache lookups."""
    requests: int = 0
    """Model calls (every operation but ``execute_tool`` and ``cache``)."""
    usage: Usage = field(default_factory=Usage)
    """Sum of the measured usage of the model calls."""
    cost: Decimal = _ZERO
    """Sum of the priced costs, in USD. Check ``unmeasured`` and ``unpriced`` before billing."""
    unmeasured: int = 0
    """Model calls whose usage never arrived: not in ``usage``, never counted as free."""
    unpriced: int = 0
    """Measured model calls with no price: in ``usage``, not in ``cost``."""
    errors: int = 0
    """Model calls whose status was not ``ok``."""
    latency_ms: float = 0.0
    """Sum of the reported latencies of the model calls, in milliseconds."""
    by_operation: Mapping[str, OperationTotals] = field(default_factory=dict)
    """Model calls per operation (``chat``, ``embeddings``…)."""
    tools: Mapping[str, ToolStats] = field(default_factory=dict)
    """Tool statistics per tool name."""
    tool_categories: Mapping[str, ToolStats] = field(default_factory=dict)
    """Tool statistics per tool category."""
    cache_hits: int = 0
    """The application's own cache: lookups that hit."""
    cache_misses: int = 0
    """The application's own cache: lookups that missed."""
    cache_tokens_saved: int = 0
    """Tokens the application's cache hits saved."""

    @property
    def tool_calls(self) -> int:
        """All tool runs."""
        return sum(stats.calls for stats in self.tools.values())

    @property
    def tool_failures(self) -> int:
        """Tool runs that failed."""
        return sum(stats.failures for stats in self.tools.values())

    @property
    def complete(self) -> bool:
        """``True`` when every model call was both measured and priced, so ``cost`` is the whole cost."""
        return self.unmeasured == 0 and self.unpriced == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (money as decimal strings)."""
        return {
            "events": self.events,
            "requests": self.requests,
            "usage": self.usage.to_dict(),
            "total_tokens": self.usage.total_tokens,
            "cost": str(self.cost),
            "unmeasured": self.unmeasured,
            "unpriced": self.unpriced,
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "by_operation": {
                name: {
                    "calls": op.calls,
                    "usage": op.usage.to_dict(),
                    "cost": str(op.cost),
                    "unmeasured": op.unmeasured,
                    "unpriced": op.unpriced,
                    "errors": op.errors,
                    "latency_ms": op.latency_ms,
                }
                for name, op in sorted(self.by_operation.items())
            },
            "tools": {name: _tool_dict(stats) for name, stats in sorted(self.tools.items())},
            "tool_categories": {
                name: _tool_dict(stats) for name, stats in sorted(self.tool_categories.items())
            },
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_tokens_saved": self.cache_tokens_saved,
        }


def _tool_dict(stats: ToolStats) -> dict[str, Any]:
    return {
        "calls": stats.calls,
        "successes": stats.successes,
        "failures": stats.failures,
        "duration_ms": stats.duration_ms,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "linked_calls": stats.linked_calls,
        "llm_call_ids": list(stats.llm_call_ids),
    }


assert tuple(Usage.__dataclass_fields__) == USAGE_FIELDS
