"""Service tiers and batch mode: which of a model's prices a call is billed at.

The same tokens cost different amounts by how the provider processed them: OpenAI's ``flex``
tier (about half) and ``priority`` tier (more), Google's ``flex`` and ``priority``, and the
Batch APIs of OpenAI, Anthropic and Google (half price). genai-prices keeps these as price
variants chosen by a *price context* (``{"service_tier": "flex"}``, ``{"processing": "batch"}``),
which `price_context` makes from what the response reported (or the request asked for).

genai-prices models the batch variants only from the day it added them (2026-10-14 for most
models): a batch call of an earlier day would be priced at the standard rate, a discount
erased by a data update. Where a provider's Batch API is documented at half the standard
price (`HALF_PRICE_BATCH`), a batch call that no variant prices gets half of every token
price in force that day (`halved`); per-call fees (web searches) are not discounted. The same
holds for OpenAI's ``flex`` tier (variants from 2026-10-12; the tier was launched in 2025 at
the Batch API's rates). No other tier has a fixed ratio: without a variant it is priced at
the standard price.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

__all__ = ["BATCH", "STANDARD_TIERS", "PriceContext", "half_price", "halved", "price_context"]

PriceContext = tuple[tuple[str, str], ...]
"""A genai-prices price context as sorted (key, value) pairs; ``()`` is the standard price."""

BATCH: Final = ("processing", "batch")
"""The price context item of a call made through a Batch API."""
STANDARD_TIERS: Final = frozenset({"default", "auto", "standard", "standard_only", "scale", "on_demand"})
"""Tier names billed at the standard price: OpenAI's ``default``/``auto`` (and ``scale``,
billed by its own commitment, not per token), Anthropic's ``standard``."""
HALF_PRICE_BATCH: Final = frozenset({"openai", "azure.ai.openai", "anthropic", "gcp.gemini", "gcp.vertex_ai"})
"""Providers whose Batch API bills half the standard token prices (their pricing pages)."""
FLEX: Final = ("service_tier", "flex")
HALF_PRICE_FLEX: Final = frozenset({"openai"})
"""Providers whose ``flex`` tier bills half the standard token prices (OpenAI: the Batch API's rates)."""


def price_context(service_tier: str | None, batch: bool) -> PriceContext:
    """The price context of a call served at ``service_tier`` (``None``: not said), in batch or not.

    Anthropic reports a batch result's tier as ``batch``: that is batch mode, not a tier.
    """
    items: list[tuple[str, str]] = []
    if batch or service_tier == "batch":
        items.append(BATCH)
    if service_tier is not None and service_tier != "batch" and service_tier.lower() not in STANDARD_TIERS:
        items.append(("service_tier", service_tier.lower()))
    return tuple(sorted(items))


def halved(model_price: Any) -> Any:
    """A copy of a genai-prices ``ModelPrice`` with every token price (``*_mtok``) halved."""
    from genai_prices.types import ModelPrice, Tier, TieredPrices  # noqa: PLC0415 - price engine loads lazily

    prices: dict[str, Any] = {}
    for key, value in model_price.__dict__.items():
        if key.startswith("_"):
            continue
        if value is None or not key.endswith("_mtok"):
            prices[key] = value
        elif isinstance(value, TieredPrices):
            tiers = [Tier(start=tier.start, price=tier.price / 2) for tier in value.tiers]
            prices[key] = TieredPrices(base=value.base / 2, tiers=tiers)
        else:
            prices[key] = value / 2
    return ModelPrice(**prices)


def half_price(context: PriceContext, provider: str | None) -> bool:
    """Whether a call in ``context`` that no price variant prices is billed half the standard price.

    A batch call at a provider in `HALF_PRICE_BATCH`, and an OpenAI ``flex`` call (the flex
    tier is documented at the Batch API's rates).
    """
    if BATCH in context:
        return provider in HALF_PRICE_BATCH
    return FLEX in context and provider in HALF_PRICE_FLEX
