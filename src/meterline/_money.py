"""Money: every amount meterline adds up is an ``int`` of pico-dollars (1e-12 USD).

One unit everywhere: compiled prices (pico-dollars per token), an event's cost, live
totals, snapshots, budget counters and the ledger's columns. Integers add up exactly and
in any order; ``Decimal`` appears only at the edges, where a user gives or reads an amount.

Why the pico-dollar: every price genai-prices publishes has at most six decimals per
million tokens, so one token of any class costs a whole number of pico-dollars; a signed
64-bit column holds up to 9.2 million USD of them, which is what the stores keep. A price
finer than that (a hand-written override with more decimals) is priced exactly by
genai-prices and the event's cost rounded to the pico-dollar, half to even, once, where it
is priced.
"""

from __future__ import annotations as _annotations

from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Final

__all__ = [
    "EXACT",
    "PICO",
    "PICO_PER_USD",
    "pico_of",
    "pico_of_exact",
    "tidy",
    "to_usd",
    "usd_text",
]

PICO_PER_USD: Final = 10**12
"""Pico-dollars in one US dollar."""
PICO: Final = Decimal("1E-12")
"""One pico-dollar, in USD."""
EXACT: Final = Context(prec=4000, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""``Decimal`` arithmetic that never rounds: amounts have at most a few dozen digits."""

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_SMALL: Final = 10**27
"""Below this many pico-dollars, ``Decimal(n) * PICO`` under the default 28-digit context is exact."""


def tidy(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, never in exponent notation (``10``, not ``1E+1``); exact."""
    normal = value.normalize(EXACT)
    exponent = normal.as_tuple().exponent
    return normal if isinstance(exponent, int) and exponent < 0 else normal.quantize(_ONE, context=EXACT)


def to_usd(pico: int) -> Decimal:
    """An amount of pico-dollars as an exact, tidy ``Decimal`` of USD (``352500000`` gives ``0.0003525``)."""
    if pico == 0:
        return _ZERO
    if -_SMALL < pico < _SMALL:
        # Strip the zeros first: an int division is cheaper than normalising a Decimal.
        exponent = -12
        while pico % 10 == 0 and exponent < 0:
            pico //= 10
            exponent += 1
        return Decimal(pico).scaleb(exponent, EXACT) if exponent else Decimal(pico)
    return tidy(Decimal(pico).scaleb(-12, EXACT))


def usd_text(pico: int) -> str:
    """A non-negative amount of pico-dollars as an exact decimal string of USD (``"0.0035"``).

    No trailing zeros and never exponent notation; ``Decimal`` of the text is the amount
    exactly. This is how the ledger writes costs out (CSV, JSON, its SQL view).
    """
    if pico < PICO_PER_USD:
        return "0." + str(pico + PICO_PER_USD)[1:].rstrip("0") if pico > 0 else "0"
    whole, fraction = divmod(pico, PICO_PER_USD)
    return f"{whole}.{fraction:012d}".rstrip("0").rstrip(".")


def pico_of(usd: Decimal) -> int:
    """``usd`` in pico-dollars, rounded half to even past that precision."""
    numerator, denominator = usd.as_integer_ratio()  # exact, and cheaper than Decimal arithmetic
    pico, rest = divmod(numerator * PICO_PER_USD, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and pico % 2):
        pico += 1
    return pico


def pico_of_exact(usd: Decimal) -> int | None:
    """``usd`` in pico-dollars when that is exact, else ``None`` (a finer amount)."""
    numerator, denominator = usd.as_integer_ratio()
    pico, rest = divmod(numerator * PICO_PER_USD, denominator)
    return None if rest else pico
