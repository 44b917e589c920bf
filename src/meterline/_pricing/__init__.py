"""Exact prices: genai-prices behind an override table, compiled once per model into integer rates.

genai-prices is the price engine (offline, ``Decimal``, cache, tier and date aware). Asking it
for every event would cost tens of microseconds, so a model's prices are resolved once and
compiled into a `Plan` of integer pico-dollar rates (`_plan`), checked against genai-prices
itself; the meter prices each event once with it, and everything downstream adds up that
integer. Overrides and meterline's corrections of the price data are `PriceTable` rows
(`_table`, `_corrections`), consulted first by the `Pricer` (`_pricer`). A call's service tier
and batch mode select a variant of its price (`_modes`).
"""

from __future__ import annotations as _annotations

from meterline._pricing._corrections import BUILTIN_CORRECTIONS
from meterline._pricing._modes import STANDARD_TIERS, PriceContext, price_context
from meterline._pricing._plan import Plan, genai_cost
from meterline._pricing._pricer import ModelRates, Pricer, Resolution
from meterline._pricing._table import Price, PriceOverride, PriceTable, ns_of

__all__ = [
    "BUILTIN_CORRECTIONS",
    "STANDARD_TIERS",
    "ModelRates",
    "Plan",
    "Price",
    "PriceContext",
    "PriceOverride",
    "PriceTable",
    "Pricer",
    "Resolution",
    "genai_cost",
    "ns_of",
    "price_context",
]
