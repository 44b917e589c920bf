"""Totals: what a set of events adds up to, and the running sums behind it.

`Totals` (with `OperationTotals` and `ToolStats`) is the value users read from a scope, from
`Meter.totals` and from snapshots. `Counts` are running sums and what adds to them, kept in
the slots of a `Sums` (a read's rows, an entry's totals) or of a live roll-up row
(`meterline._row.Row`); `totals_of` folds rows of sums into a `Totals`.
"""

from __future__ import annotations as _annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION, TOOL_SUCCESS, UsageEvent
from meterline._money import to_usd
from meterline._usage import UNIT_FIELDS, USAGE_FIELDS, Usage, new_usage

__all__ = [
    "MAX_LINKS",
    "Counts",
    "FrozenSums",
    "OperationTotals",
    "Sums",
    "ToolStats",
    "Totals",
    "merge_into",
    "totals_of",
]

_ZERO: Final = Decimal(0)

MAX_LINKS: Final = 256
"""Linked event ids kept per accumulator, the most recent (greatest) ones; the count of links stays exact."""

COUNTERS: Final = (
    "events",
    "unmeasured",
    "unpriced",
    *USAGE_FIELDS,
    "cost_pico",
    "tokens_saved",
    "link_count",
    "latency_ns",
)
"""The integer counters of `Sums`, in the order snapshots write them."""
_COUNTS: Final = operator.attrgetter(*COUNTERS)


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


FrozenSums = tuple[Any, ...]
"""`Sums` kept as a tuple: its `COUNTERS` in order, then its linked ids (a ``frozenset``) or ``None``.

How a meter keeps the sums of the rows of scopes that have ended (`meterline._rollup`), a
hundred thousand and more in a long-running service: CPython's cyclic garbage collector stops
tracking a tuple of numbers once it has seen it, while it walks every `Sums` object and each
of its counters at every full collection, which stops every thread of the application. With
100,000 rows a full collection took 76 ms more than without them as `Sums`, 30 ms more as
tuples just after a scope ended and 14 ms once nothing had changed (bench/bench_forget.py).
Adding to a tuple makes a new one: 0.9 µs against 0.4 µs for `Sums.merge`.
"""


class Counts:
    """Running sums of events: counts, unmeasured and unpriced calls, usage, cost, latency.

    The cost is in pico-dollars and the latency in integer nanoseconds: sums of floats depend
    on their order, and totals must not. Not thread-safe by itself: the meter updates sums
    under its lock.

    The counters and what adds to them, whichever class stores them in its slots: `Sums`, and
    a live roll-up row (`meterline._row.Row`), which is also the list of its pending shares and
    so cannot take `Sums`'s slots (no class has both a list's layout and another's slots).
    """

    if not TYPE_CHECKING:  # no instance dict for the subclasses, whose slots mypy does not see here
        __slots__ = ()
    events: int
    unmeasured: int
    unpriced: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int
    audio_input_tokens: int
    audio_output_tokens: int
    web_search_requests: int
    web_fetch_requests: int
    file_search_requests: int
    code_execution_requests: int
    cost_pico: int
    tokens_saved: int
    link_count: int
    latency_ns: int
    links: set[str] | None

    def zero(self) -> None:
        """Set every counter to 0, and the linked ids to none."""
        self.events = 0
        self.unmeasured = 0
        self.unpriced = 0
        self.input_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.cache_write_1h_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.audio_input_tokens = 0
        self.audio_output_tokens = 0
        self.web_search_requests = 0
        self.web_fetch_requests = 0
        self.file_search_requests = 0
        self.code_execution_requests = 0
        self.cost_pico = 0
        self.tokens_saved = 0
        self.link_count = 0
        self.latency_ns = 0
        self.links = None

    def add_usage(self, usage: Usage) -> None:
        """Add every usage field of ``usage``."""
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.add_rare_usage(usage)

    def add_rare_usage(self, usage: Usage) -> None:
        """Add the usage fields most calls leave at zero (all but input, output and cache reads)."""
        if usage.has_units:
            self.web_search_requests += usage.web_search_requests
            self.web_fetch_requests += usage.web_fetch_requests
            self.file_search_requests += usage.file_search_requests
            self.code_execution_requests += usage.code_execution_requests
        if usage.cache_write_tokens:
            self.cache_write_tokens += usage.cache_write_tokens
            self.cache_write_1h_tokens += usage.cache_write_1h_tokens
        if usage.reasoning_tokens:
            self.reasoning_tokens += usage.reasoning_tokens
        if usage.audio_input_tokens:
            self.audio_input_tokens += usage.audio_input_tokens
        if usage.audio_output_tokens:
            self.audio_output_tokens += usage.audio_output_tokens

    def add_event(self, event: UsageEvent) -> None:
        """Add one tool call or cache lookup (never priced, never unmeasured)."""
        self.events += 1
        usage = event.usage
        if usage is not None:
            self.add_usage(usage)
        latency_ms = event.latency_ms
        if latency_ms is not None:
            self.latency_ns += int(latency_ms * 1e6)
        if event.links:
            self.add_links(event.links)
        self.tokens_saved += event.tokens_saved

    def add_links(self, links: tuple[str, ...]) -> None:
        """Remember linked event ids: the `MAX_LINKS` greatest distinct ones (event ids sort by time)."""
        kept = self.links
        if kept is None:
            kept = self.links = set()
        self.link_count += len(links)
        kept.update(links)
        if len(kept) > MAX_LINKS:
            self.links = set(sorted(kept)[-MAX_LINKS:])

    def merge(self, other: Counts) -> None:
        """Add everything ``other`` holds.

        Each of `COUNTERS` by name, not in a loop over them: a scope's exit merges each of its
        rows two or three times, and ``setattr``/``getattr`` by name took 1.8 µs a merge, these
        0.4 µs (a test checks that every counter is here).
        """
        self.events += other.events
        self.unmeasured += other.unmeasured
        self.unpriced += other.unpriced
        self.input_tokens += other.input_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_write_1h_tokens += other.cache_write_1h_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.audio_input_tokens += other.audio_input_tokens
        self.audio_output_tokens += other.audio_output_tokens
        self.web_search_requests += other.web_search_requests
        self.web_fetch_requests += other.web_fetch_requests
        self.file_search_requests += other.file_search_requests
        self.code_execution_requests += other.code_execution_requests
        self.cost_pico += other.cost_pico
        self.tokens_saved += other.tokens_saved
        self.link_count += other.link_count
        self.latency_ns += other.latency_ns
        if other.links:
            count = self.link_count
            self.add_links(tuple(other.links))
            self.link_count = count  # link_count was already merged above

    def frozen(self) -> FrozenSums:
        """These sums as a `FrozenSums` tuple."""
        return (*_COUNTS(self), None if not self.links else frozenset(self.links))

    def added_to(self, stored: FrozenSums) -> FrozenSums:
        """``stored`` with these sums added, as a new `FrozenSums`."""
        if self.links or stored[-1] is not None:  # the linked ids are merged as `merge` does
            total = Sums.thawed(stored)
            total.merge(self)
            return total.frozen()
        return (*map(operator.add, _COUNTS(self), stored), None)  # map stops at the counters

    def detached(self) -> Sums:
        """These sums as a new `Sums`: adding to either leaves the other as it is.

        Not ``copy``: a `Row` is also a list, whose ``copy`` copies its pending shares.
        """
        clone = Sums()
        clone.merge(self)
        return clone

    def usage(self) -> Usage:
        """The usage sum as a `Usage`."""
        return new_usage(
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
            self.web_search_requests,
            self.web_fetch_requests,
            self.file_search_requests,
            self.code_execution_requests,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready counters (the cost as a string of pico-dollars, exact)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        data["cost_pico"] = str(self.cost_pico)
        data["links"] = sorted(self.links or ())
        return data


class Sums(Counts):
    """Running sums of events (`Counts`) in slots of their own: a read's copy, an entry's totals."""

    __slots__ = (*COUNTERS, "links")

    def __init__(self) -> None:
        self.zero()

    @classmethod
    def thawed(cls, stored: FrozenSums) -> Sums:
        """The `Sums` of a `FrozenSums` tuple (a new object: adding to it leaves ``stored`` as it is)."""
        sums = cls()
        (
            sums.events,
            sums.unmeasured,
            sums.unpriced,
            sums.input_tokens,
            sums.cache_read_tokens,
            sums.cache_write_tokens,
            sums.cache_write_1h_tokens,
            sums.output_tokens,
            sums.reasoning_tokens,
            sums.audio_input_tokens,
            sums.audio_output_tokens,
            sums.web_search_requests,
            sums.web_fetch_requests,
            sums.file_search_requests,
            sums.code_execution_requests,
            sums.cost_pico,
            sums.tokens_saved,
            sums.link_count,
            sums.latency_ns,
            links,
        ) = stored
        sums.links = None if links is None else set(links)
        return sums

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sums:
        """Inverse of `to_json` (validation is the caller's job).

        A snapshot written before billable units existed has none: they are read as zero.
        """
        sums = cls()
        for name in COUNTERS:
            setattr(sums, name, int(data[name] if name not in UNIT_FIELDS else data.get(name, 0)))
        links = data.get("links") or []
        sums.links = {str(link) for link in links} or None
        return sums


class _ToolSums:
    __slots__ = ("failures", "successes", "sums")

    def __init__(self) -> None:
        self.sums = Sums()
        self.successes = 0
        self.failures = 0

    def add(self, status: str, sums: Sums) -> None:
        self.sums.merge(sums)
        if status in TOOL_SUCCESS:
            self.successes += sums.events
        else:
            self.failures += sums.events

    def stats(self) -> ToolStats:
        sums = self.sums
        return ToolStats(
            calls=sums.events,
            successes=self.successes,
            failures=self.failures,
            duration_ms=sums.latency_ns / 1e6,
            input_tokens=sums.input_tokens,
            output_tokens=sums.output_tokens,
            linked_calls=sums.link_count,
            llm_call_ids=tuple(sorted(sums.links or ())),
        )


def merge_into(target: dict[Any, Sums], key: Any, sums: Counts) -> None:
    """Add ``sums`` into ``target[key]`` (a copy of them when the key is new)."""
    existing = target.get(key)
    if existing is None:
        target[key] = sums.detached()
    else:
        existing.merge(sums)


def totals_of(rows: Iterable[tuple[str, str, str | None, str | None, Sums]]) -> Totals:
    """Fold ``(operation, status, tool, tool_category, sums)`` rows into a `Totals`."""
    model_calls = Sums()
    errors = 0
    operations: dict[str, tuple[Sums, list[int]]] = {}
    tools: dict[str, _ToolSums] = {}
    categories: dict[str, _ToolSums] = {}
    hits = misses = saved = events = 0
    for operation, status, tool, category, sums in rows:
        events += sums.events
        if operation == TOOL_OPERATION:
            tools.setdefault(tool or "", _ToolSums()).add(status, sums)
            if category:
                categories.setdefault(category, _ToolSums()).add(status, sums)
        elif operation == CACHE_OPERATION:
            if status == "hit":
                hits += sums.events
            else:
                misses += sums.events
            saved += sums.tokens_saved
        else:
            model_calls.merge(sums)
            op_sums, op_errors = operations.setdefault(operation, (Sums(), [0]))
            op_sums.merge(sums)
            if status != "ok":
                errors += sums.events
                op_errors[0] += sums.events
    return Totals(
        events=events,
        requests=model_calls.events,
        usage=model_calls.usage(),
        cost=to_usd(model_calls.cost_pico),
        unmeasured=model_calls.unmeasured,
        unpriced=model_calls.unpriced,
        errors=errors,
        latency_ms=model_calls.latency_ns / 1e6,
        by_operation={
            name: OperationTotals(
                calls=sums.events,
                usage=sums.usage(),
                cost=to_usd(sums.cost_pico),
                unmeasured=sums.unmeasured,
                unpriced=sums.unpriced,
                errors=op_errors[0],
                latency_ms=sums.latency_ns / 1e6,
            )
            for name, (sums, op_errors) in operations.items()
        },
        tools={name: tool_sums.stats() for name, tool_sums in tools.items()},
        tool_categories={name: tool_sums.stats() for name, tool_sums in categories.items()},
        cache_hits=hits,
        cache_misses=misses,
        cache_tokens_saved=saved,
    )
