"""meterline's corrections of the known data errors in genai-prices 0.2.3 (``research/pricing.md``).

They are rows of a `PriceTable`, consulted before genai-prices and before the user's own
overrides (a user's row wins over them). ``Pricer(builtin_corrections=False)`` leaves them out.
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from meterline._pricing._table import Price, PriceOverride, PriceTable

__all__ = ["BUILTIN_CORRECTIONS", "BUILTIN_FEES", "with_fees"]

_DEEPSEEK_V32 = Price(
    input_mtok=Decimal("0.28"), cache_read_mtok=Decimal("0.028"), output_mtok=Decimal("0.42")
)
_DEEPSEEK_SINCE = datetime(2025, 9, 29, tzinfo=UTC)

BUILTIN_CORRECTIONS: Final = PriceTable(
    (
        PriceOverride(
            provider="deepseek",
            model="deepseek-chat",
            price=_DEEPSEEK_V32,
            since=_DEEPSEEK_SINCE,
            note="DeepSeek V3.2 price list since 2025-09-29 (genai-prices 0.2.3 keeps the V3 prices)",
        ),
        PriceOverride(
            provider="deepseek",
            model="deepseek-reasoner",
            price=_DEEPSEEK_V32,
            since=_DEEPSEEK_SINCE,
            note="DeepSeek V3.2 price list since 2025-09-29 (genai-prices 0.2.3 keeps the R1 prices)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-audio-preview*",
            price=Price(
                input_mtok=Decimal("2.50"),
                output_mtok=Decimal("10"),
                audio_input_mtok=Decimal("40"),
                audio_output_mtok=Decimal("80"),
            ),
            note="audio tokens at OpenAI's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-audio-preview-2024-10-01",
            price=Price(
                input_mtok=Decimal("2.50"),
                output_mtok=Decimal("10"),
                audio_input_mtok=Decimal("100"),
                audio_output_mtok=Decimal("200"),
            ),
            note="the first audio preview's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-mini-audio-preview*",
            price=Price(
                input_mtok=Decimal("0.15"),
                output_mtok=Decimal("0.60"),
                audio_input_mtok=Decimal("10"),
                audio_output_mtok=Decimal("20"),
            ),
            note="audio tokens at OpenAI's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
    )
)
"""Corrections for the known data errors of genai-prices 0.2.3 (`research/pricing.md`)."""


BUILTIN_FEES: Final[dict[str, dict[str, Decimal]]] = {
    # OpenAI's code interpreter: $0.03 per container (a session of the tool), whatever the
    # model; genai-prices 0.2.3 has the unit (code_executions) but no price for it.
    "openai": {"code_executions_kcount": Decimal(30)},
    "azure.ai.openai": {"code_executions_kcount": Decimal(30)},
}
"""Per-call prices (genai-prices keys, USD per 1,000 calls) of a provider's server-side tools,
added to a model's price when the price data has none for that tool."""


def with_fees(model_price: Any, fees: Mapping[str, Decimal]) -> Any:
    """``model_price`` (genai-prices) with the ``fees`` (of `BUILTIN_FEES`) it lacks, else itself."""
    if not fees or all(getattr(model_price, key, None) is not None for key in fees):
        return model_price
    from genai_prices.types import ModelPrice  # noqa: PLC0415 - price engine loads lazily

    prices = {key: value for key, value in model_price.__dict__.items() if not key.startswith("_")}
    for key, fee in fees.items():
        if prices.get(key) is None:
            prices[key] = fee
    return ModelPrice(**prices)
