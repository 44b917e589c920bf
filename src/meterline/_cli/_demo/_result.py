"""What a demo run metered: `DemoResult`, its tables of `DemoRow`, and their JSON form."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import meterline

__all__ = ["DemoResult", "DemoRow", "model_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoRow:
    """One row of a report table: the values of its dimensions and their totals."""

    labels: Mapping[str, str | None]
    """Dimension name -> value, e.g. ``{"user": "alice"}``."""
    totals: meterline.Totals
    """Everything recorded with those values."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (money as a decimal string)."""
        t = self.totals
        return {
            **self.labels,
            "events": t.events,
            "requests": t.requests,
            "input_tokens": t.usage.input_tokens,
            "output_tokens": t.usage.output_tokens,
            "total_tokens": t.usage.total_tokens,
            "cost": str(t.cost),
            "unmeasured": t.unmeasured,
            "unpriced": t.unpriced,
            "tool_calls": t.tool_calls,
            "tool_failures": t.tool_failures,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What `run_demo` metered, as tables derived from the meter's totals, and the report."""

    seed: int
    """The random seed of the simulation."""
    totals: meterline.Totals
    """Everything the meter recorded."""
    by_org: tuple[DemoRow, ...]
    """Per organisation, from each org scope's own live totals, by cost (descending)."""
    by_user: tuple[DemoRow, ...]
    """Per (org, user), from ``meter.totals(by=("org", "user"))``, by cost."""
    by_session: tuple[DemoRow, ...]
    """Per (user, session), every session, by cost (the report shows the first `TOP_SESSIONS`)."""
    by_agent: tuple[DemoRow, ...]
    """Per agent, by cost."""
    by_model: tuple[DemoRow, ...]
    """Per served (provider, model), model calls only, by cost."""
    by_tool: tuple[DemoRow, ...]
    """Per (tool, tool category), by calls."""
    requested_models: Mapping[str, tuple[str, ...]]
    """Served ``provider/model`` -> the model ids the application asked for."""
    unpriced_models: tuple[tuple[str | None, str], ...]
    """(provider, model) pairs that had no price (from `Meter.stats`)."""
    warnings: tuple[str, ...]
    """The `UnpricedModelWarning` messages caught while the demo ran."""
    price_version: str
    """The price data the costs come from."""
    budgets: tuple[meterline.BudgetStatus, ...] = ()
    """Where every budget and key stood at the end of the day (`Meter.budget_status`)."""
    alerts: tuple[meterline.BudgetAlert, ...] = ()
    """The soft thresholds crossed during the day, in order."""
    refused: str = ""
    """Why the runaway call at the end of the day was refused (the `BudgetExceeded` message)."""
    text: str = ""
    """The rendered report."""
    events: tuple[meterline.UsageEvent, ...] = field(default=(), repr=False, compare=False)
    """Every event, in order (ids and times differ between runs; the tables do not)."""
    meter: meterline.Meter | None = field(default=None, repr=False, compare=False)
    """The meter, to explore further (``result.meter.totals(by=...)``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of everything but the events and the meter.

        Event ids are left out (they differ from run to run; ``linked_calls`` counts the links),
        so one seed always gives the same dict.
        """
        totals = self.totals.to_dict()
        for group in ("tools", "tool_categories"):
            for stats in totals[group].values():
                del stats["llm_call_ids"]
        return {
            "seed": self.seed,
            "price_version": self.price_version,
            "totals": totals,
            "by_org": [row.to_dict() for row in self.by_org],
            "by_user": [row.to_dict() for row in self.by_user],
            "by_session": [row.to_dict() for row in self.by_session],
            "by_agent": [row.to_dict() for row in self.by_agent],
            "by_model": [
                {**row.to_dict(), "requested": list(self.requested_models.get(model_key(row), ()))}
                for row in self.by_model
            ],
            "by_tool": [{**row.labels, **_tool_summary(row)} for row in self.by_tool],
            "cache": {
                "hits": self.totals.cache_hits,
                "misses": self.totals.cache_misses,
                "tokens_saved": self.totals.cache_tokens_saved,
                "provider_cache_read_tokens": self.totals.usage.cache_read_tokens,
                "provider_cache_write_tokens": self.totals.usage.cache_write_tokens,
            },
            "unpriced_models": [{"provider": p, "model": m} for p, m in self.unpriced_models],
            "warnings": list(self.warnings),
            "budgets": [
                {
                    "budget": row.budget,
                    "key": dict(row.key),
                    "metric": row.metric,
                    "limit": str(row.limit),
                    "used": str(row.used),
                    "remaining": str(row.remaining),
                }
                for row in self.budgets
            ],
            "alerts": [
                {"budget": a.budget, "key": dict(a.key), "threshold": a.threshold, "used": str(a.used)}
                for a in self.alerts
            ],
            "refused": self.refused,
        }


def model_key(row: DemoRow) -> str:
    return f"{row.labels.get('provider')}/{row.labels.get('model')}"


def _tool_summary(row: DemoRow) -> dict[str, Any]:
    stats = row.totals.tools.get(row.labels.get("tool") or "", meterline.ToolStats())
    return {
        "calls": stats.calls,
        "failures": stats.failures,
        "duration_ms": stats.duration_ms,
        "mean_duration_ms": stats.duration_ms / stats.calls if stats.calls else None,
        "linked_calls": stats.linked_calls,
    }
