"""A model's price compiled into integer rates: pico-dollars per token of each class.

genai-prices prices a request as a sum over disjoint token classes, so a price is linear in
the usage counts: one integer rate per canonical class (what a token of that class adds on
top of the classes it is a subset of), plus a fixed charge per request. `compile_price`
derives the rates from genai-prices' own arithmetic and checks them against it on a few
usages before a `Plan` is trusted; a price that does not compile exactly (a rate finer than
a pico-dollar, an unmapped price key) keeps the rates for display and is priced by
genai-prices on every call (``slow``). Context-length tiers become one rate set per tier,
chosen by the request's input tokens.
"""

from __future__ import annotations as _annotations

import bisect
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final

from meterline._money import PICO_PER_USD, pico_of, to_usd
from meterline._usage import USAGE_FIELDS, Usage, new_usage

__all__ = ["ANCESTORS", "UNITS", "Plan", "compile_price", "genai_cost", "genai_cost_pico"]

logger = logging.getLogger("meterline")

# genai-prices' usage keys for meterline's canonical fields, in `USAGE_FIELDS` order.
_GENAI_KEYS: Final = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "output_reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "web_searches",
    None,  # web fetches: genai-prices has no such unit (Anthropic charges only their tokens)
    "storage_searches",
    "code_executions",
)
ANCESTORS: Final = ((), (0,), (0,), (0, 2), (), (4,), (0,), (4,), (), (), (), ())
"""Each canonical field's ancestor chain (the totals it is a subset of), by index."""
UNITS: Final = 8
"""The index of the first billable unit that is not a token (see `meterline._usage.UNIT_FIELDS`)."""
# genai-prices price keys that a plan maps exactly; others may need counts meterline lacks.
_MAPPED_PRICE_KEYS: Final = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
        "input_audio_mtok",
        "output_audio_mtok",
        "requests_kcount",
        "web_searches_kcount",
        "storage_searches_kcount",
        "code_executions_kcount",
    }
)
_ZERO: Final = Decimal(0)
_COUNTS_OF: Final = attrgetter(*USAGE_FIELDS)


@dataclass(slots=True)
class Plan:
    """A compiled, linear price for one model and period, in pico-dollars.

    ``thresholds[i]`` is the input-token count above which ``rates[i + 1]`` applies;
    ``rates[i]`` holds one rate per canonical field (the increment that field adds on top of
    its ancestors, as genai-prices decomposes usage): pico-dollars per token, and for the
    billable units (from `UNITS` on) pico-dollars per call. A ``slow`` plan is priced by
    genai-prices on every call; its rates are for display only.
    """

    model_price: Any
    """The genai-prices ``ModelPrice`` the plan was compiled from."""
    const: int
    """The fixed charge per request, in pico-dollars."""
    thresholds: tuple[int, ...]
    rates: tuple[tuple[int, ...], ...]
    slow: bool
    """The rates are not exact: every call is priced by genai-prices."""
    audio_joins: bool
    """The price has keys meterline cannot map: usages with audio tokens go to genai-prices."""
    unpriced_units: frozenset[int] = frozenset()
    """Indexes of the billable units (from `UNITS` on) the price has no price key for: a call of
    such a tool is priced for its tokens only (and the pricer warns once)."""
    base: tuple[int, ...] = field(init=False)
    """``rates[0]``: the rates below the first threshold (all of them without tiers)."""
    flat: bool = field(init=False)
    """No tiers and exact rates: `cost_pico` of any usage without audio is exact."""

    def __post_init__(self) -> None:
        self.base = self.rates[0]
        self.flat = not self.thresholds and not self.slow

    def fast_for(self, usage: Usage) -> bool:
        """Whether the compiled rates price ``usage`` exactly (else genai-prices must).

        A usage counting a tool call the price has no price for is not: the pricer warns of it.
        """
        if self.unpriced_units and usage.has_units and self.missing_units(usage):
            return False
        return self.exact_for(usage)

    def exact_for(self, usage: Usage) -> bool:
        """Whether `cost_pico` of ``usage`` equals genai-prices' cost of it."""
        if self.slow:
            return False
        return not (self.audio_joins and (usage.audio_input_tokens or usage.audio_output_tokens))

    def missing_units(self, usage: Usage) -> tuple[str, ...]:
        """The billable units ``usage`` counts that the price does not price (their tokens are)."""
        names = [USAGE_FIELDS[index] for index in sorted(self.unpriced_units)]
        return tuple(name for name in names if getattr(usage, name))

    def cost_pico(self, usage: Usage) -> int:
        """The cost of ``usage`` in pico-dollars (exact integer arithmetic; see `fast_for`)."""
        input_tokens = usage.input_tokens
        rates = (
            self.rates[bisect.bisect_left(self.thresholds, input_tokens)] if self.thresholds else self.base
        )
        total = self.const + input_tokens * rates[0] + usage.output_tokens * rates[4]
        if usage.cache_read_tokens:
            total += usage.cache_read_tokens * rates[1]
        if usage.cache_write_tokens:
            total += usage.cache_write_tokens * rates[2] + usage.cache_write_1h_tokens * rates[3]
        if usage.reasoning_tokens:
            total += usage.reasoning_tokens * rates[5]
        if usage.audio_input_tokens or usage.audio_output_tokens:
            total += usage.audio_input_tokens * rates[6] + usage.audio_output_tokens * rates[7]
        if usage.has_units:
            total += (
                usage.web_search_requests * rates[8]
                + usage.web_fetch_requests * rates[9]
                + usage.file_search_requests * rates[10]
                + usage.code_execution_requests * rates[11]
            )
        return total


def _genai_usage(counts: tuple[int, ...]) -> Any:
    from genai_prices import Usage as GenaiUsage  # noqa: PLC0415 - price engine loads lazily

    return GenaiUsage(
        **{key: value for key, value in zip(_GENAI_KEYS, counts, strict=True) if value and key is not None}
    )


def genai_cost(model_price: Any, usage: Usage) -> Decimal:
    """Price ``usage`` with genai-prices' own arithmetic (the reference the plans are checked against)."""
    total: Decimal = model_price.calc_price(_genai_usage(_COUNTS_OF(usage)))["total_price"]
    return total


def _flat_at(model_price: Any, input_tokens: int) -> Any:
    """A copy of ``model_price`` with every tiered price resolved for ``input_tokens``."""
    from genai_prices.types import ModelPrice, TieredPrices  # noqa: PLC0415 - price engine loads lazily

    flat: dict[str, Any] = {}
    for key, value in model_price.__dict__.items():
        if isinstance(value, TieredPrices):
            chosen = value.base
            for tier in reversed(value.tiers):
                if input_tokens > tier.start:
                    chosen = tier.price
                    break
            flat[key] = chosen
        else:
            flat[key] = value
    return ModelPrice(**flat)


def _to_pico(amount: Decimal) -> tuple[int, bool]:
    """``amount`` of USD in pico-dollars (truncated), and whether that was exact."""
    numerator, denominator = amount.as_integer_ratio()
    pico, rest = divmod(numerator * PICO_PER_USD, denominator)
    return pico, not rest


def compile_price(model_price: Any) -> Plan:
    """Compile a genai-prices ``ModelPrice`` into integer rates, checked against genai-prices."""
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - price engine loads lazily

    priced_keys = {k for k, v in model_price.__dict__.items() if v is not None and not k.startswith("_")}
    audio_joins = bool(priced_keys - _MAPPED_PRICE_KEYS)
    unpriced = frozenset(
        UNITS + index
        for index, key in enumerate(_GENAI_KEYS[UNITS:])
        if key is not None and f"{key}_kcount" not in priced_keys
    )
    thresholds = sorted(
        {tier.start for v in model_price.__dict__.values() if isinstance(v, TieredPrices) for tier in v.tiers}
    )
    try:
        base = model_price.calc_price(_genai_usage((0,) * len(ANCESTORS)))["total_price"]
        const, exact = _to_pico(base)
        all_rates: list[tuple[int, ...]] = []
        for region in range(len(thresholds) + 1):
            flat = _flat_at(model_price, 0 if region == 0 else thresholds[region - 1] + 1)
            increments: list[Decimal] = []
            for index, ancestors in enumerate(ANCESTORS):
                vector = [0] * len(ANCESTORS)
                for position in (*ancestors, index):
                    vector[position] = 1
                value = flat.calc_price(_genai_usage(tuple(vector)))["total_price"] - base
                increments.append(value - sum((increments[a] for a in ancestors), _ZERO))
            converted = [_to_pico(value) for value in increments]
            exact = exact and all(ok for _, ok in converted)
            all_rates.append(tuple(rate for rate, _ in converted))
    except (ValueError, ArithmeticError, TypeError):
        logger.debug("meterline: price %r does not compile; genai-prices prices it per call", model_price)
        return Plan(model_price, 0, (), ((0,) * len(ANCESTORS),), True, audio_joins, unpriced)
    plan = Plan(model_price, const, tuple(thresholds), tuple(all_rates), not exact, audio_joins, unpriced)
    if exact and not _agrees(plan):
        plan.slow = True
        plan.flat = False
    return plan


_CHECK_VECTORS: Final = (
    (1000, 300, 200, 50, 500, 100, 0, 0, 0, 0, 0, 0),
    (1000, 0, 0, 0, 500, 0, 200, 100, 0, 0, 0, 0),
    (3, 1, 1, 1, 7, 7, 1, 7, 2, 1, 3, 1),
)


def _agrees(plan: Plan) -> bool:
    """Check the compiled rates against genai-prices on a few usages per tier."""
    for threshold in (0, *plan.thresholds):
        for vector in _CHECK_VECTORS:
            usage = new_usage(vector[0] + threshold, *vector[1:])
            if plan.audio_joins and (usage.audio_input_tokens or usage.audio_output_tokens):
                continue
            if to_usd(plan.cost_pico(usage)) != genai_cost(plan.model_price, usage):
                return False
    return True


def genai_cost_pico(model_price: Any, usage: Usage) -> int:
    """genai-prices' exact cost of ``usage``, in pico-dollars rounded half to even."""
    return pico_of(genai_cost(model_price, usage))
