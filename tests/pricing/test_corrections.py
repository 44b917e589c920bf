"""meterline's corrections of genai-prices' known data errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from meterline import (
    Usage,
)
from meterline._pricing import Pricer

NOV_2026 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_deepseek_correction_applies_only_from_its_start_date() -> None:
    """Before 2025-09-29 DeepSeek is priced from genai-prices' data, after it from the correction."""
    usage = Usage(input_tokens=3000, output_tokens=4000)
    before = Pricer().cost(usage, "deepseek", "deepseek-reasoner", at=datetime(2025, 6, 1, 12, tzinfo=UTC))
    after = Pricer().cost(usage, "deepseek", "deepseek-reasoner", at=datetime(2025, 10, 1, 12, tzinfo=UTC))
    assert after == Decimal("0.00252")
    assert before is not None
    assert before != after


def test_without_corrections_genai_prices_data_is_used() -> None:
    """builtin_corrections=False leaves genai-prices' own (known wrong) audio rates in place."""
    usage = Usage(input_tokens=1200, audio_input_tokens=1000, output_tokens=300)
    cost = Pricer(builtin_corrections=False).cost(
        usage, "openai", "gpt-4o-audio-preview-2024-12-17", at=NOV_2026
    )
    assert cost == Decimal("0.006")


def test_corrections_apply_when_the_provider_is_not_given() -> None:
    """Without provider=, the provider genai-prices matches decides which corrections apply."""
    usage = Usage(input_tokens=3000, output_tokens=4000)
    assert Pricer().cost(usage, None, "deepseek-reasoner", at=NOV_2026) == Decimal("0.00252")
    rates = Pricer().rates("deepseek-chat", at=NOV_2026)
    assert (rates.source, rates.resolved_provider) == ("override", "deepseek")
    assert Pricer().rates("gpt-4o", at=NOV_2026).resolved_provider == "openai"
