"""``meterline demo``: a simulated day of a small multi-agent product, metered end to end.

A research assistant serves three organisations. Every session runs three agents: a
*planner* (Anthropic Claude with a cached system prompt, or a self-hosted Ollama model that
has no price), a *researcher* (an application cache, OpenAI embeddings, a retrieval tool,
Gemini with thinking and a ``web_search`` tool) and a *writer* (OpenAI GPT-4o with prompt
caching and a ``code_exec`` tool, DeepSeek's reasoner for one organisation, and a streamed
GPT-4o mini answer; one of these streams ends without a usage record).

Every call is a realistic provider response body (token counts drawn from a seeded
``random.Random``, so a seed always gives the same report) fed to a `meterline.Meter` through
the public API only. The report is derived from ``meter.totals(by=...)`` and from the scopes'
own live totals, never from counters kept on the side.

Every model call is made under a reservation (`Meter.reserve`) against two budgets: each
org's daily spend, with soft alerts, and each session's tokens. At the end of the day a
runaway agent asks for a call far larger than its session has left, and is refused before
anything is sent.

This module is the command; the demo itself loads when it runs:

- ``_product``: the organisations, their budgets and the day's constants.
- ``_simulation``: the day, call by call (`Simulation`).
- ``_bodies``: the provider response bodies it fabricates.
- ``_run``: `run_demo`, which meters the day and collects a `DemoResult` (``_result``).
- ``_report``: the report it prints.
"""

from __future__ import annotations as _annotations

import argparse
import json
from typing import Any

from meterline._cli._exit import EXIT_OK
from meterline._cli._ledger import render_report
from meterline.ledger import open_ledger

__all__ = ["add_demo_command"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from meterline._cli._demo._run import run_demo  # noqa: PLC0415 - only this command needs the demo

    result = run_demo(seed=args.seed, ledger=args.ledger)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    print(result.text)
    if args.ledger is not None:
        ledger = open_ledger(args.ledger)
        try:
            stats = ledger.stats()
            print(f"\nFrom the ledger ({stats.url}: {stats.events:,} events, exactly once)\n")
            for by in (("user",), ("model",)):
                print(render_report(ledger.totals(by=by), by, None))
                print()
        finally:
            ledger.close()
        print(f"Query it again: meterline report --ledger {args.ledger} --by agent,model --since 1d")
    return EXIT_OK


def add_demo_command(commands: Any) -> None:
    """Register ``meterline demo`` on the CLI's sub-parsers."""
    demo = commands.add_parser(
        "demo",
        help="meter a simulated day of a multi-agent product and print the report",
        description=(
            "Run a simulated day of a small multi-agent product (several providers, tools, caches, "
            "one stream without usage and one self-hosted model without a price) through a Meter, "
            "and print the report derived from its totals."
        ),
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the simulation (default 7)")
    demo.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    demo.add_argument(
        "--ledger", metavar="URL", help="also write every event to this ledger, and report from it"
    )
    demo.set_defaults(handler=_cmd_demo)
