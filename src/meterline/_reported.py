"""A provider's own statement of what a call cost: checked, and compared with meterline's price.

Some responses state their cost (OpenRouter's ``usage.cost``). meterline keeps it beside the
cost it priced itself (`UsageEvent.reported_cost`) and counts the calls where the two
disagree: a wrong or missing price shows up there.
"""

from __future__ import annotations as _annotations

from decimal import Decimal
from typing import Final

from meterline._money import pico_of
from meterline.exceptions import ConfigurationError

__all__ = ["COST_TOLERANCE", "MAX_REPORTED_PICO", "check_reported_cost", "cost_disagrees"]

MAX_REPORTED_PICO: Final = 2**62
"""The highest cost a response may state, in pico-dollars (4.6 million USD): what every
store's 64-bit integer column holds with room."""
COST_TOLERANCE: Final = (1, 100, 1_000_000)
"""How far a provider's stated cost may be from meterline's before they disagree: 1 part in
100 of the stated cost, or 1 micro-dollar (1,000,000 pico-dollars), whichever is larger (a
provider rounds what it states)."""


def cost_disagrees(cost_pico: int | None, reported_pico: int | None) -> bool:
    """Whether a stated cost and meterline's differ by more than `COST_TOLERANCE` (pico-dollars).

    No stated cost never disagrees; a stated cost for a call meterline could not price (or
    measure) always does: that is a price missing from the table.
    """
    if reported_pico is None:
        return False
    if cost_pico is None:
        return True
    parts, whole, floor = COST_TOLERANCE
    return abs(cost_pico - reported_pico) * whole > max(reported_pico * parts, floor * whole)


def check_reported_cost(cost: object) -> int:
    """A stated cost (USD, a ``Decimal``, an int or a decimal string) in pico-dollars.

    Raises:
        ConfigurationError: unless it is a finite amount from 0 to `MAX_REPORTED_PICO`.
    """
    if type(cost) in (Decimal, int, str):
        try:
            amount: Decimal | None = Decimal(cost)  # type: ignore[arg-type]
        except ArithmeticError:
            amount = None
        if amount is not None and amount.is_finite() and 0 <= amount <= MAX_REPORTED_PICO // 10**12:
            return pico_of(amount)
    raise ConfigurationError(
        f"reported_cost={cost!r}: expected a Decimal amount of USD from 0 to {MAX_REPORTED_PICO // 10**12:,}"
    )
