"""What a provider's report and the ledger say about one day: usage by model, cost by scope."""

from __future__ import annotations as _annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

__all__ = ["CostLine", "Report", "UsageLine"]


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Tokens (and model calls, where counted) of one model on one UTC day, in one scope.

    ``scope`` is the provider's project, workspace or API key id (the value of the ledger
    dimension mapped to it), ``None`` when the report is not split by one.
    """

    day: date
    model: str
    scope: str | None
    input_tokens: int
    """Every prompt-side token, cache reads and writes included (meterline's inclusive count)."""
    output_tokens: int
    cache_read_tokens: int
    requests: int | None
    """Model calls; ``None`` where the report does not count them (Anthropic's)."""

    @property
    def key(self) -> tuple[date, str, str | None]:
        """(day, model, scope): what lines up with the other side."""
        return (self.day, self.model, self.scope)


@dataclass(frozen=True, slots=True)
class CostLine:
    """What was charged on one UTC day in one scope, in USD."""

    day: date
    scope: str | None
    cost: Decimal

    @property
    def key(self) -> tuple[date, str | None]:
        """(day, scope): what lines up with the other side."""
        return (self.day, self.scope)


@dataclass(frozen=True, slots=True)
class Report:
    """One side of a reconciliation: usage lines and cost lines, added up per key."""

    usage: dict[tuple[date, str, str | None], UsageLine] = field(default_factory=dict)
    cost: dict[tuple[date, str | None], CostLine] = field(default_factory=dict)

    def add_usage(self, line: UsageLine) -> None:
        """Add ``line`` to the usage line of its key (a report may split a key over results)."""
        found = self.usage.get(line.key)
        if found is not None:
            requests = (
                None if found.requests is None or line.requests is None else found.requests + line.requests
            )
            line = UsageLine(
                line.day,
                line.model,
                line.scope,
                found.input_tokens + line.input_tokens,
                found.output_tokens + line.output_tokens,
                found.cache_read_tokens + line.cache_read_tokens,
                requests,
            )
        self.usage[line.key] = line

    def add_cost(self, line: CostLine) -> None:
        """Add ``line`` to the cost line of its key."""
        found = self.cost.get(line.key)
        if found is not None:
            line = CostLine(line.day, line.scope, found.cost + line.cost)
        self.cost[line.key] = line

    def add_all(self, usage: Iterable[UsageLine] = (), cost: Iterable[CostLine] = ()) -> Report:
        """Add every line given; return this report."""
        for usage_line in usage:
            self.add_usage(usage_line)
        for cost_line in cost:
            self.add_cost(cost_line)
        return self


def line_dict(line: UsageLine | CostLine | None) -> dict[str, Any] | None:
    """A line's numbers, JSON-ready (money as a decimal string)."""
    if line is None:
        return None
    if isinstance(line, CostLine):
        return {"cost": str(line.cost)}
    return {
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "cache_read_tokens": line.cache_read_tokens,
        "requests": line.requests,
    }
