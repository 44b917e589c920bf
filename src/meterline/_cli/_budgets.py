"""``meterline budgets``: every budget and key in a budget store, with what is used and left.

``meterline budgets rebuild --from-ledger URL`` catches the counters up with the ledger.
"""

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
from meterline.budgets import (
    Budget,
    BudgetStatus,
    CatchUp,
    budget_status,
    known_budgets,
    load_budgets,
    open_budget_store,
    rebuild_from_ledger,
)
from meterline.exceptions import ConfigurationError
from meterline.ledger import ENV_VAR as LEDGER_ENV_VAR
from meterline.ledger import open_ledger

__all__ = ["add_budget_commands", "budget_rows", "rebuild_rows", "render_budgets", "render_rebuild"]


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
        return budget_status(store, known_budgets(store, budgets), now)
    finally:
        store.close()


def rebuild_rows(
    store_url: str, ledger_url: str, budgets: Sequence[Budget] = (), *, now: float | None = None
) -> list[CatchUp]:
    """Catch the counters of the store at ``store_url`` up with the ledger at ``ledger_url``.

    Raises:
        ConfigurationError: for a bad URL or a stored definition this meterline cannot read.
        BudgetStoreError: when the store cannot be reached.
        LedgerError: when the ledger cannot be read.
    """
    store = open_budget_store(store_url)
    try:
        ledger = open_ledger(ledger_url)
        try:
            return rebuild_from_ledger(known_budgets(store, budgets), store, ledger, now=now)
        finally:
            ledger.close()
    finally:
        store.close()


def render_rebuild(rows: Sequence[CatchUp]) -> str:
    """What a rebuild charged, as a table."""
    if not rows:
        return "Nothing to charge: every counter holds at least what the ledger holds."
    body = [
        [
            row.budget,
            ", ".join(f"{name}={value}" for name, value in row.key.items()) or "(global)",
            "all time" if row.bucket_start is None else row.bucket_start.strftime("%Y-%m-%d %H:%M UTC"),
            ", ".join(f"{metric} +{amount}" for metric, amount in row.charged.items()),
        ]
        for row in rows
    ]
    return format_table(("budget", "key", "bucket", "charged"), body, align="llll")


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


def _store_url(args: argparse.Namespace) -> str:
    url: str | None = args.store or os.environ.get(BUDGET_STORE_ENV_VAR)
    if not url:
        raise ConfigurationError(
            f"no budget store: pass --store URL (sqlite:///budgets.db, postgresql://…, redis://…) "
            f"or set ${BUDGET_STORE_ENV_VAR}"
        )
    return url


def _cmd_budgets(args: argparse.Namespace) -> int:
    budgets = load_budgets(args.budgets) if args.budgets else []
    sys.stdout.write(render_budgets(budget_rows(_store_url(args), budgets), args.format) + "\n")
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    ledger = args.from_ledger or os.environ.get(LEDGER_ENV_VAR)
    if not ledger:
        raise ConfigurationError(f"no ledger: pass --from-ledger URL or set ${LEDGER_ENV_VAR}")
    budgets = load_budgets(args.budgets) if args.budgets else []
    sys.stdout.write(render_rebuild(rebuild_rows(_store_url(args), ledger, budgets)) + "\n")
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
    store_help = f"the budget store (default: ${BUDGET_STORE_ENV_VAR})"
    budgets.add_argument("--store", metavar="URL", help=store_help)
    budgets.add_argument("--budgets", metavar="FILE.toml", help="budgets ([[budget]] tables) to show too")
    budgets.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    budgets.set_defaults(handler=_cmd_budgets)
    actions = budgets.add_subparsers(title="actions", metavar="{rebuild}")
    rebuild = actions.add_parser(
        "rebuild",
        help="charge the counters what the ledger holds beyond them (after a store outage)",
        description=(
            "Catch the budget counters up with the ledger, the source of truth: for each budget's "
            "current window, charge every key what the ledger holds beyond its counter (calls let "
            "through while the store was down, settles that failed). It only adds, so it is safe "
            "while meters record; run it again a few seconds later for events still in flight."
        ),
    )
    rebuild.add_argument("--from-ledger", metavar="URL", help=f"the ledger (default: ${LEDGER_ENV_VAR})")
    rebuild.add_argument("--store", metavar="URL", help=store_help)
    rebuild.add_argument("--budgets", metavar="FILE.toml", help="budgets ([[budget]] tables) to rebuild too")
    rebuild.set_defaults(handler=_cmd_rebuild)
