"""``meterline serve``: the dashboard over a ledger (and a budget store), read-only (extra ``dashboard``)."""

from __future__ import annotations as _annotations

import argparse
import os
import sys
from typing import Any, Final

from meterline._cli._ledger import ledger_option
from meterline._extras import require
from meterline.budgets import ENV_VAR as BUDGET_STORE_ENV_VAR
from meterline.budgets import open_budget_store
from meterline.exceptions import ConfigurationError
from meterline.ledger import ENV_VAR as LEDGER_ENV_VAR
from meterline.ledger import open_ledger

__all__ = ["DEFAULT_PORT", "TOKEN_ENV_VAR", "add_dashboard_command", "serve_command"]

TOKEN_ENV_VAR: Final = "METERLINE_DASHBOARD_TOKEN"  # noqa: S105 - a variable's name, not a secret
DEFAULT_PORT: Final = 8765
DEFAULT_READERS: Final = 4
"""Connections the dashboard reads the ledger through (a page asks for several reports at once)."""


def serve_command(ledger: str) -> str:
    """The one command that opens ``ledger`` in the dashboard (``make demo`` prints it)."""
    return f".venv/bin/meterline serve --ledger {ledger}"


def _cmd_serve(args: argparse.Namespace) -> int:
    require("dashboard", "fastapi")
    require("dashboard", "uvicorn")
    from meterline._dashboard import DashboardServer, Views  # noqa: PLC0415 - the extra, when used

    ledger_url = args.ledger or os.environ.get(LEDGER_ENV_VAR)
    if not ledger_url:
        raise ConfigurationError(f"no ledger: pass --ledger URL or set ${LEDGER_ENV_VAR}")
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None
    ledger = open_ledger(ledger_url)
    readers = [open_ledger(ledger_url) for _ in range(args.readers - 1)]
    store_url = args.budgets or os.environ.get(BUDGET_STORE_ENV_VAR)
    store = open_budget_store(store_url) if store_url else None
    try:
        views = Views(ledger, store, readers=readers)
        server = DashboardServer(
            views, host=args.host, port=args.port, token=token, refresh_seconds=args.refresh
        )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"meterline: the dashboard of ledger {ledger.url} on http://{shown}:{args.port}/"
            + (" (send the token: open it with ?token=…)" if token else "")
            + " — Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        server.serve()
    finally:
        for opened in (ledger, *readers):
            opened.close()
        if store is not None:
            store.close()
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number from 0 to 65535")
    return int(text)


def _connections(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of connections from 1 to 32")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds from 0.2 to 3600")
    return value


def add_dashboard_command(commands: Any) -> None:
    """Register ``serve`` on the CLI's sub-parsers."""
    serve = commands.add_parser(
        "serve",
        help="a local dashboard over a ledger and its budgets (read-only; extra: dashboard)",
        description=(
            "Serve a read-only dashboard of a ledger (SQLite or PostgreSQL) and, with --budgets, a "
            "budget store: overview, explore by any dimensions, drill down to events, budgets, tools "
            "and caches; its JSON API is documented at /openapi.json. It binds 127.0.0.1; binding any "
            f"other address needs --token (or ${TOKEN_ENV_VAR}), which every request then carries."
        ),
    )
    ledger_option(serve)
    serve.add_argument(
        "--budgets", metavar="URL", help=f"budget store URL (default: ${BUDGET_STORE_ENV_VAR})"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--token", help=f"a secret every request must carry (default: ${TOKEN_ENV_VAR})")
    serve.add_argument(
        "--readers",
        type=_connections,
        default=DEFAULT_READERS,
        metavar="N",
        help=f"connections to the ledger, so that N requests read at once (default {DEFAULT_READERS})",
    )
    serve.add_argument(
        "--refresh", type=_seconds, default=3.0, metavar="SECONDS", help="how often pages look for new events"
    )
    serve.set_defaults(handler=_cmd_serve)
