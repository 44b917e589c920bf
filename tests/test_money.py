"""One money unit: pico-dollars, exact conversions to and from USD."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline._money import pico_of, pico_of_exact, to_usd, usd_text


@pytest.mark.parametrize(
    ("pico", "text"),
    [
        (0, "0"),
        (1, "0.000000000001"),
        (4_720_000_000, "0.00472"),
        (10**12, "1"),
        (12_500_000_000_000, "12.5"),
        (10**19 + 1, "10000000.000000000001"),
    ],
)
def test_usd_text_is_exact_plain_decimal(pico: int, text: str) -> None:
    """An amount of 1e-12 USD becomes its exact decimal string, without trailing zeros or exponent."""
    assert usd_text(pico) == text
    assert Decimal(text) == Decimal(pico).scaleb(-12)


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_to_usd_is_exact_and_tidy(pico: int) -> None:
    """Pico-dollars become the exact USD amount, with no trailing zeros, whatever the context's precision."""
    with localcontext() as context:
        context.prec = 3
        usd = to_usd(pico)
    assert usd == Decimal(pico).scaleb(-12)
    digits = usd.as_tuple()
    assert pico == 0 or digits.digits[-1] != 0 or digits.exponent == 0


@given(st.integers(min_value=0, max_value=2**70))
def test_pico_of_inverts_to_usd(pico: int) -> None:
    """Converting to USD and back gives the same pico-dollars, exactly."""
    assert pico_of(to_usd(pico)) == pico
    assert pico_of_exact(to_usd(pico)) == pico


def test_pico_of_exact_refuses_a_finer_amount() -> None:
    """An amount finer than a pico-dollar has no exact integer."""
    assert pico_of_exact(Decimal("1E-13")) is None
    assert pico_of(Decimal("1.5E-12")) == 2
