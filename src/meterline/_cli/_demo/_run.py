"""`run_demo`: meter the simulated day and collect its tables and report."""

from __future__ import annotations as _annotations

import random
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType

import meterline
from meterline._cli._demo._product import demo_budgets
from meterline._cli._demo._report import render_report
from meterline._cli._demo._result import DemoResult, DemoRow
from meterline._cli._demo._simulation import Simulation

__all__ = ["run_demo"]


def _by_cost(rows: Iterable[DemoRow]) -> tuple[DemoRow, ...]:
    return tuple(
        sorted(
            rows,
            key=lambda r: (
                -r.totals.cost,
                -r.totals.usage.total_tokens,
                tuple(v or "" for v in r.labels.values()),
            ),
        )
    )


def _rows(
    meter: meterline.Meter, by: tuple[str, ...], keep: Callable[[meterline.Totals], bool] | None = None
) -> tuple[DemoRow, ...]:
    groups = meter.totals(by=by)
    rows = (
        DemoRow(labels=MappingProxyType(dict(zip(by, key, strict=True))), totals=t)
        for key, t in groups.items()
    )
    return _by_cost(row for row in rows if keep is None or keep(row.totals))


def run_demo(seed: int = 7, ledger: str | None = None) -> DemoResult:
    """Meter a simulated day of a small multi-agent product and build its report.

    Args:
        seed: Seeds the simulation's token counts, latencies, cache hits and failures; the same
            seed always gives the same tables and report.
        ledger: A ledger URL to write every event to (flushed and closed before returning).

    Returns:
        The totals, the per-dimension tables, the rendered report and the events.
    """
    meter = meterline.Meter(ledger, budgets=demo_budgets())
    alerts: list[meterline.BudgetAlert] = []
    meter.subscribe(
        lambda item: alerts.append(item) if isinstance(item, meterline.BudgetAlert) else None, alerts=True
    )
    sim = Simulation(meter, random.Random(seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", meterline.UnpricedModelWarning)
        org_totals = sim.run()
        refused = sim.runaway()
    budgets = tuple(meter.budget_status())
    meter.close()
    unpriced_warnings: list[str] = []
    for warning in caught:
        if issubclass(warning.category, meterline.UnpricedModelWarning):
            unpriced_warnings.append(str(warning.message))
        else:  # not ours to swallow
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    result = DemoResult(
        seed=seed,
        totals=meter.totals(),
        by_org=_by_cost(
            DemoRow(labels=MappingProxyType({"org": name}), totals=t) for name, t in org_totals.items()
        ),
        by_user=_rows(meter, ("org", "user")),
        by_session=_rows(meter, ("user", "session")),
        by_agent=_rows(meter, ("agent",)),
        by_model=_rows(meter, ("provider", "model"), keep=lambda t: t.requests > 0),
        by_tool=tuple(
            sorted(
                _rows(meter, ("tool", "tool_category"), keep=lambda t: t.tool_calls > 0),
                key=lambda r: (-r.totals.tool_calls, r.labels["tool"] or ""),
            )
        ),
        requested_models=MappingProxyType({k: tuple(sorted(v)) for k, v in sorted(sim.requested.items())}),
        unpriced_models=meter.stats().unpriced_models,
        warnings=tuple(unpriced_warnings),
        price_version=meter.pricer.version,
        budgets=budgets,
        alerts=tuple(alerts),
        refused=refused,
        events=tuple(sim.events),
        meter=meter,
    )
    return replace(result, text=render_report(result))
