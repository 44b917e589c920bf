"""Specification of `meterline._cli._format`: tables, costs, prices and token counts."""

from __future__ import annotations as _annotations

from decimal import Decimal

import pytest

from meterline._cli._format import format_cost, format_price, format_table, format_tokens


def test_format_tokens_uses_thousands_separators() -> None:
    """Token counts get thousands separators."""
    assert format_tokens(1_234_567) == "1,234,567"
    assert format_tokens(0) == "0"


def test_format_cost_keeps_enough_digits() -> None:
    """Costs show at least six decimals, more when needed (up to ten), never in exponent form."""
    assert format_cost(Decimal("0.001234")) == "$0.001234"
    assert format_cost(Decimal(0)) == "$0.000000"
    assert format_cost(Decimal("0.00000054")) == "$0.00000054"
    assert format_cost(Decimal("1234.5")) == "$1,234.500000"
    assert format_cost(Decimal("0.000000000012345")) == "$0.0000000000"
    assert format_cost(Decimal("0.5"), places=2) == "$0.50"


def test_format_price_is_exact_with_two_decimals_at_least() -> None:
    """Prices per million tokens keep every digit and at least two decimals."""
    assert format_price(Decimal("2.5")) == "$2.50"
    assert format_price(Decimal("0.028")) == "$0.028"
    assert format_price(Decimal(10)) == "$10.00"


def test_format_table_aligns_columns() -> None:
    """Text columns are left-aligned, numeric columns right-aligned, under a rule as wide as each column."""
    table = format_table(("name", "tokens", "cost"), [("a", "1,000", "$0.10"), ("longer", "5", "$12.00")])
    assert table.splitlines() == [
        "  name    tokens    cost",
        "  ------  ------  ------",
        "  a        1,000   $0.10",
        "  longer       5  $12.00",
    ]


def test_format_table_rejects_ragged_rows() -> None:
    """A row with the wrong number of cells is an error, not a misaligned table."""
    with pytest.raises(ValueError, match="expected 2 cells"):
        format_table(("a", "b"), [("1",)])
