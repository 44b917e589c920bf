"""The ``meterline`` command line: `main` and the parser that wires every command group.

Standard library only (``argparse``). One module per command group:

- ``_prices``: ``meterline prices``.
- ``_demo``: ``meterline demo`` (the simulated day it meters loads when it runs).
- ``_ledger``: ``report``, ``export``, ``reprice`` and ``ledger stats|replay|prune``.
- ``_budgets``: ``meterline budgets``.
- ``_serve``: ``meterline serve-metrics``.

with ``_format`` (tables, money and token counts) and ``_exit`` (exit statuses) shared by
them. User errors (an unknown model, a bad provider name, a price table that cannot be used)
are reported on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations as _annotations

import argparse
import os
import sys

from meterline import __version__
from meterline._cli._budgets import add_budget_commands
from meterline._cli._dashboard import add_dashboard_command
from meterline._cli._demo import add_demo_command
from meterline._cli._exit import EXIT_USAGE, report_error
from meterline._cli._ledger import add_ledger_commands
from meterline._cli._maintenance import add_maintenance_commands
from meterline._cli._prices import add_prices_command
from meterline._cli._reconcile import add_reconcile_command
from meterline._cli._serve import add_serve_command
from meterline.exceptions import MeterlineError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterline",
        description="Exact, priced, attributed metering of LLM token usage.",
    )
    parser.add_argument("--version", action="version", version=f"meterline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_prices_command(commands)
    add_demo_command(commands)
    add_ledger_commands(commands)
    add_maintenance_commands(commands)
    add_reconcile_command(commands)
    add_budget_commands(commands)
    add_serve_command(commands)
    add_dashboard_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``meterline`` command line.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` by default.

    Returns:
        The exit status: 0 on success, 2 on a user error (reported on stderr).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argument errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        status: int = handler(args)
        sys.stdout.flush()
    except MeterlineError as exc:
        return report_error(str(exc))
    except BrokenPipeError:
        # The reader went away (`meterline demo | head`): stop quietly, as other CLIs do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
