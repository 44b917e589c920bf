"""Plain-text formatting shared by the command line and the demo: tables, costs, token counts."""

from __future__ import annotations as _annotations

import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

__all__ = [
    "cost_places",
    "format_amount",
    "format_cost",
    "format_not_in_cost",
    "format_price",
    "format_table",
    "format_tokens",
]

_NUMERIC: Final = re.compile(r"[-+]?\$?[\d,]*\.?\d+(?:\s*%)?|[-\u2014]")
"""A cell that is a number (count, money, percentage) or an empty-value dash: right-aligned."""


def format_tokens(count: int) -> str:
    """Format a token count with thousands separators: ``1234567`` -> ``"1,234,567"``."""
    return f"{count:,}"


def cost_places(values: Iterable[Decimal], minimum: int = 6, maximum: int = 10) -> int:
    """The decimal places that show every value in ``values`` exactly, within ``[minimum, maximum]``.

    One count for a whole column keeps its decimal points aligned.
    """
    places = minimum
    for value in values:
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            places = -exponent
    return min(places, maximum)


def format_cost(value: Decimal, places: int | None = None) -> str:
    """Format an amount of USD as ``"$0.001234"``.

    Args:
        value: The amount.
        places: Decimal places; by default as many as the amount needs, between 6 and 10
            (rounded half-even beyond 10).

    Returns:
        The amount with a dollar sign and thousands separators, e.g. ``"$1,234.500000"``.
    """
    if places is None:
        places = cost_places((value,))
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"


def format_amount(value: int | Decimal, metric: str, places: int) -> str:
    """Format a budget's amount: USD for the ``cost`` metric, a token or request count otherwise.

    Args:
        value: The amount (``Decimal`` USD for cost, an int otherwise).
        metric: The budget's metric (``cost``, ``tokens``, ``requests``…).
        places: Decimal places of a cost.

    Returns:
        ``"$0.50"`` for a cost, ``"12,000"`` for a count.
    """
    if metric == "cost":
        return format_cost(Decimal(value), places)
    return format_tokens(int(value))


def format_not_in_cost(unmeasured: int, unpriced: int) -> str:
    """Say which model calls a cost leaves out: ``"1 unmeasured, 7 unpriced"``, or ``""`` for none."""
    parts = []
    if unmeasured:
        parts.append(f"{unmeasured} unmeasured")
    if unpriced:
        parts.append(f"{unpriced} unpriced")
    return ", ".join(parts)


def format_price(value: Decimal) -> str:
    """Format a price per million tokens: at least two decimal places, exact (``"$0.028"``)."""
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"${value:,.{places}f}"


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    align: str | None = None,
    indent: int = 2,
) -> str:
    """Render rows as a plain-text table with aligned columns.

    Args:
        headers: The column titles.
        rows: The cells, already formatted as strings.
        align: One character per column, ``"l"`` (left) or ``"r"`` (right). By default a
            column is right-aligned when every cell in it is a number, an amount or a dash.
        indent: Spaces before every line.

    Returns:
        The table: a header line, a rule and one line per row (no trailing newline).

    Raises:
        ValueError: when a row or ``align`` does not have one entry per column.
    """
    body = [list(row) for row in rows]
    width = len(headers)
    for row in body:
        if len(row) != width:
            raise ValueError(f"row {row!r}: expected {width} cells, one per column {list(headers)!r}")
    if align is None:
        align = "".join(
            "r" if body and all(not row[i] or _NUMERIC.fullmatch(row[i]) for row in body) else "l"
            for i in range(width)
        )
    if len(align) != width or set(align) - {"l", "r"}:
        raise ValueError(f"align={align!r}: expected one 'l' or 'r' per column ({width})")
    widths = [max(len(headers[i]), *(len(row[i]) for row in body)) for i in range(width)]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if align[i] == "r" else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (pad + "  ".join(parts)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines.extend(line(row) for row in body)
    return "\n".join(lines)
