"""meterline's corrections of the known data errors in genai-prices 0.2.3 (``research/pricing.md``).

They are rows of a `PriceTable`, consulted before genai-prices and before the user's own
overrides (a user's row wins over them). ``Pricer(builtin_corrections=False)`` leaves them out.
"""

from __future__ import annotations as _annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from meterline._pricing._table import Price, PriceOverride, PriceTable

__all__ = ["BUILTIN_CORRECTIONS"]

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
