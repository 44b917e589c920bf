"""``meterline reconcile``: the ledger against the provider's own usage and cost reports."""

from __future__ import annotations as _annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from meterline._cli._exit import EXIT_DAMAGED, EXIT_OK, report_error
from meterline._cli._format import format_cost, format_table, format_tokens
from meterline._cli._ledger import ledger_option, open_from, when_argument
from meterline._dimensions import check_names
from meterline._reconcile import (
    ADMIN_KEYS,
    BASE_URLS,
    PROVIDERS,
    CostLine,
    Reconciliation,
    UsageLine,
    reconcile,
)

__all__ = ["add_reconcile_command", "render_reconciliation"]


def _numbers(line: UsageLine | CostLine | None) -> str:
    if line is None:
        return "-"
    if isinstance(line, CostLine):
        return format_cost(line.cost)
    plural = "" if line.requests == 1 else "s"
    calls = "" if line.requests is None else f", {format_tokens(line.requests)} call{plural}"
    return f"{format_tokens(line.input_tokens)} in, {format_tokens(line.output_tokens)} out{calls}"


def render_reconciliation(result: Reconciliation) -> str:
    """A summary line, then a table of the lines where the ledger and the provider differ."""
    first = result.start.date().isoformat()
    last = (result.end - timedelta(days=1)).date().isoformat()  # the end is the day after the last
    summary = (
        f"{result.provider}, {first} to {last} (UTC days): {result.usage_lines} (day, model) lines,"
        f" {len(result.differences)} differences; cost: ledger {format_cost(result.ledger_cost)},"
        f" provider {format_cost(result.provider_cost)}"
    )
    notes = []
    if result.unmeasured:
        notes.append(f"unmeasured calls in the ledger (their tokens are unknown): {result.unmeasured}")
    if result.unpriced:
        notes.append(f"unpriced calls in the ledger (not in its cost): {result.unpriced}")
    if result.agrees:
        return "\n".join([summary, *notes, "The ledger agrees with the provider."])
    rows = []
    for difference in result.differences:
        day, *rest = difference.key
        what = " / ".join(str(part) for part in rest if part is not None) or "(all)"
        rows.append(
            [
                day.isoformat(),
                what,
                ", ".join(difference.issues),
                _numbers(difference.ledger),
                _numbers(difference.provider),
            ]
        )
    table = format_table(["day", "model / scope", "differs", "ledger", "provider"], rows)
    return "\n".join([summary, *notes, table])


def _cmd_reconcile(args: argparse.Namespace) -> int:
    variable = ADMIN_KEYS[args.provider]
    key = os.environ.get(variable, "")
    if not key:
        return report_error(
            f"no admin key: set ${variable} to an admin key of the organisation (it is read, never stored)"
        )
    scope = args.scope_dimension
    if scope is not None:
        check_names([scope], "scope dimension")
    ledger = open_from(args)
    try:
        result = reconcile(
            ledger,
            args.provider,
            since=args.since,
            until=args.until or datetime.now(tz=UTC),
            key=key,
            base=args.api_base or BASE_URLS[args.provider],
            scope_dimension=scope,
            scope=args.scope,
        )
    finally:
        ledger.close()
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render_reconciliation(result))
    return EXIT_OK if result.agrees else EXIT_DAMAGED


def add_reconcile_command(commands: Any) -> None:
    """Register ``meterline reconcile`` on the CLI's sub-parsers."""
    parser = commands.add_parser(
        "reconcile",
        help="check the ledger against the provider's own usage and cost reports",
        description=(
            "Read the provider's organisation usage and cost reports (OpenAI's Usage and Costs APIs, "
            "Anthropic's Usage and Cost Admin API) with an admin key from $OPENAI_ADMIN_KEY or "
            "$ANTHROPIC_ADMIN_KEY, line them up with the ledger by UTC day and model (and project or "
            "workspace with --scope-dimension), and print where they differ. Exit status: 0 when they "
            "agree, 1 when they differ, 2 on an error."
        ),
    )
    parser.add_argument("--provider", required=True, choices=PROVIDERS, help="whose reports to read")
    parser.add_argument(
        "--since",
        type=when_argument,
        default="30d",
        metavar="WHEN",
        help="first day checked: an age (30d) or an ISO 8601 date (default: 30d)",
    )
    parser.add_argument("--until", type=when_argument, metavar="WHEN", help="end (default: now)")
    parser.add_argument(
        "--scope-dimension",
        metavar="NAME",
        help="a ledger dimension holding each call's project (OpenAI), workspace (Anthropic) or API key id",
    )
    parser.add_argument(
        "--scope",
        choices=("project", "workspace", "api_key"),
        default="project",
        help="what --scope-dimension holds (default: project; api_key compares cost per day only)",
    )
    parser.add_argument("--api-base", metavar="URL", help="the provider's API (default: its public URL)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    ledger_option(parser)
    parser.set_defaults(handler=_cmd_reconcile)
