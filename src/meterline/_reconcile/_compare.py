"""The ledger lined up with a provider's own report: where tokens, calls or cost differ.

Usage is compared per (UTC day, model, scope) and cost per (UTC day, scope): a provider's
cost report does not put its tool fees on a model, so only a day's (and a scope's) whole
cost compares fairly. Tokens and call counts must be equal; a cost may differ by
`COST_TOLERANCE` (a provider rounds its report). A line on one side only is a call the other
side missed.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from meterline._reconcile._anthropic import anthropic_report
from meterline._reconcile._lines import CostLine, Report, UsageLine, line_dict
from meterline._reconcile._openai import openai_report
from meterline._storage import check_url
from meterline.exceptions import ConfigurationError
from meterline.ledger import LedgerBackend

__all__ = ["COST_TOLERANCE", "Difference", "Reconciliation", "ledger_report", "reconcile", "utc_days"]

COST_TOLERANCE: Final = (Decimal("0.01"), Decimal("0.01"))
"""A day's cost may differ by 1 % of the provider's, or a cent, whichever is larger."""
_MISSING_HERE: Final = "missing in the ledger"
_MISSING_THERE: Final = "missing in the provider's report"

Fetch = Callable[[str, str, datetime, datetime, str | None], Report]


def _fetch_openai(base: str, key: str, start: datetime, end: datetime, split: str | None) -> Report:
    return openai_report(base, key, start, end, split=split)


def _fetch_anthropic(base: str, key: str, start: datetime, end: datetime, split: str | None) -> Report:
    return anthropic_report(base, key, start, end, split=split)


FETCH: Final[dict[str, Fetch]] = {"openai": _fetch_openai, "anthropic": _fetch_anthropic}
"""The providers whose reports meterline reads, by the ledger's provider name."""
SCOPES: Final[dict[str, dict[str, str]]] = {
    "openai": {"project": "project_id", "api_key": "api_key_id"},
    "anthropic": {"project": "workspace_id", "workspace": "workspace_id", "api_key": "api_key_id"},
}
"""What a scope is, at each provider: the field of its reports a ledger dimension matches."""
_COST_SPLITS: Final = frozenset({"project_id", "workspace_id"})
"""Scopes the providers' cost reports are split by (not API keys): other scopes compare cost per day."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One line where the ledger and the provider disagree."""

    key: tuple[Any, ...]
    """(day, model, scope) for usage, (day, scope) for cost."""
    ledger: UsageLine | CostLine | None
    provider: UsageLine | CostLine | None
    issues: tuple[str, ...]
    """What differs: ``input_tokens``, ``output_tokens``, ``requests``, ``cost``, or a side missing."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        day, *rest = self.key
        names = ("model", "scope") if len(rest) == 2 else ("scope",)
        return {
            "day": day.isoformat(),
            **dict(zip(names, rest, strict=True)),
            "ledger": line_dict(self.ledger),
            "provider": line_dict(self.provider),
            "issues": list(self.issues),
        }


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The ledger against a provider's report, over whole UTC days."""

    provider: str
    start: datetime
    end: datetime
    usage_lines: int
    """(day, model, scope) lines compared (on either side)."""
    differences: tuple[Difference, ...]
    ledger_cost: Decimal
    provider_cost: Decimal
    unmeasured: int
    """Model calls in the ledger whose usage is unknown (their tokens cannot match)."""
    unpriced: int
    """Model calls in the ledger with no price (their cost is missing from ``ledger_cost``)."""

    @property
    def agrees(self) -> bool:
        """No difference."""
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (money as decimal strings)."""
        return {
            "provider": self.provider,
            "since": self.start.isoformat().replace("+00:00", "Z"),
            "until": self.end.isoformat().replace("+00:00", "Z"),
            "usage_lines": self.usage_lines,
            "ledger_cost": str(self.ledger_cost),
            "provider_cost": str(self.provider_cost),
            "unmeasured": self.unmeasured,
            "unpriced": self.unpriced,
            "agrees": self.agrees,
            "differences": [difference.to_dict() for difference in self.differences],
        }


def utc_days(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The UTC midnights around [since, until): the first day's and the one after the last's."""
    start = datetime.combine(since.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    last = (until - timedelta(microseconds=1)).astimezone(UTC).date()
    return start, datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def ledger_report(
    ledger: LedgerBackend,
    provider: str,
    start: datetime,
    end: datetime,
    scope_dimension: str | None,
    *,
    cost_by_scope: bool = True,
) -> tuple[Report, int, int]:
    """The ledger's model calls of ``provider`` as day lines, and its unmeasured and unpriced calls.

    ``cost_by_scope=False``: cost lines per day only (the provider's cannot be split by the scope).
    """
    by = ("model", scope_dimension) if scope_dimension else ("model",)
    rows = ledger.totals(by=by, where={"provider": provider}, since=start, until=end, granularity="day")
    report = Report()
    unmeasured = unpriced = 0
    for row in rows:
        if row.period is None:
            continue
        day: date = row.period.date()
        model = row.key[0] or "(no model)"
        scope = row.key[1] if scope_dimension else None
        usage = row.usage
        line = UsageLine(
            day, model, scope, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, row.events
        )
        report.add_usage(line)
        report.add_cost(CostLine(day, scope if cost_by_scope else None, row.cost))
        unmeasured += row.unmeasured
        unpriced += row.unpriced
    return report, unmeasured, unpriced


def reconcile(
    ledger: LedgerBackend,
    provider: str,
    *,
    since: datetime,
    until: datetime,
    key: str,
    base: str,
    scope_dimension: str | None = None,
    scope: str = "project",
) -> Reconciliation:
    """Line the ledger up with ``provider``'s organisation usage and cost reports.

    Args:
        ledger: The ledger to check.
        provider: ``openai`` or ``anthropic``.
        since: The first day checked (its UTC day, whole).
        until: The end (exclusive; the UTC day it falls in is checked whole).
        key: The provider's admin key (never stored or logged).
        base: The API's base URL (``https`` or, for a local test server, ``http``).
        scope_dimension: A ledger dimension holding the provider's id of each call's ``scope``:
            each day is then compared per scope.
        scope: What ``scope_dimension`` holds: ``project`` (OpenAI's project, Anthropic's
            workspace; also ``workspace``) or ``api_key`` (usage per key, cost per day: the
            cost reports are not split by key).

    Raises:
        ConfigurationError: an unknown provider or a base URL that is not http(s) with a host.
        ReconcileError: the provider's report could not be read.
        LedgerError: the ledger failed.
    """
    fetch = FETCH.get(provider)
    if fetch is None:
        raise ConfigurationError(f"provider={provider!r}: expected one of {', '.join(FETCH)}")
    check_url(base)
    field = SCOPES[provider].get(scope)
    if field is None:
        raise ConfigurationError(f"scope={scope!r}: expected one of {', '.join(SCOPES[provider])}")
    split = field if scope_dimension is not None else None
    start, end = utc_days(since, until)
    theirs = fetch(base, key, start, end, split)
    ours, unmeasured, unpriced = ledger_report(
        ledger, provider, start, end, scope_dimension, cost_by_scope=split in _COST_SPLITS
    )
    differences: list[Difference] = []
    usage_keys = sorted(set(ours.usage) | set(theirs.usage), key=_order)
    for usage_key in usage_keys:
        mine, other = ours.usage.get(usage_key), theirs.usage.get(usage_key)
        issues = _usage_issues(mine, other)
        if issues:
            differences.append(Difference(usage_key, mine, other, issues))
    for cost_key in sorted(set(ours.cost) | set(theirs.cost), key=_order):
        mine_cost, other_cost = ours.cost.get(cost_key), theirs.cost.get(cost_key)
        issues = _cost_issues(mine_cost, other_cost)
        if issues:
            differences.append(Difference(cost_key, mine_cost, other_cost, issues))
    return Reconciliation(
        provider=provider,
        start=start,
        end=end,
        usage_lines=len(usage_keys),
        differences=tuple(differences),
        ledger_cost=sum((line.cost for line in ours.cost.values()), Decimal(0)),
        provider_cost=sum((line.cost for line in theirs.cost.values()), Decimal(0)),
        unmeasured=unmeasured,
        unpriced=unpriced,
    )


def _order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if part is None else part for part in key)


def _usage_issues(mine: UsageLine | None, other: UsageLine | None) -> tuple[str, ...]:
    if mine is None:
        return (_MISSING_HERE,) if other is not None and (other.input_tokens or other.output_tokens) else ()
    if other is None:
        return (_MISSING_THERE,)
    issues = [
        name
        for name in ("input_tokens", "output_tokens", "cache_read_tokens")
        if getattr(mine, name) != getattr(other, name)
    ]
    if other.requests is not None and mine.requests != other.requests:
        issues.append("requests")
    return tuple(issues)


def _cost_issues(mine: CostLine | None, other: CostLine | None) -> tuple[str, ...]:
    mine_cost = Decimal(0) if mine is None else mine.cost
    other_cost = Decimal(0) if other is None else other.cost
    share, floor = COST_TOLERANCE
    if abs(mine_cost - other_cost) > max(floor, abs(other_cost) * share):
        return ("cost",)
    return ()
