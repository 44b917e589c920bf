"""Ledger maintenance: ``meterline ledger stats|check|dead-letters|replay|prune``."""

from __future__ import annotations as _annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from meterline._cli._exit import EXIT_DAMAGED, EXIT_OK
from meterline._cli._format import format_table, format_tokens
from meterline._cli._ledger import ledger_option, open_from, when_argument
from meterline.ledger import check_ledger

__all__ = ["add_maintenance_commands"]


def _cmd_stats(args: argparse.Namespace) -> int:
    ledger = open_from(args)
    try:
        stats = ledger.stats()
    finally:
        ledger.close()

    def when(moment: datetime | None) -> str:
        return "-" if moment is None else moment.isoformat().replace("+00:00", "Z")

    rows = [
        ["ledger", stats.url],
        ["schema version", str(stats.schema_version)],
        ["events", format_tokens(stats.events)],
        ["first event", when(stats.first_time)],
        ["last event", when(stats.last_time)],
        ["roll-up rows", format_tokens(stats.rollup_rows)],
        ["dimension values", format_tokens(stats.dimension_values)],
    ]
    print(format_table(["", ""], rows))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    found = check_ledger(args.ledger)
    if found.ok:
        print(f"{found.url}: ok ({format_tokens(found.events_read)} events read back)")
        return EXIT_OK
    print(f"{found.url}: {len(found.problems)} problem(s)")
    for problem in found.problems:
        print(f"  {problem}")
    return EXIT_DAMAGED


def _cmd_dead_letters(args: argparse.Namespace) -> int:
    from meterline._delivery import default_spool_dir  # noqa: PLC0415 - loaded when used
    from meterline.ledger import DEAD_LETTERS_NAME, DeadLetters  # noqa: PLC0415 - loaded when used

    ledger = open_from(args)
    try:
        letters = DeadLetters(Path(args.spool or default_spool_dir(ledger.url)) / DEAD_LETTERS_NAME)
        if args.retry:
            written = letters.retry(ledger)
            print(f"retried: {written:,} written to {ledger.url}")
        found = list(letters)
    finally:
        ledger.close()
    if not found:
        print(f"no dead letters in {letters.path}")
        return EXIT_OK
    print(f"{len(found):,} event(s) the ledger refused, kept in {letters.path}:")
    rows = [
        [letter.event.id, letter.failed_at, letter.event.model or "-", letter.reason[:100]]
        for letter in found[:50]
    ]
    print(format_table(["id", "refused at", "model", "reason"], rows))
    if len(found) > 50:
        print(f"… and {len(found) - 50:,} more")
    return EXIT_DAMAGED


def _cmd_prune(args: argparse.Namespace) -> int:
    ledger = open_from(args)
    try:
        removed = ledger.prune(args.before)
    finally:
        ledger.close()
    print(f"pruned {removed:,} events before {args.before.isoformat()}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from meterline._delivery import Spool, default_spool_dir  # noqa: PLC0415 - loaded when used

    ledger = open_from(args)
    try:
        spool = Spool(args.spool or default_spool_dir(ledger.url))
        replayed = spool.replay(ledger)
    finally:
        ledger.close()
    print(f"replayed {replayed:,} events from {spool.directory}")
    return 0


def add_maintenance_commands(commands: Any) -> None:
    """Register ``meterline ledger …`` on the CLI's sub-parsers."""
    maintenance = commands.add_parser(
        "ledger", help="ledger maintenance: stats, check, dead-letters, replay, prune"
    )
    actions = maintenance.add_subparsers(title="actions", metavar="ACTION")
    stats = actions.add_parser("stats", help="what the ledger holds")
    ledger_option(stats)
    stats.set_defaults(handler=_cmd_stats)
    check = actions.add_parser("check", help="say what is wrong with a ledger (exit 1), or that it is sound")
    ledger_option(check)
    check.set_defaults(handler=_cmd_check)
    letters = actions.add_parser(
        "dead-letters", help="events the ledger refused while it worked (exit 1 if any); --retry them"
    )
    ledger_option(letters)
    letters.add_argument("--spool", metavar="DIR", help="spool directory (default: the ledger's)")
    letters.add_argument("--retry", action="store_true", help="write them again (after a fix)")
    letters.set_defaults(handler=_cmd_dead_letters)
    replay = actions.add_parser("replay", help="write spooled events to the ledger")
    ledger_option(replay)
    replay.add_argument("--spool", metavar="DIR", help="spool directory (default: the ledger's)")
    replay.set_defaults(handler=_cmd_replay)
    prune = actions.add_parser("prune", help="delete events older than a time")
    ledger_option(prune)
    prune.add_argument("--before", type=when_argument, required=True, help="e.g. 90d or 2026-01-01")
    prune.set_defaults(handler=_cmd_prune)
