"""``meterline prices``: what a model costs per token class, where the price comes from, and when."""

from __future__ import annotations as _annotations

import argparse
import json
from datetime import UTC, date, datetime, time
from typing import Any, Final

from meterline import ModelRates, Pricer, PriceTable, canonical_provider
from meterline._cli._exit import EXIT_OK, report_error
from meterline._cli._format import format_cost, format_price, format_table
from meterline.exceptions import UnknownModelError

__all__ = ["add_prices_command"]

_RATE_LABELS: Final = (
    ("input", "input"),
    ("cache_read", "cache read"),
    ("cache_write", "cache write (5 min)"),
    ("cache_write_1h", "cache write (1 h)"),
    ("output", "output"),
    ("reasoning", "reasoning"),
    ("audio_input", "audio input"),
    ("audio_output", "audio output"),
)
"""`ModelRates` token classes, in display order, with their labels."""


def _parse_at(text: str) -> datetime:
    """Parse ``--at``: an ISO 8601 date or date-time, UTC when it has no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), time(0))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected an ISO 8601 date or date-time, e.g. 2026-01-01 or 2026-01-01T00:00Z"
            ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unknown_model_hint(model: str, provider: str | None) -> str:
    example_provider = provider or "ollama"
    return (
        "To price it, list it in a price table (TOML, prices in USD per 1M tokens) and pass the file "
        "with --prices:\n\n"
        "    [[model]]\n"
        f'    provider = "{example_provider}"\n'
        f'    model = "{model}"\n'
        '    input_mtok = "0.10"\n'
        '    output_mtok = "0.30"\n'
        '    note = "our GPU cost"\n\n'
        f"    meterline prices {model} --provider {example_provider} --prices prices.toml\n\n"
        "The same table prices recorded usage: meterline.Meter(prices='prices.toml')."
    )


def _tier_title(threshold: int, next_threshold: int | None) -> str:
    if threshold == 0:
        return "USD per 1M tokens" if next_threshold is None else f"up to {next_threshold:,} input tokens"
    return f"above {threshold:,} input tokens"


def _rates_to_dict(rates: ModelRates, at: datetime) -> dict[str, Any]:
    return {
        "model": rates.model,
        "provider": rates.provider,
        "resolved_provider": rates.resolved_provider,
        "at": at.isoformat().replace("+00:00", "Z"),
        "unit": "USD per 1M tokens",
        "tiers": [
            {"above_input_tokens": threshold, "prices": {name: str(prices[name]) for name, _ in _RATE_LABELS}}
            for threshold, prices in rates.tiers
        ],
        "per_request": str(rates.per_request),
        "per_call": {name: str(price) for name, price in rates.per_call.items() if price},
        "source": rates.source,
        "resolved_model": rates.resolved_model,
        "note": rates.note,
        "price_version": rates.price_version,
    }


def _render_rates(rates: ModelRates, at: datetime, *, at_given: bool) -> str:
    thresholds = [threshold for threshold, _ in rates.tiers]
    headers = ["token class"] + [
        _tier_title(threshold, thresholds[i + 1] if i + 1 < len(thresholds) else None)
        for i, threshold in enumerate(thresholds)
    ]
    rows = [
        [label, *(format_price(prices[name]) for _, prices in rates.tiers)] for name, label in _RATE_LABELS
    ]
    if rates.provider is None:
        provider = f"{rates.resolved_provider or 'any'} (matched from the model id)"
    else:
        provider = rates.provider
    if rates.source == "override":
        source = f"override {rates.resolved_model!r}" + (f": {rates.note}" if rates.note else "")
    else:
        source = f"genai-prices, model {rates.resolved_model!r}"
    when = at.isoformat(timespec="minutes").replace("+00:00", "Z") + ("" if at_given else " (now)")
    per_request = format_cost(rates.per_request) if rates.per_request else "none"
    tools = ", ".join(
        f"{name.replace('_', ' ')} {format_cost(price)}" for name, price in rates.per_call.items() if price
    )
    facts = [
        ("provider", provider),
        ("prices at", when),
        ("per request", per_request),
        ("per tool call", tools or "none"),
        ("price source", source),
        ("price data", rates.price_version),
    ]
    label_width = max(len(label) for label, _ in facts)
    lines = [f"{rates.model}", *(f"  {label.ljust(label_width)}  {value}" for label, value in facts), ""]
    if len(rates.tiers) > 1:
        lines.append("  Context-length tiers: the whole request is priced at the tier of its input tokens.")
    lines.append(format_table(headers, rows))
    return "\n".join(lines)


def _cmd_prices(args: argparse.Namespace) -> int:
    table = PriceTable.from_toml(args.prices) if args.prices else None
    pricer = Pricer(table)
    provider = canonical_provider(args.provider)
    at: datetime = args.at or datetime.now(tz=UTC)
    try:
        rates = pricer.rates(args.model, provider, at)
    except UnknownModelError as exc:
        return report_error(f"{exc}\n\n{_unknown_model_hint(args.model, provider)}")
    if args.format == "json":
        print(json.dumps(_rates_to_dict(rates, at), indent=2))
    else:
        print(_render_rates(rates, at, at_given=args.at is not None))
    return EXIT_OK


def add_prices_command(commands: Any) -> None:
    """Register ``meterline prices`` on the CLI's sub-parsers."""
    prices = commands.add_parser(
        "prices",
        help="show the price of a model per token class",
        description=(
            "Show what a model costs per million tokens of each token class (per context-length tier "
            "when it has tiers), where the price comes from and the price-data version."
        ),
    )
    prices.add_argument("model", metavar="MODEL", help="model id, e.g. gpt-4o or claude-sonnet-4-5-20250929")
    prices.add_argument("--provider", metavar="P", help="provider name or alias (openai, anthropic, gemini…)")
    prices.add_argument(
        "--at",
        type=_parse_at,
        metavar="WHEN",
        help="price at this instant (ISO 8601, UTC by default, e.g. 2026-01-01T00:00Z); default: now",
    )
    prices.add_argument(
        "--prices", metavar="FILE.toml", help="price overrides ([[model]] rows) to apply first"
    )
    prices.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    prices.set_defaults(handler=_cmd_prices)
