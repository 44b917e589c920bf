"""The ledger's commands: ``report``, ``export`` and ``reprice`` (maintenance: `meterline._cli._maintenance`).

Every command takes ``--ledger URL`` (default: ``$METERLINE_LEDGER``). Times are ISO 8601
dates or date-times (UTC unless a zone is given) or ages such as ``7d``, ``12h``, ``30m``.
"""

from __future__ import annotations as _annotations

import argparse
import csv
import json
import os
import socket
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from meterline import Pricer, PriceTable, UsageEvent
from meterline._cli._format import cost_places, format_cost, format_not_in_cost, format_table, format_tokens
from meterline._money import to_usd
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, UnpricedModelWarning
from meterline.exporters import (
    STRIPE_QUANTITIES,
    BillingFormat,
    CloudEvents,
    Stripe,
    StripeMeter,
    cloudevent,
)
from meterline.ledger import ENV_VAR, LedgerBackend, LedgerRow, open_ledger, parse_by, parse_when, parse_where

__all__ = [
    "add_ledger_commands",
    "export_lines",
    "ledger_option",
    "open_from",
    "parse_when",
    "render_report",
    "reprice",
    "when_argument",
]

EXPORT_FORMATS: Final = ("jsonl", "csv", "cloudevents", "stripe", "parquet")
BILLING_FORMATS: Final = ("cloudevents", "stripe")
"""Formats ``export`` can deliver (``--to``) and resume (``--cursor``)."""
DEFAULT_STRIPE_METERS: Final = (
    "meterline_input_tokens=input_tokens",
    "meterline_output_tokens=output_tokens",
)


def when_argument(text: str) -> datetime:
    try:
        return parse_when(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of rows, at least 1")
    return int(text)


def _dimensions(text: str) -> tuple[str, ...]:
    try:
        return parse_by(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def open_from(args: argparse.Namespace) -> LedgerBackend:
    return open_ledger(args.ledger)


# --------------------------------------------------------------------------------------------
# report


def _tool_calls(usage: Usage) -> int:
    """A usage's server-side tool calls of every kind (web searches, fetches…)."""
    return (
        usage.web_search_requests
        + usage.web_fetch_requests
        + usage.file_search_requests
        + usage.code_execution_requests
    )


def _report_rows(
    rows: Sequence[LedgerRow], granularity: str | None, places: int, tools: bool
) -> list[list[str]]:
    table = []
    for row in rows:
        period = [] if granularity is None or row.period is None else [_period_label(row.period, granularity)]
        table.append(
            [
                *period,
                *(value if value is not None else "-" for value in row.key),
                format_tokens(row.events),
                format_tokens(row.usage.input_tokens),
                format_tokens(row.usage.cache_read_tokens),
                format_tokens(row.usage.output_tokens),
                *([format_tokens(_tool_calls(row.usage))] if tools else []),
                format_cost(row.cost, places),
                format_not_in_cost(row.unmeasured, row.unpriced),
            ]
        )
    return table


def _period_label(period: datetime, granularity: str) -> str:
    if granularity == "month":
        return period.strftime("%Y-%m")
    if granularity == "day":
        return period.strftime("%Y-%m-%d")
    return period.strftime("%Y-%m-%d %H:00")


def render_report(
    rows: Sequence[LedgerRow], by: Sequence[str], granularity: str | None, *, title: str = ""
) -> str:
    """A readable table of ledger rows, sorted by cost, with a total line.

    A ``tool calls`` column (the provider's server-side tools: web searches…) is shown when
    any row has some.
    """
    total = LedgerRow.total(rows)
    tools = total.usage.has_units
    headers = [
        *(["period"] if granularity else []),
        *by,
        "events",
        "input",
        "cache read",
        "output",
        *(["tool calls"] if tools else []),
        "cost",
        "not in cost",
    ]
    places = cost_places([row.cost for row in rows] + [total.cost])  # exact, with aligned points
    body = _report_rows(rows, granularity, places, tools)
    body.append(
        [
            *([""] if granularity else []),
            "total",
            *([""] * (len(by) - 1)),
            format_tokens(total.events),
            format_tokens(total.usage.input_tokens),
            format_tokens(total.usage.cache_read_tokens),
            format_tokens(total.usage.output_tokens),
            *([format_tokens(_tool_calls(total.usage))] if tools else []),
            format_cost(total.cost, places),
            format_not_in_cost(total.unmeasured, total.unpriced),
        ]
    )
    return (title + "\n" if title else "") + format_table(headers, body)


def _cmd_report(args: argparse.Namespace) -> int:
    source: str
    where = parse_where(args.where)
    if args.engine == "duckdb":
        if args.parquet is None:
            raise ConfigurationError(
                "--engine duckdb reads a Parquet export: --parquet DIR (meterline export --format parquet)"
            )
        from meterline.ledger import parquet_totals  # noqa: PLC0415 - the analytics extra, when used

        rows = parquet_totals(
            args.parquet,
            by=args.by,
            where=where,
            since=args.since,
            until=args.until,
            granularity=args.granularity,
        )[: args.limit]
        source = f"Parquet export {args.parquet} (DuckDB)"
    else:
        ledger = open_from(args)
        try:
            rows = ledger.totals(
                by=args.by,
                where=where,
                since=args.since,
                until=args.until,
                granularity=args.granularity,
                limit=args.limit,
            )
        finally:
            ledger.close()
        source = f"ledger {ledger.url}"
    if args.format == "json":
        print(json.dumps([row.to_dict(args.by) for row in rows], indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        fields = list(LedgerRow(key=(None,) * len(args.by), period=None).to_dict(args.by))
        if args.granularity:
            fields.insert(0, "period")
        writer.writerow(fields)
        for row in rows:
            data = row.to_dict(args.by)
            writer.writerow([data.get(name, "") for name in fields])
    else:
        print(render_report(rows, args.by, args.granularity, title=source))
    return 0


# --------------------------------------------------------------------------------------------
# export


_CSV_FIELDS: Final = (
    "id",
    "time",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "measured",
    *USAGE_FIELDS,
    "cost",
    "price_version",
    "latency_ms",
    "operation_id",
    "attempt",
    "response_id",
    "tokens_saved",
    "dimensions",
)


def _csv_row(event: UsageEvent) -> list[Any]:
    usage = event.usage
    counts = list(usage.to_dict().values()) if usage is not None else [""] * len(USAGE_FIELDS)
    return [
        event.id,
        event.time.isoformat().replace("+00:00", "Z"),
        event.operation,
        event.status,
        event.provider or "",
        event.model or "",
        event.request_model or "",
        0 if usage is None else 1,
        *counts,
        "" if event.cost is None else str(event.cost),
        event.price_version or "",
        "" if event.latency_ms is None else event.latency_ms,
        event.operation_id or "",
        event.attempt,
        event.response_id or "",
        event.tokens_saved,
        json.dumps(dict(event.dimensions), sort_keys=True),
    ]


def export_lines(
    events: Iterator[UsageEvent], fmt: str, *, source: str, subject: str | None
) -> Iterator[str]:
    """The export of ``events`` in ``fmt``, one line at a time (constant memory)."""
    if fmt == "csv":

        class _Line:
            value = ""

            def write(self, text: str) -> None:
                self.value = text

        line = _Line()
        writer = csv.writer(line, lineterminator="\n")
        writer.writerow(_CSV_FIELDS)
        yield line.value
        for event in events:
            writer.writerow(_csv_row(event))
            yield line.value
        return
    for event in events:
        if fmt == "cloudevents":
            document = cloudevent(event, source=source, subject_dimension=subject)
        else:
            document = event.to_dict()
        yield json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n"


def _stripe_meter(text: str) -> StripeMeter:
    """Parse ``--stripe-meter EVENT_NAME=QUANTITY[:UNIT]`` (e.g. ``llm_cost=cost:0.000001``)."""
    name, equals, rest = text.partition("=")
    quantity, _, unit = rest.partition(":")
    if not equals or not name or quantity not in STRIPE_QUANTITIES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected EVENT_NAME=QUANTITY[:UNIT], QUANTITY one of {', '.join(STRIPE_QUANTITIES)}, "
            "e.g. llm_output_tokens=output_tokens or llm_cost_micro_usd=cost:0.000001"
        )
    try:
        return StripeMeter(event_name=name, quantity=quantity, unit=unit or 1)  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _billing_format(args: argparse.Namespace) -> BillingFormat:
    if args.format == "cloudevents":
        return CloudEvents(source=args.source, subject_dimension=args.subject)
    if args.subject is None:
        raise ConfigurationError(
            "--format stripe needs --customer DIMENSION: the dimension whose value is the Stripe customer id"
        )
    meters = args.stripe_meter or [_stripe_meter(text) for text in DEFAULT_STRIPE_METERS]
    return Stripe(meters=tuple(meters), customer_dimension=args.subject, customer_key=args.customer_key)


def _export_billing(args: argparse.Namespace, ledger: LedgerBackend) -> int:
    from meterline.exporters import Cursor, check_url, feed, http_sender, lines_sender  # noqa: PLC0415 - when used

    fmt = _billing_format(args)
    headers = {}
    if args.auth_env:
        token = os.environ.get(args.auth_env)
        if not token:
            raise ConfigurationError(f"--auth-env {args.auth_env}: that environment variable is not set")
        headers["Authorization"] = f"Bearer {token}"
    if args.to is not None:
        send = http_sender(check_url(args.to), fmt, headers=headers, retries=args.retries)
    else:
        send = lines_sender(sys.stdout.write, sys.stdout.flush)
    cursor = None
    after = args.after
    if args.cursor is not None:
        lateness = int((datetime.now(tz=UTC) - parse_when(args.lateness)).total_seconds())
        cursor = Cursor.load(args.cursor, format=fmt.name, lateness_s=max(lateness, 0))
        after = cursor.start_after() or after
    events = ledger.events(since=args.since, until=args.until, after_id=after)
    result = feed(
        events,
        fmt,
        send,
        batch_size=args.batch,
        cursor=cursor,
        save=None if args.cursor is None else (lambda moved: moved.save(args.cursor)),
    )
    for reason in result.skipped[:10]:
        print(f"meterline: skipped: {reason}", file=sys.stderr)
    if len(result.skipped) > 10:
        print(f"meterline: skipped {len(result.skipped) - 10:,} more events", file=sys.stderr)
    if args.to is not None:
        where = f"; cursor at {result.cursor.last_id}" if result.cursor is not None else ""
        print(
            f"delivered {result.documents:,} documents for {result.events:,} events to {args.to}"
            f" ({len(result.skipped):,} skipped){where}",
            file=sys.stderr,
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if args.format not in BILLING_FORMATS and (args.to is not None or args.cursor is not None):
        raise ConfigurationError(
            f"--to and --cursor need --format cloudevents or stripe, not {args.format!r}"
        )
    if (args.format == "parquet") != (args.out is not None):
        raise ConfigurationError("--format parquet writes to a directory: give it --out DIR (and only it)")
    if args.format == "parquet" and args.after is not None:
        raise ConfigurationError("--after resumes a stream of lines; a Parquet export takes --since/--until")
    ledger = open_from(args)
    try:
        if args.format in BILLING_FORMATS:
            return _export_billing(args, ledger)
        if args.format == "parquet":
            from meterline.ledger import export_ledger_parquet  # noqa: PLC0415 - the analytics extra, when used

            written = export_ledger_parquet(ledger, args.out, since=args.since, until=args.until)
            print(
                f"{written.events} events in {written.files} files, {written.days} days: {args.out}",
                file=sys.stderr,
            )
            return 0
        json_pages = getattr(ledger, "json_lines", None)
        if args.format == "jsonl" and json_pages is not None:
            # The ledger's rows straight to lines (no UsageEvent each): the same bytes, faster.
            for text in json_pages(since=args.since, until=args.until, after_id=args.after):
                sys.stdout.write(text)
            return 0
        events = ledger.events(since=args.since, until=args.until, after_id=args.after)
        for line in export_lines(events, args.format, source=args.source, subject=args.subject):
            sys.stdout.write(line)
    finally:
        ledger.close()
    return 0


# --------------------------------------------------------------------------------------------
# reprice


def reprice(
    ledger: LedgerBackend, pricer: Pricer, *, since: datetime | None, until: datetime | None
) -> tuple[int, int]:
    """Recompute the cost of stored events with ``pricer`` at each event's time.

    Only events whose cost changes are updated; the ledger keeps their previous cost and
    price version for audit.

    Returns:
        How many events changed, and how many measured model calls still have no price.
    """
    changed = unpriced = 0
    batch: list[tuple[str, Decimal | None, str | None]] = []
    version = pricer.version
    with warnings.catch_warnings():
        # Counted and reported instead: one warning per model would say the same thing.
        warnings.simplefilter("ignore", UnpricedModelWarning)
        for event in ledger.events(since=since, until=until):
            if event.usage is None or event.operation in ("execute_tool", "cache"):
                continue
            pico = (
                None
                if event.model is None
                else pricer.cost_pico(event.usage, event.provider, event.model, event.time_ns)
            )
            cost = None if pico is None else to_usd(pico)
            unpriced += cost is None
            if cost != event.cost:  # an unchanged cost keeps the version it was priced with
                batch.append((event.id, cost, None if cost is None else version))
            if len(batch) >= 1000:
                changed += ledger.reprice(batch)
                batch = []
    if batch:
        changed += ledger.reprice(batch)
    return changed, unpriced


def _cmd_reprice(args: argparse.Namespace) -> int:
    pricer = Pricer(PriceTable.from_toml(args.prices) if args.prices else None)
    ledger = open_from(args)
    try:
        changed, unpriced = reprice(ledger, pricer, since=args.since, until=args.until)
    finally:
        ledger.close()
    print(f"repriced {changed:,} events with {pricer.version}; {unpriced:,} model calls still have no price")
    return 0


def ledger_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--ledger URL`` to a command."""
    parser.add_argument("--ledger", metavar="URL", help=f"ledger URL (default: ${ENV_VAR})")


def add_ledger_commands(commands: Any) -> None:
    """Register the ledger's commands on the CLI's sub-parsers."""
    report = commands.add_parser("report", help="totals from a ledger, by any dimension, sorted by cost")
    ledger_option(report)
    report.add_argument("--by", type=_dimensions, default=("model",), help="dimensions, e.g. model,agent")
    report.add_argument("--since", type=when_argument, help="e.g. 7d or 2026-11-01")
    report.add_argument("--until", type=when_argument)
    report.add_argument("--granularity", choices=("hour", "day", "month"))
    report.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="keep events whose NAME is VALUE (repeat NAME for any of its values); NAME alone: without it",
    )
    report.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="only the first N rows by cost (the total line is theirs)",
    )
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")
    report.add_argument(
        "--engine",
        choices=("ledger", "duckdb"),
        default="ledger",
        help="ledger: the store's roll-ups; duckdb: a Parquet export (--parquet DIR), for ad-hoc scale",
    )
    report.add_argument("--parquet", metavar="DIR", help="the Parquet export --engine duckdb reads")
    report.set_defaults(handler=_cmd_report)

    export = commands.add_parser(
        "export",
        help="stream a ledger's events (constant memory), or deliver them to a billing endpoint",
        description=(
            "Stream a ledger's events as JSON lines, CSV, CloudEvents (OpenMeter) or Stripe meter events. "
            "With --to URL, POST them in batches; with --cursor FILE, resume where the last run stopped: "
            "the cursor advances only after a batch was acknowledged, so no event is skipped and a crash "
            "re-sends at most one batch, with the same ids (the endpoint deduplicates)."
        ),
    )
    ledger_option(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
    export.add_argument("--since", type=when_argument)
    export.add_argument("--until", type=when_argument)
    export.add_argument("--after", metavar="ID", help="resume after this event id (a cursor)")
    export.add_argument(
        "--out", metavar="DIR", help="--format parquet: the dataset's directory (new or empty)"
    )
    export.add_argument("--source", default=f"//meterline/{socket.gethostname()}", help="CloudEvents source")
    export.add_argument(
        "--subject",
        "--customer",
        dest="subject",
        metavar="DIMENSION",
        help="dimension that names the customer (CloudEvents subject; Stripe customer, required)",
    )
    export.add_argument("--to", metavar="URL", help="POST batches to this http(s) endpoint")
    export.add_argument(
        "--cursor",
        metavar="FILE",
        help="resume from and record delivery progress in FILE (created if missing)",
    )
    export.add_argument(
        "--lateness",
        default="10m",
        metavar="AGE",
        help="with --cursor: re-read this window for events that reached the ledger late (default 10m)",
    )
    export.add_argument(
        "--batch", type=int, default=100, metavar="N", help="documents per request (default 100)"
    )
    export.add_argument(
        "--retries", type=int, default=5, metavar="N", help="retries of a failing request (default 5)"
    )
    export.add_argument(
        "--auth-env", metavar="VAR", help="send 'Authorization: Bearer $VAR' (the token stays out of argv)"
    )
    export.add_argument(
        "--stripe-meter",
        type=_stripe_meter,
        action="append",
        metavar="NAME=QUANTITY[:UNIT]",
        help=(
            "a Stripe meter to feed (repeatable), e.g. llm_output_tokens=output_tokens or "
            "llm_cost_micro_usd=cost:0.000001; default: input_tokens and output_tokens meters"
        ),
    )
    export.add_argument(
        "--customer-key", default="stripe_customer_id", help="Stripe payload key of the customer"
    )
    export.set_defaults(handler=_cmd_export)

    again = commands.add_parser("reprice", help="recompute stored costs with the current prices")
    ledger_option(again)
    again.add_argument("--since", type=when_argument)
    again.add_argument("--until", type=when_argument)
    again.add_argument("--prices", metavar="FILE.toml", help="price overrides (TOML)")
    again.set_defaults(handler=_cmd_reprice)
