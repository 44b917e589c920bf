"""What a response says about its own billing: the service tier that served it, the cost it states.

- OpenAI (Chat Completions and Responses) reports the tier that processed the request in the
  body's ``service_tier`` (``default``, ``flex``, ``priority``, ``scale``); OpenAI-compatible
  servers echo the field or leave it out.
- Anthropic reports it in ``usage.service_tier`` (``standard``, ``priority``, ``batch``).
- OpenRouter states what it charged in ``usage.cost`` (USD), and for a call made with the
  user's own provider key (``usage.is_byok``) what the provider charged in
  ``usage.cost_details.upstream_inference_cost``: that is the cost meterline's own price of
  the tokens is compared with.
"""

from __future__ import annotations as _annotations

import math
from decimal import Decimal
from typing import Any, Final

from meterline._dimensions import check_text
from meterline._providers._rules import ANTHROPIC, OAI, RESPONSES
from meterline._reported import MAX_REPORTED_PICO
from meterline.exceptions import ConfigurationError, MalformedUsageError

__all__ = ["BILLED_FORMATS", "MAX_REPORTED_COST", "MAX_TIER_LENGTH", "reported_cost_of", "service_tier_of"]

BILLED_FORMATS: Final = frozenset({OAI, RESPONSES, ANTHROPIC})
"""The formats whose bodies may state a service tier or a cost."""
MAX_REPORTED_COST: Final = Decimal(MAX_REPORTED_PICO // 10**12)
"""The highest cost one response may state, in USD: what an event may carry (`MAX_REPORTED_PICO`)."""
MAX_TIER_LENGTH: Final = 64
"""The longest service tier name accepted, in characters (a response's or a caller's)."""
_COST: Final = "a finite, non-negative number of USD"
_KNOWN_TIERS: Final = frozenset(
    {"default", "auto", "flex", "priority", "scale", "standard", "batch", "on_demand"}
)
"""Tier names the providers report, accepted without a check (any other is checked)."""


def service_tier_of(family: str, body: dict[Any, Any], block: Any) -> str | None:
    """The service tier a body of ``family`` reports, or ``None``.

    Raises:
        MalformedUsageError: when the tier is not a short string.
    """
    if family == ANTHROPIC:
        tier = block.get("service_tier") if type(block) is dict else None
        name = "usage.service_tier"
    else:
        tier = body.get("service_tier")
        name = "service_tier"
    if tier is None or (type(tier) is str and tier in _KNOWN_TIERS):  # the common case: no check
        return tier
    if type(tier) is not str or not 0 < len(tier) <= MAX_TIER_LENGTH:
        raise MalformedUsageError(name, tier, f"a tier name of at most {MAX_TIER_LENGTH} characters")
    try:
        check_text(tier, name)
    except ConfigurationError as exc:
        raise MalformedUsageError(name, tier, "a tier name UTF-8 can store") from exc
    return tier


def reported_cost_of(block: Any) -> Decimal | None:
    """The cost a usage block states (OpenRouter's), in USD, or ``None``.

    Raises:
        MalformedUsageError: when a stated cost is not a finite, non-negative number.
    """
    if type(block) is not dict:
        return None
    details = block.get("cost_details")
    if block.get("is_byok") is True and type(details) is dict:
        upstream = details.get("upstream_inference_cost")
        if upstream is not None:
            return _usd("usage.cost_details.upstream_inference_cost", upstream)
    cost = block.get("cost")
    if cost is None:
        return None
    return _usd("usage.cost", cost)


def _usd(name: str, value: object) -> Decimal:
    """A stated amount of USD as a `Decimal` (a float's shortest repr: what the JSON said)."""
    if type(value) is int:
        amount = Decimal(value)
    elif type(value) is float and math.isfinite(value):
        amount = Decimal(repr(value))
    elif type(value) is str:
        try:
            amount = Decimal(value)
        except ArithmeticError:
            raise MalformedUsageError(name, value, _COST) from None
    else:
        raise MalformedUsageError(name, value, _COST)
    if not amount.is_finite() or not 0 <= amount <= MAX_REPORTED_COST:
        raise MalformedUsageError(name, value, f"{_COST} up to {MAX_REPORTED_COST:,}")
    return amount
