"""Tiers, batch mode and per-call fees select the price the provider bills."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import Meter, Price, PriceOverride, PriceTable, Usage
from meterline._pricing._modes import halved, price_context
from meterline._pricing._pricer import Pricer
from meterline.exceptions import PriceTableError, UnpricedModelWarning
from tests.ledger.conformance import load_fixture

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
BEFORE_VARIANTS = datetime(2026, 10, 1, tzinfo=UTC)  # genai-prices' variants start 2026-10-12/14
AFTER_VARIANTS = datetime(2026, 11, 20, tzinfo=UTC)


def test_price_contexts_of_reported_tiers() -> None:
    """Standard tier names are the standard price; Anthropic's ``batch`` tier is batch mode."""
    assert price_context(None, False) == ()
    for standard in ("default", "auto", "standard", "scale", "DEFAULT"):
        assert price_context(standard, False) == ()
    assert price_context("flex", False) == (("service_tier", "flex"),)
    assert price_context("batch", False) == (("processing", "batch"),)
    assert price_context("priority", True) == (("processing", "batch"), ("service_tier", "priority"))


@pytest.mark.parametrize("at", [BEFORE_VARIANTS, AFTER_VARIANTS])
def test_batch_calls_cost_half_before_and_after_the_price_data_modelled_them(at: datetime) -> None:
    """Batch is half price at OpenAI, Anthropic and Google whatever the date (no discount erased)."""
    pricer = Pricer()
    for provider, model in (
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
        ("gcp.gemini", "gemini-2.5-pro"),
    ):
        small = Usage(input_tokens=100_000, output_tokens=10_000)
        standard = pricer.cost(small, provider, model, at)
        assert standard is not None
        assert pricer.cost(small, provider, model, at, batch=True) == standard / 2, (provider, model)


def test_openai_flex_is_half_and_priority_its_own_price() -> None:
    """Flex is the Batch rate (also before the data's variant); priority comes from the data."""
    pricer = Pricer()
    for at in (BEFORE_VARIANTS, AFTER_VARIANTS):
        assert pricer.cost(MILLION, "openai", "o3", at, service_tier="flex") == Decimal(5)
        assert pricer.cost(MILLION, "openai", "o3", at, service_tier="default") == Decimal(10)
    assert pricer.cost(MILLION, "openai", "o3", AFTER_VARIANTS, service_tier="priority") == Decimal("17.5")
    # No fixed ratio for priority: without a variant it is the standard price.
    assert pricer.cost(MILLION, "openai", "o3", BEFORE_VARIANTS, service_tier="priority") == Decimal(10)


def test_an_override_is_halved_for_batch_and_kept_for_other_tiers() -> None:
    """A user's price has no variants: batch halves it at a half-price provider, a tier keeps it."""
    table = PriceTable(
        [
            PriceOverride(
                provider="openai", model="my-ft", price=Price(input_mtok=Decimal(2), output_mtok=Decimal(6))
            )
        ]
    )
    pricer = Pricer(table)
    assert pricer.cost(MILLION, "openai", "my-ft", AFTER_VARIANTS) == Decimal(8)
    assert pricer.cost(MILLION, "openai", "my-ft", AFTER_VARIANTS, batch=True) == Decimal(4)
    assert pricer.cost(MILLION, "openai", "my-ft", AFTER_VARIANTS, service_tier="priority") == Decimal(8)


def test_anthropic_web_searches_are_billed_per_search() -> None:
    """The issue's case: 6,694 in, 800 out and two searches on Sonnet 4 is $0.052082, not $0.032082."""
    body = load_fixture("anthropic/message_server_tool_web_search.json")
    body["model"] = "claude-sonnet-4-20250514"
    body["usage"] |= {"input_tokens": 6694, "output_tokens": 800}
    body["usage"]["server_tool_use"] = {"web_search_requests": 2, "web_fetch_requests": 1}
    event = Meter().record(body)
    assert event.cost == Decimal("0.052082")


def test_openai_tools_are_billed_per_call_and_per_container() -> None:
    """Web search $10 and file search $2.50 per 1,000 calls; the code interpreter $0.03 a container."""
    pricer = Pricer()
    tools = Usage(web_search_requests=3, file_search_requests=4, code_execution_requests=2)
    assert pricer.cost(tools, "openai", "gpt-5", AFTER_VARIANTS) == Decimal("0.03") + Decimal(
        "0.01"
    ) + Decimal("0.06")
    rates = pricer.rates("gpt-5", "openai", AFTER_VARIANTS)
    assert rates.per_call["web_search"] == Decimal("0.01")
    assert rates.per_call["code_execution"] == Decimal("0.03")
    plain = Pricer(builtin_corrections=False)
    with pytest.warns(UnpricedModelWarning, match="code_execution_requests"):
        assert plain.cost(tools, "openai", "gpt-5", AFTER_VARIANTS) == Decimal("0.04")


def test_a_tool_call_without_a_price_warns_once_and_keeps_the_token_cost() -> None:
    """Searches on a model with no search price: the tokens are priced, one warning names the tool."""
    pricer = Pricer()
    usage = Usage(input_tokens=1_000_000, web_search_requests=5)
    with pytest.warns(UnpricedModelWarning, match="web_search_requests"):
        assert pricer.cost(usage, "openai", "gpt-3.5-turbo", AFTER_VARIANTS) == Decimal("0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pricer.cost(usage, "openai", "gpt-3.5-turbo", AFTER_VARIANTS)  # warned already


def test_overrides_price_tool_calls() -> None:
    """A PriceTable row's per-1,000 prices of tool calls apply, and are checked like token prices."""
    table = PriceTable(
        [
            PriceOverride(
                provider="acme", model="m", price=Price(input_mtok=Decimal(1), web_search_kcount=Decimal(25))
            )
        ]
    )
    assert Pricer(table).cost(Usage(web_search_requests=4), "acme", "m", AFTER_VARIANTS) == Decimal("0.1")
    with pytest.raises(PriceTableError, match="web_search_kcount"):
        Price(web_search_kcount=Decimal(-1))


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 50))
@settings(max_examples=60, deadline=None)
def test_halved_prices_are_half_of_every_token_price(inputs: int, outputs: int, searches: int) -> None:
    """``halved`` halves tokens (tiers included) and leaves per-call fees whole."""
    from genai_prices import data_snapshot

    info = data_snapshot.get_snapshot().find_provider_model("claude-sonnet-4-5", None, "anthropic", None)[1]
    price = info.get_prices(AFTER_VARIANTS)
    from meterline._pricing._plan import genai_cost

    usage = Usage(input_tokens=inputs, output_tokens=outputs, web_search_requests=searches)
    tokens = Usage(input_tokens=inputs, output_tokens=outputs)
    fees = Decimal(searches) / 100
    assert genai_cost(halved(price), usage) == genai_cost(price, tokens) / 2 + fees
