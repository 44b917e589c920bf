"""Compiled plans: integer pico-dollar rates that equal genai-prices to the last digit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import MalformedUsageError, Meter, Usage
from meterline._money import EXACT as _EXACT
from meterline._pricing import Pricer, genai_cost
from meterline._usage import MAX_EVENT_TOKENS

NOV_2026 = datetime(2026, 11, 20, 12, tzinfo=UTC)

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3-mini"),
    ("openai", "gpt-5.5"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-opus-4-7"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("gcp.gemini", "gemini-3.1-pro-preview"),
    ("x_ai", "grok-4"),
    ("mistral_ai", "mistral-small-2506"),
    ("deepseek", "deepseek-v4-pro"),
    ("groq", "llama-3.3-70b-versatile"),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
]


@st.composite
def text_usages(draw: st.DrawFn) -> Usage:
    """Usages with every text token class, around the 200k context tiers."""
    input_tokens = draw(st.one_of(st.integers(0, 5000), st.integers(190_000, 400_000)))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(st.integers(0, 50_000))
    return Usage(
        input_tokens=input_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=draw(st.integers(0, cache_write)),
        output_tokens=output,
        reasoning_tokens=draw(st.integers(0, output)),
    )


@pytest.mark.parametrize(("provider", "model"), MODELS)
@settings(max_examples=40, deadline=None)
@given(usage=text_usages())
def test_compiled_prices_equal_genai_prices(provider: str, model: str, usage: Usage) -> None:
    """The compiled integer rates give exactly genai-prices' own Decimal result, tiers included."""
    pricer = Pricer(builtin_corrections=False)
    plan = pricer.resolve(provider, model).plan_at(1_795_000_000 * 10**9)
    assert plan is not None
    assert not plan.slow
    assert Decimal(plan.cost_pico(usage)).scaleb(-12) == genai_cost(plan.model_price, usage)


def test_huge_counts_are_priced_exactly() -> None:
    """The largest valid counts are priced exactly, with no rounding to 28 digits."""
    from meterline._usage import MAX_COUNT

    usage = Usage(input_tokens=MAX_COUNT, output_tokens=MAX_COUNT)
    cost = Pricer().cost(usage, "openai", "gpt-4o", at=NOV_2026)
    assert cost == (Decimal(MAX_COUNT) * Decimal("12.5")).scaleb(-6, _EXACT)
    meter = Meter()
    # More tokens than stores add up, or priced past what a ledger holds (2**63 - 1 pico):
    # refused, and nothing is counted.
    with pytest.raises(MalformedUsageError, match="tokens in one event"):
        meter.record(usage, model="gpt-4o", provider="openai")
    with pytest.raises(MalformedUsageError, match="priced under"):
        meter.record(Usage(output_tokens=MAX_EVENT_TOKENS), model="gpt-4o", provider="openai")
    assert meter.totals().events == 0
    # The largest usage record() takes is priced exactly, and adds up exactly.
    largest = Usage(input_tokens=MAX_EVENT_TOKENS)
    big = Pricer().cost(largest, "openai", "gpt-4o", at=NOV_2026)
    assert big is not None
    event = meter.record(largest, model="gpt-4o", provider="openai")
    meter.record(largest, model="gpt-4o", provider="openai")
    assert event.cost == big == (Decimal(largest.input_tokens) * Decimal("2.5")).scaleb(-6, _EXACT)
    assert meter.totals().cost == (big * 2).normalize(_EXACT)
