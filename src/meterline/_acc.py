"""Mutable accumulators behind live totals, and how they become `Totals` and snapshots."""

from __future__ import annotations as _annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from meterline._events import (
    CACHE_OPERATION,
    TOOL_OPERATION,
    TOOL_SUCCESS,
    OperationTotals,
    ToolStats,
    Totals,
)
from meterline._pricing import atto_to_decimal
from meterline._usage import USAGE_FIELDS, Usage, _new_usage

__all__ = ["MAX_LINKS", "Acc", "totals_from_rows"]

MAX_LINKS: Final = 256
"""Linked event ids kept per accumulator, the most recent (greatest) ones; the count of links stays exact."""

_COUNTERS: Final = (
    "events",
    "unmeasured",
    "unpriced",
    *USAGE_FIELDS,
    "cost_atto",
    "tokens_saved",
    "link_count",
    "latency_ns",
)


_SUMMED: Final = tuple(name for name in _COUNTERS if name != "cost_atto")


class Acc:
    """Running sums for one row: events, unmeasured/unpriced counts, usage, cost, latency.

    Not thread-safe by itself: the meter updates accumulators under its lock.
    """

    __slots__ = (*_COUNTERS, "links")

    def __init__(self) -> None:
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
        self.cost_atto = 0
        self.tokens_saved = 0
        self.link_count = 0
        # Integer nanoseconds: sums of floats depend on their order, and totals must not.
        self.latency_ns = 0
        self.links: set[str] | None = None

    def add_rare_usage(self, usage: Usage) -> None:
        """Add the usage fields the record path does not add inline (all but input, output, cache reads)."""
        if usage.cache_write_tokens:
            self.cache_write_tokens += usage.cache_write_tokens
            self.cache_write_1h_tokens += usage.cache_write_1h_tokens
        if usage.reasoning_tokens:
            self.reasoning_tokens += usage.reasoning_tokens
        if usage.audio_input_tokens:
            self.audio_input_tokens += usage.audio_input_tokens
        if usage.audio_output_tokens:
            self.audio_output_tokens += usage.audio_output_tokens

    def add_links(self, links: tuple[str, ...]) -> None:
        """Remember linked event ids: the `MAX_LINKS` greatest distinct ones (event ids sort by time)."""
        kept = self.links
        if kept is None:
            kept = self.links = set()
        self.link_count += len(links)
        kept.update(links)
        if len(kept) > MAX_LINKS:
            self.links = set(sorted(kept)[-MAX_LINKS:])

    def atto(self) -> int:
        """The cost held, in atto-dollars."""
        return self.cost_atto

    def merge(self, other: Acc) -> None:
        """Add everything ``other`` holds."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_atto += other.atto()
        if other.links:
            count = self.link_count
            self.add_links(tuple(other.links))
            self.link_count = count  # link_count was already merged above

    def copy(self) -> Acc:
        """A detached copy."""
        clone = Acc()
        clone.merge(self)
        return clone

    def usage(self) -> Usage:
        """The usage sum as a `Usage`."""
        return _new_usage(
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready counters (the cost as a string of atto-dollars, exact)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        data["cost_atto"] = str(self.atto())
        data["links"] = sorted(self.links or ())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Acc:
        """Inverse of `to_json` (validation is the caller's job)."""
        acc = cls()
        for name in _COUNTERS:
            value = data[name]
            setattr(acc, name, int(value))
        links = data.get("links") or []
        acc.links = {str(link) for link in links} or None
        return acc


class _ToolSum:
    __slots__ = ("acc", "failures", "successes")

    def __init__(self) -> None:
        self.acc = Acc()
        self.successes = 0
        self.failures = 0

    def add(self, status: str, acc: Acc) -> None:
        self.acc.merge(acc)
        if status in TOOL_SUCCESS:
            self.successes += acc.events
        else:
            self.failures += acc.events

    def stats(self) -> ToolStats:
        acc = self.acc
        return ToolStats(
            calls=acc.events,
            successes=self.successes,
            failures=self.failures,
            duration_ms=acc.latency_ns / 1e6,
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            linked_calls=acc.link_count,
            llm_call_ids=tuple(sorted(acc.links or ())),
        )


def totals_from_rows(rows: Iterable[tuple[str, str, str | None, str | None, Acc]]) -> Totals:
    """Fold ``(operation, status, tool, tool_category, acc)`` rows into a `Totals`."""
    model_calls = Acc()
    errors = 0
    operations: dict[str, tuple[Acc, list[int]]] = {}
    tools: dict[str, _ToolSum] = {}
    categories: dict[str, _ToolSum] = {}
    hits = misses = saved = events = 0
    for operation, status, tool, category, acc in rows:
        events += acc.events
        if operation == TOOL_OPERATION:
            tools.setdefault(tool or "", _ToolSum()).add(status, acc)
            if category:
                categories.setdefault(category, _ToolSum()).add(status, acc)
        elif operation == CACHE_OPERATION:
            if status == "hit":
                hits += acc.events
            else:
                misses += acc.events
            saved += acc.tokens_saved
        else:
            model_calls.merge(acc)
            op_acc, op_errors = operations.setdefault(operation, (Acc(), [0]))
            op_acc.merge(acc)
            if status != "ok":
                errors += acc.events
                op_errors[0] += acc.events
    return Totals(
        events=events,
        requests=model_calls.events,
        usage=model_calls.usage(),
        cost=atto_to_decimal(model_calls.cost_atto),
        unmeasured=model_calls.unmeasured,
        unpriced=model_calls.unpriced,
        errors=errors,
        latency_ms=model_calls.latency_ns / 1e6,
        by_operation={
            name: OperationTotals(
                calls=acc.events,
                usage=acc.usage(),
                cost=atto_to_decimal(acc.cost_atto),
                unmeasured=acc.unmeasured,
                unpriced=acc.unpriced,
                errors=op_errors[0],
                latency_ms=acc.latency_ns / 1e6,
            )
            for name, (acc, op_errors) in operations.items()
        },
        tools={name: tool_sum.stats() for name, tool_sum in tools.items()},
        tool_categories={name: tool_sum.stats() for name, tool_sum in categories.items()},
        cache_hits=hits,
        cache_misses=misses,
        cache_tokens_saved=saved,
    )
