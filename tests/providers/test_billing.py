"""A response's own billing facts are read: the tier that served it and the cost it states."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import MalformedUsageError, extract
from tests.ledger.conformance import OPENROUTER_BODY, load_fixture


def _openrouter(**usage: Any) -> dict[str, Any]:
    block: dict[str, Any] = OPENROUTER_BODY["usage"]  # type: ignore[assignment]
    return {**OPENROUTER_BODY, "usage": {**block, **usage}}


def test_openai_and_anthropic_report_the_tier_that_served_the_call() -> None:
    """OpenAI's body ``service_tier`` and Anthropic's ``usage.service_tier`` are the event's tier."""
    assert extract(load_fixture("openai/responses_plain.json")).service_tier == "default"
    chat = {**load_fixture("openai/chat_plain.json"), "service_tier": "flex"}
    assert extract(chat).service_tier == "flex"
    assert extract(load_fixture("anthropic/message_server_tool_web_search.json")).service_tier == "standard"
    assert extract(load_fixture("gcp.gemini/generate_plain.json")).service_tier is None


def test_openrouter_states_its_cost_and_the_providers_for_its_own_key() -> None:
    """``usage.cost``; with the user's own key (BYOK), the provider's ``upstream_inference_cost``."""
    assert extract(OPENROUTER_BODY, provider="openrouter").reported_cost == Decimal("0.00036")
    byok = _openrouter(cost=0.000018, is_byok=True, cost_details={"upstream_inference_cost": 0.00036})
    assert extract(byok, provider="openrouter").reported_cost == Decimal("0.00036")
    assert extract(load_fixture("openai/chat_plain.json")).reported_cost is None


@pytest.mark.parametrize(
    "bad", [-0.01, math.nan, math.inf, True, "abc", "NaN", [0.1], 10**7, Decimal("1e7"), "-1"]
)
def test_a_stated_cost_that_is_no_amount_is_refused_naming_the_field(bad: object) -> None:
    """NaN, infinities, negatives, bools, huge amounts and non-numbers name ``usage.cost``."""
    with pytest.raises(MalformedUsageError, match=r"usage\.cost"):
        extract(_openrouter(cost=bad), provider="openrouter")


@pytest.mark.parametrize("bad", [3, "", "x" * 65, "\ud800", ["flex"]])
def test_a_tier_that_is_no_short_name_is_refused(bad: object) -> None:
    """A tier must be a name of 1 to 64 characters UTF-8 can store."""
    with pytest.raises(MalformedUsageError, match="service_tier"):
        extract({**load_fixture("openai/chat_plain.json"), "service_tier": bad})


@given(st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False))
@settings(max_examples=100, deadline=None)
def test_stated_costs_are_read_exactly(amount: Decimal) -> None:
    """Any stated amount, as JSON text or a float's shortest repr, is read as written."""
    assert extract(_openrouter(cost=str(amount)), provider="openrouter").reported_cost == amount
    number = float(amount)
    assert extract(_openrouter(cost=number), provider="openrouter").reported_cost == Decimal(repr(number))
