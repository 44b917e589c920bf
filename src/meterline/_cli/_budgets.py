"""``meterline budgets``: every budget and key in a budget store, with what is used and left."""

from __future__ import annotations as _annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from meterline._cli._format import cost_places, format_amount, format_table
from meterline.budgets import ENV_VAR as BUDGET_STORE_ENV_VAR
from meterline.budgets import Budget, BudgetStatus, budget_status, load_budgets, open_budget_store
from meterline.exceptions import ConfigurationError

__all__ = ["add_budget_commands", "budget_rows", "render_budgets"]


def budget_rows(
    store_url: str, budgets: Sequence[Budget] = (), *, now: float | None = None
) -> list[BudgetStatus]:
    """Every budget's status in the store at ``store_url``.

    Budgets are those ``budgets`` names plus every definition the store keeps (meters store
    the definitions of the budgets they enforce); ``budgets`` wins for a name in both.

    Raises:
        ConfigurationError: for a bad URL or a stored definition this meterline cannot read.
        BudgetStoreError: when the store cannot be reached.
    """
    store = open_budget_store(store_url)
    try:
        by_name = {}
        for name, spec in sorted(store.definitions().items()):
            try:
                by_name[name] = Budget.from_dict(json.loads(spec), source=f"stored budget {name!r}")
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"stored budget {name!r} cannot be read: {exc}") from None
        for budget in budgets:
            by_name[budget.name] = budget
        return budget_status(store, by_name.values(), now)
    finally:
        store.close()


def render_budgets(rows: Sequence[BudgetStatus], fmt: str) -> str:
    """``rows`` as a table (by budget, then key) or JSON."""
    if fmt == "json":
        data: list[dict[str, Any]] = [
            {
                "budget": row.budget,
                "key": dict(row.key),
                "metric": row.metric,
                "limit": str(row.limit),
                "used": str(row.used),
                "reserved": str(row.reserved),
                "remaining": str(row.remaining),
                "resets_at": None if row.resets_at is None else row.resets_at.isoformat(),
            }
            for row in rows
        ]
        return json.dumps(data, indent=2)
    if not rows:
        return "No budgets: no meter has stored a budget in this store yet (or pass --budgets FILE)."
    places = cost_places(
        (Decimal(amount) for row in rows if row.metric == "cost" for amount in (row.limit, row.used)),
        minimum=2,
    )
    body = [
        [
            row.budget,
            ", ".join(f"{name}={value}" for name, value in row.key.items()) or "(global)",
            row.metric,
            format_amount(row.limit, row.metric, places),
            format_amount(row.used, row.metric, places),
            format_amount(row.reserved, row.metric, places),
            format_amount(row.remaining, row.metric, places),
            "never" if row.resets_at is None else row.resets_at.strftime("%Y-%m-%d %H:%M UTC"),
        ]
        for row in rows
    ]
    return format_table(
        ("budget", "key", "metric", "limit", "used", "reserved", "remaining", "resets at"),
        body,
        align="lllrrrrl",
    )


def _cmd_budgets(args: argparse.Namespace) -> int:
    url = args.store or os.environ.get(BUDGET_STORE_ENV_VAR)
    if not url:
        raise ConfigurationError(
            f"no budget store: pass --store URL (sqlite:///budgets.db, postgresql://…, redis://…) "
            f"or set ${BUDGET_STORE_ENV_VAR}"
        )
    budgets = load_budgets(args.budgets) if args.budgets else []
    sys.stdout.write(render_budgets(budget_rows(url, budgets), args.format) + "\n")
    return 0


def add_budget_commands(commands: Any) -> None:
    """Add ``meterline budgets`` to the CLI's subcommands."""
    budgets = commands.add_parser(
        "budgets",
        help="show every budget and key in a budget store: used, reserved, remaining, resets at",
        description=(
            "Show every budget a budget store holds (the budgets meters enforce, stored by them, "
            "plus those of --budgets FILE), and for each key its usage in the current window, "
            "what live reservations hold, what remains and when the window resets."
        ),
    )
    budgets.add_argument(
        "--store", metavar="URL", help=f"the budget store (default: ${BUDGET_STORE_ENV_VAR})"
    )
    budgets.add_argument("--budgets", metavar="FILE.toml", help="budgets ([[budget]] tables) to show too")
    budgets.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    budgets.set_defaults(handler=_cmd_budgets)
