"""Tests for exact prices: compiled plans, published reference prices, overrides and versions."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline import (
    Meter,
    Price,
    PriceOverride,
    PriceTable,
    UnknownModelError,
    UnpricedModelWarning,
    Usage,
)
from meterline._pricing import BUILTIN_CORRECTIONS, Pricer

NOV_2026 = datetime(2026, 11, 20, 12, tzinfo=UTC)


# Reference cases from research/pricing.md, computed from the providers' published rates.
@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        ("openai", "gpt-4o", Usage(input_tokens=1200, output_tokens=350), "0.0065"),
        ("openai", "gpt-4o", Usage(input_tokens=10_000, cache_read_tokens=6000, output_tokens=500), "0.0225"),
        (
            "openai",
            "gpt-4o-mini",
            Usage(input_tokens=8000, cache_read_tokens=4096, output_tokens=300),
            "0.0010728",
        ),
        ("openai", "o3-mini", Usage(input_tokens=2000, output_tokens=3000, reasoning_tokens=2400), "0.0154"),
        ("openai", "text-embedding-3-small", Usage(input_tokens=50_000), "0.001"),
        (
            "openai",
            "gpt-4o-audio-preview-2024-12-17",
            Usage(input_tokens=1200, audio_input_tokens=1000, output_tokens=300),
            "0.0435",
        ),
        ("anthropic", "claude-sonnet-4-20250514", Usage(input_tokens=3000, output_tokens=600), "0.018"),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            Usage(input_tokens=50_000, cache_read_tokens=40_000, cache_write_tokens=8000, output_tokens=1500),
            "0.0705",
        ),
        (
            "anthropic",
            "claude-sonnet-4-20250514",
            Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000, cache_write_1h_tokens=1_000_000),
            "6",
        ),
        (
            "anthropic",
            "claude-3-5-haiku-20241022",
            Usage(input_tokens=4000, cache_write_tokens=3000, output_tokens=400),
            "0.0054",
        ),
        ("anthropic", "claude-sonnet-4-5-20250929", Usage(input_tokens=300_000, output_tokens=2000), "1.845"),
        (
            "gcp.gemini",
            "gemini-2.5-pro",
            Usage(input_tokens=10_000, output_tokens=2000, reasoning_tokens=1500),
            "0.0325",
        ),
        ("gcp.gemini", "gemini-2.5-pro", Usage(input_tokens=250_000, output_tokens=4000), "0.685"),
        (
            "gcp.gemini",
            "gemini-2.5-pro",
            Usage(input_tokens=250_000, cache_read_tokens=200_000, output_tokens=4000),
            "0.235",
        ),
        (
            "gcp.gemini",
            "gemini-2.5-flash",
            Usage(input_tokens=6000, audio_input_tokens=5000, output_tokens=500),
            "0.00655",
        ),
        ("mistral_ai", "mistral-large-2411", Usage(input_tokens=3000, output_tokens=800), "0.0108"),
        (
            "deepseek",
            "deepseek-chat",
            Usage(input_tokens=10_000, cache_read_tokens=8000, output_tokens=1000),
            "0.001204",
        ),
        ("deepseek", "deepseek-reasoner", Usage(input_tokens=3000, output_tokens=4000), "0.00252"),
    ],
)
def test_published_reference_prices(provider: str, model: str, usage: Usage, expected: str) -> None:
    """Costs match the providers' published prices, corrections included, to the last digit."""
    cost = Pricer().cost(usage, provider, model, at=NOV_2026)
    assert isinstance(cost, Decimal)
    assert cost == Decimal(expected)


def test_unknown_model_is_unpriced_never_zero(meter: Meter) -> None:
    """An unknown model gives cost=None, one warning per model, and counts as unpriced."""
    usage = Usage(input_tokens=100, output_tokens=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = meter.record(usage, model="my-selfhosted-llama", provider="ollama")
        second = meter.record(usage, model="my-selfhosted-llama", provider="ollama")
    assert [w.category for w in caught] == [UnpricedModelWarning]
    assert "my-selfhosted-llama" in str(caught[0].message)
    assert first.cost is None
    assert second.cost is None
    assert first.price_version is None
    totals = meter.totals()
    assert totals.unpriced == 2
    assert totals.usage.input_tokens == 200
    assert totals.cost == 0
    assert not totals.complete
    assert meter.stats().unpriced_models == (("ollama", "my-selfhosted-llama"),)


def test_unknown_model_warns_once_per_model(meter: Meter) -> None:
    """Two unknown models give two warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("mystery-a", "mystery-b", "mystery-a"):
            meter.record(Usage(input_tokens=1), model=name, provider="openai")
    assert [str(w.message).split("'")[1] for w in caught] == ["mystery-a", "mystery-b"]


def test_explicit_rates_raise_for_unknown_models() -> None:
    """Asking for a price explicitly raises UnknownModelError naming the model."""
    with pytest.raises(UnknownModelError, match="no-such-model"):
        Pricer().rates("no-such-model", "openai")


def test_rates_per_token_class_and_tiers() -> None:
    """rates() gives each token class's full price per million tokens, per context tier."""
    rates = Pricer().rates("claude-sonnet-4-5-20250929", "anthropic", at=NOV_2026)
    assert rates.source == "genai-prices"
    (base_at, base), (tier_at, tier) = rates.tiers
    assert (base_at, tier_at) == (0, 200_000)
    assert base["input"] == Decimal(3)
    assert base["cache_read"] == Decimal("0.3")
    assert base["cache_write"] == Decimal("3.75")
    assert base["cache_write_1h"] == Decimal(6)
    assert base["output"] == Decimal(15)
    assert tier["input"] == Decimal(6)
    assert tier["output"] == Decimal("22.5")


def test_price_version_names_genai_prices_and_the_override_digest() -> None:
    """The price version has genai-prices' version and a digest that changes with the overrides."""
    plain = Pricer()
    custom = Pricer(
        PriceTable([PriceOverride(provider="ollama", model="x", price=Price(input_mtok=Decimal("1")))])
    )
    assert plain.version.startswith("genai-prices==0.2.3;overrides=")
    assert plain.version.endswith(BUILTIN_CORRECTIONS.digest)
    assert custom.version != plain.version


def test_priced_events_carry_the_price_version(meter: Meter) -> None:
    """Every priced event records the price-data version it was priced with."""
    event = meter.record(Usage(input_tokens=10, output_tokens=2), model="gpt-4o", provider="openai")
    assert event.price_version == meter.pricer.version


def test_per_request_prices_and_model_prefixes_from_litellm_style_names() -> None:
    """A per-request charge is added once per call; 'provider/model' names resolve."""
    table = PriceTable(
        [PriceOverride(provider="*", model="flat-*", price=Price(per_request=Decimal("0.01")))]
    )
    assert Pricer(table).cost(Usage(input_tokens=5), "vllm", "flat-model", at=NOV_2026) == Decimal("0.01")
    assert Pricer().cost(Usage(input_tokens=1_000_000), None, "openai/gpt-4o", at=NOV_2026) == Decimal("2.5")


def test_time_of_day_prices_follow_the_event_time() -> None:
    """A model whose price depends on the time of day is priced at the event's time."""
    usage = Usage(input_tokens=1_000_000)
    pricer = Pricer(builtin_corrections=False)
    day = pricer.cost(usage, "deepseek", "deepseek-chat", at=datetime(2025, 6, 1, 12, tzinfo=UTC))
    night = pricer.cost(usage, "deepseek", "deepseek-chat", at=datetime(2025, 6, 1, 20, tzinfo=UTC))
    assert day == Decimal("0.27")
    assert night == Decimal("0.135")


def test_custom_models_priced_without_a_provider() -> None:
    """A model only an override knows is priced even when no provider is given."""
    table = PriceTable(
        [PriceOverride(provider="ollama", model="llama3.3*", price=Price(input_mtok=Decimal(1)))]
    )
    assert Pricer(table).cost(Usage(input_tokens=10**6), None, "llama3.3:70b", at=NOV_2026) == Decimal(1)


def test_meter_exposes_its_price_version(meter: Meter) -> None:
    """Meter.price_version is the version stamped on its priced events."""
    event = meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    assert event.price_version == meter.price_version == meter.pricer.version


def test_the_memo_is_bounded_and_cleared() -> None:
    """The pricer remembers at most MAX_NAMES (provider, model) pairs, least recently used out."""
    from meterline._pricing._pricer import MAX_NAMES

    pricer = Pricer()
    first = pricer.resolve("ollama", "llama-0")
    assert pricer.resolve("ollama", "llama-0") is first  # memoised
    for index in range(1, MAX_NAMES + 10):
        pricer.resolve("ollama", f"llama-{index}")
    assert pricer.resolve("ollama", "llama-0") is not first  # the oldest went first
    kept = pricer.resolve("ollama", f"llama-{MAX_NAMES}")
    assert pricer.resolve("ollama", f"llama-{MAX_NAMES}") is kept
    pricer.clear()
    assert pricer.resolve("ollama", f"llama-{MAX_NAMES}") is not kept
