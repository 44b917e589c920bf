"""``meterline reconcile`` on the demo's ledger, against a local server answering as OpenAI's admin API.

The server reports what the demo's OpenAI calls used, day by day and model by model, plus
what a real organisation's report would hold and the ledger would not: a call made outside
meterline (another service on the same key), and its cost. Run from the project's root:

    .venv/bin/meterline demo --ledger sqlite:///meterline.db   # (make demo)
    .venv/bin/python scripts/reconcile_demo.py sqlite:///meterline.db
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterline import open_ledger
from meterline._cli import main as meterline

sys.path.insert(0, os.getcwd())  # the project's root: its test server answers as OpenAI's admin API
from tests.reconcile.server import AdminAPI, Line, serve


def main(url: str) -> int:
    """Serve the demo ledger's OpenAI usage (and one call it missed), then reconcile against it."""
    ledger = open_ledger(url)
    now = datetime.now(tz=UTC)
    since = now - timedelta(days=2)
    try:
        rows = ledger.totals(by=("model",), where={"provider": "openai"}, since=since, granularity="day")
    finally:
        ledger.close()
    lines = [
        Line(
            row.period.date(),
            row.key[0] or "(no model)",
            row.usage.input_tokens,
            row.usage.output_tokens,
            row.usage.cache_read_tokens,
            row.events,
            row.cost,
        )
        for row in rows
        if row.period is not None
    ]
    missed = Line(now.date(), "gpt-4o-2024-08-06", 3000, 400, 0, 1, Decimal("0.0115"))
    lines.append(missed)  # a call another service made on the same key: not in the ledger
    server = serve(AdminAPI(lines=lines))
    api = next(server)
    os.environ.setdefault("OPENAI_ADMIN_KEY", "sk-admin-demo")
    try:
        return meterline(
            [
                "reconcile",
                "--provider",
                "openai",
                "--since",
                since.isoformat(),
                "--ledger",
                url,
                "--api-base",
                api.url,
            ]
        )
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///meterline.db"))
