"""The report ``meterline demo`` prints: a header of facts, cost tables, tools, caches, budgets, notes.

Every number comes from a `DemoResult`, itself derived from ``meter.totals(by=...)`` and the
scopes' own live totals. Cost tables are sorted by cost, descending; a row none of whose model
calls was measured and priced shows ``unknown`` (never ``$0``).
"""

from __future__ import annotations as _annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import meterline
from meterline._cli._demo._product import AGENTS, RESERVED_OUTPUT
from meterline._cli._demo._result import DemoResult, DemoRow, model_key
from meterline._cli._format import (
    cost_places,
    format_amount,
    format_cost,
    format_not_in_cost,
    format_table,
    format_tokens,
)

__all__ = ["TOP_SESSIONS", "render_report"]

TOP_SESSIONS: Final = 8
"""Sessions shown in the report's session table."""

_Metric = Callable[[meterline.Totals], str]

_METRICS: Final[Mapping[str, _Metric]] = {
    "calls": lambda t: f"{t.requests:,}",
    "tool runs": lambda t: f"{t.tool_calls:,}",
    "input": lambda t: format_tokens(t.usage.input_tokens),
    "cache read": lambda t: format_tokens(t.usage.cache_read_tokens),
    "output": lambda t: format_tokens(t.usage.output_tokens),
    "reasoning": lambda t: format_tokens(t.usage.reasoning_tokens),
}
"""Numeric columns of the cost tables: header -> cell."""


def _cost_table(
    title: str,
    rows: Sequence[DemoRow],
    labels: Mapping[str, Callable[[DemoRow], str]],
    metrics: Sequence[str],
    counts: Mapping[str, Callable[[DemoRow], str]] | None = None,
) -> str:
    """A titled table: label columns, then ``metrics``, cost and what the cost leaves out.

    The cost column uses one number of decimal places throughout; a row none of whose model
    calls was measured and priced shows ``unknown`` (never ``$0``). ``counts`` are numeric
    columns computed from the row (placed between the labels and the metrics).
    """
    counts = counts or {}
    places = cost_places(row.totals.cost for row in rows)
    cells = []
    for row in rows:
        t = row.totals
        unknown = t.requests > 0 and t.unmeasured + t.unpriced == t.requests
        cells.append(
            [
                *(cell(row) for cell in labels.values()),
                *(cell(row) for cell in counts.values()),
                *(_METRICS[name](t) for name in metrics),
                "unknown" if unknown else format_cost(t.cost, places),
                format_not_in_cost(t.unmeasured, t.unpriced),
            ]
        )
    headers = [*labels, *counts, *metrics, "cost", "not in cost"]
    align = "l" * len(labels) + "r" * (len(counts) + len(metrics) + 1) + "l"
    return f"{title}\n{format_table(headers, cells, align=align)}"


def _label(name: str) -> Callable[[DemoRow], str]:
    return lambda row: row.labels.get(name) or "-"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _header(result: DemoResult) -> list[str]:
    t = result.totals
    usage = t.usage
    operations = ", ".join(f"{name} {op.calls:,}" for name, op in sorted(t.by_operation.items()))
    unpriced = ", ".join(f"{provider}/{model}" for provider, model in result.unpriced_models) or "none"
    cost = format_cost(t.cost) + ("" if t.complete else " (measured and priced calls only: see the notes)")
    lookups = t.cache_hits + t.cache_misses
    cache_writes = usage.cache_write_tokens
    kinds = f"{t.requests:,} model calls, {t.tool_calls:,} tool runs, {lookups:,} cache lookups"
    facts = [
        ("events", f"{t.events:,} ({kinds})"),
        ("model calls", f"{t.requests:,} ({operations})"),
        ("total tokens", format_tokens(usage.total_tokens)),
        (
            "  input",
            f"{usage.input_tokens:,} ({usage.cache_read_tokens:,} cache read, {cache_writes:,} cache write)",
        ),
        ("  output", f"{usage.output_tokens:,} ({usage.reasoning_tokens:,} reasoning)"),
        ("total cost", cost),
        ("unmeasured", f"{_plural(t.unmeasured, 'model call')} (usage never arrived)"),
        ("unpriced", f"{_plural(t.unpriced, 'model call')} (no price: {unpriced})"),
        ("price data", result.price_version),
    ]
    width = max(len(label) for label, _ in facts)
    return [
        f"meterline demo (seed {result.seed}): a simulated day of a multi-agent research assistant",
        f"{_plural(len(result.by_org), 'org')}, {_plural(len(result.by_user), 'user')}, "
        f"{_plural(len(result.by_session), 'session')}; agents {', '.join(AGENTS)} in every session",
        "",
        *(f"  {label.ljust(width)}  {value}" for label, value in facts),
    ]


def _tools_table(result: DemoResult) -> str:
    cells = []
    for row in result.by_tool:
        name = row.labels.get("tool") or "-"
        stats = row.totals.tools.get(name, meterline.ToolStats())
        calls = stats.calls or 1
        cells.append(
            [
                name,
                row.labels.get("tool_category") or "-",
                f"{stats.calls:,}",
                f"{stats.failures:,}",
                f"{100 * stats.failures / calls:.0f}%",
                f"{stats.duration_ms / calls:,.1f}",
                f"{stats.linked_calls:,}",
            ]
        )
    headers = ("tool", "category", "runs", "failures", "failure rate", "mean ms", "linked model calls")
    return "Tools\n" + format_table(headers, cells, align="llrrrrr")


def _caches_table(result: DemoResult) -> str:
    t = result.totals
    lookups = t.cache_hits + t.cache_misses
    rate = f"{100 * t.cache_hits / lookups:.0f}%" if lookups else "-"
    app = ["application cache (research briefs)", f"{t.cache_hits:,}", f"{t.cache_misses:,}", rate]
    provider = ["provider prompt caches", "-", "-", "-"]
    cells = [
        [*app, f"{t.cache_tokens_saved:,} saved"],
        [*provider, f"{t.usage.cache_read_tokens:,} read, {t.usage.cache_write_tokens:,} written"],
    ]
    return "Caches\n" + format_table(("cache", "hits", "misses", "hit rate", "tokens"), cells, align="lrrrr")


def _budgets_section(result: DemoResult) -> str:
    """The org budgets, the sessions closest to their cap, the alerts and the refusal."""
    orgs = [row for row in result.budgets if row.budget == "org daily spend"]
    sessions = sorted(
        (row for row in result.budgets if row.budget == "session tokens"), key=lambda row: row.remaining
    )[:3]
    places = cost_places((Decimal(row.used) for row in orgs), minimum=2)
    cells = [
        [
            row.budget,
            ", ".join(f"{name}={value}" for name, value in row.key.items()),
            format_amount(row.limit, row.metric, places),
            format_amount(row.used, row.metric, places),
            format_amount(row.remaining, row.metric, places),
        ]
        for row in (*sorted(orgs, key=lambda row: row.remaining), *sessions)
    ]
    lines = [
        "Budgets (every model call reserved first: input plus "
        f"{RESERVED_OUTPUT:,} output tokens, then settled by its usage)",
        format_table(("budget", "key", "limit", "used", "remaining"), cells, align="llrrr"),
        "",
        "  Alerts fired (once per window and key):",
    ]
    for alert in result.alerts:
        used, limit = format_cost(Decimal(alert.used), places), format_cost(Decimal(alert.limit), places)
        key = ", ".join(f"{name}={value}" for name, value in alert.key.items())
        lines.append(f"    {alert.budget} {key}: {alert.threshold:.0%} reached ({used} of {limit})")
    if not result.alerts:
        lines.append("    none")
    lines.append("  Refused before sending:")
    lines.extend(textwrap.wrap(result.refused, width=96, initial_indent="    ", subsequent_indent="      "))
    return "\n".join(lines)


def _notes(result: DemoResult) -> list[str]:
    t = result.totals
    unpriced = ", ".join(f"{provider}/{model}" for provider, model in result.unpriced_models) or "none"
    notes = [
        f"Unmeasured ({_plural(t.unmeasured, 'model call')}): an OpenAI stream requested without "
        "stream_options.include_usage ended without a usage record. An unmeasured call is counted apart, "
        "never as free: its tokens and cost are unknown, so the total cost is a lower bound.",
        f"Unpriced ({_plural(t.unpriced, 'model call')}): {unpriced} is self-hosted and has no price. "
        "Unpriced usage is measured, so its tokens are in the totals, but it has no cost (not a cost of $0). "
        "Price it with a PriceTable row (see `meterline prices --help`).",
        *(f"Warning caught: {message}" for message in result.warnings),
        "Budgets: an org's budget counts the unmeasured stream at its whole reservation (the budget's "
        "on_unmeasured policy is 'fail_closed'), and the self-hosted model at no cost "
        "(on_unpriced='fail_open'); a budget's used amount can therefore differ from the org's cost above.",
        "Every number above comes from meter.totals(by=...) or a scope's live totals; costs are exact "
        "Decimal USD from the price data named in the header.",
    ]
    lines = ["Notes"]
    for note in notes:
        lines.extend(textwrap.wrap(note, width=100, initial_indent="  * ", subsequent_indent="    "))
    return lines


def render_report(result: DemoResult) -> str:
    """Render the report of a `DemoResult` as plain text (cost tables sorted by cost, descending)."""
    sessions: dict[str | None, int] = {}
    for row in result.by_session:
        sessions[row.labels.get("user")] = sessions.get(row.labels.get("user"), 0) + 1
    top = result.by_session[:TOP_SESSIONS]
    sections = [
        "\n".join(_header(result)),
        _cost_table(
            "Cost by org (each org scope's own totals)",
            result.by_org,
            {"org": _label("org")},
            ("calls", "tool runs", "input", "output"),
        ),
        _cost_table(
            "Cost by user",
            result.by_user,
            {"user": _label("user"), "org": _label("org")},
            ("calls", "input", "output"),
            counts={"sessions": lambda row: str(sessions.get(row.labels.get("user"), 0))},
        ),
        _cost_table(
            f"Top {len(top)} of {len(result.by_session)} sessions by cost",
            top,
            {"session": _label("session"), "user": _label("user")},
            ("calls", "tool runs", "input", "output"),
        ),
        _cost_table(
            "Cost by agent",
            result.by_agent,
            {"agent": _label("agent")},
            ("calls", "tool runs", "input", "cache read", "output", "reasoning"),
        ),
        _cost_table(
            "Cost by model (the model that served the call, and the one asked for)",
            result.by_model,
            {
                "provider": _label("provider"),
                "model": _label("model"),
                "asked for": lambda row: ", ".join(result.requested_models.get(model_key(row), ())),
            },
            ("calls", "input", "cache read", "output", "reasoning"),
        ),
        _tools_table(result),
        _caches_table(result),
        _budgets_section(result),
        "\n".join(_notes(result)),
    ]
    return "\n\n".join(sections)
