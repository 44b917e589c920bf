"""The price engine: overrides first, then genai-prices, resolved once per model and memoised.

A `Pricer` resolves each (provider, model) once into a `Resolution`: the override rows that
can price it and genai-prices' entry. When the price does not depend on time (the common
case) the resolution holds one compiled `Plan`, which the meter keeps with each roll-up row
and prices events with by integer arithmetic; otherwise the plan in force at the event's
time is looked up. Every cost is in pico-dollars (`meterline._money`).
"""

from __future__ import annotations as _annotations

import functools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from meterline._guard import logger
from meterline._money import to_usd
from meterline._pricing._corrections import BUILTIN_CORRECTIONS
from meterline._pricing._plan import ANCESTORS, Plan, compile_price, genai_cost_pico
from meterline._pricing._table import Price, PriceOverride, PriceTable, ns_of
from meterline._providers import PRICE_DATA_IDS, SELF_HOSTED, canonical_provider, provider_of_price_data
from meterline._usage import Usage
from meterline.exceptions import PriceTableError, UnknownModelError, UnpricedModelWarning

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo

__all__ = ["ModelRates", "Pricer", "Resolution"]

_MTOK: Final = 1_000_000
_RATE_NAMES: Final = (
    "input",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "audio_input",
    "audio_output",
)


@dataclass(frozen=True, slots=True)
class ModelRates:
    """The resolved price of one model, per token class, in USD per million tokens.

    Each rate is what one more token *of that class* costs, so ``cache_read`` is the full
    price of a cached input token and ``reasoning`` the full price of a reasoning token.
    """

    provider: str | None
    """The provider the price was resolved for."""
    model: str
    """The model id as asked."""
    source: str
    """``"override"`` or ``"genai-prices"``."""
    resolved_model: str
    """The model id the price table matched (the override pattern or genai-prices' id)."""
    resolved_provider: str | None
    """The provider whose price applies: the override's, or genai-prices' provider id."""
    tiers: tuple[tuple[int, Mapping[str, Decimal]], ...]
    """``(above_input_tokens, rates)`` pairs; the first pair's threshold is 0 (the base tier)."""
    per_request: Decimal
    """A fixed charge per request, in USD."""
    price_version: str
    """genai-prices version and override-table digest."""
    note: str = ""
    """The override's note, when an override priced the model."""


class Resolution:
    """How one (provider, model) is priced over time: overrides first, then genai-prices."""

    __slots__ = ("_info", "_overrides", "_plans", "constant", "genai_model", "genai_provider")

    def __init__(
        self,
        overrides: tuple[PriceOverride, ...],
        info: ModelInfo | None,
        genai_provider: str | None,
    ) -> None:
        self._overrides = overrides
        self._info = info
        self._plans: dict[int, Plan] = {}
        self.genai_provider = genai_provider
        """genai-prices' id of the provider whose price applies, if genai-prices has one."""
        self.genai_model = info.id if info is not None else None
        """genai-prices' id of the model, if it knows the model."""
        self.constant: Plan | None = None
        """The plan, when the price does not depend on time (the common case)."""
        if info is not None and not overrides:
            from genai_prices.types import ModelPrice  # noqa: PLC0415 - price engine loads lazily

            if isinstance(info.prices, ModelPrice):
                self.constant = self._plan_for(info.prices)
        elif len(overrides) == 1 and overrides[0].since is None and overrides[0].until is None:
            self.constant = self._plan_for(overrides[0].price)

    def _plan_for(self, price: Any) -> Plan:
        key = id(price)
        plan = self._plans.get(key)
        if plan is None:
            model_price = price.to_genai() if isinstance(price, Price) else price
            plan = self._plans[key] = compile_price(model_price)
        return plan

    def override_at(self, time_ns: int) -> PriceOverride | None:
        """The override row in force at ``time_ns``, if any."""
        for row in reversed(self._overrides):
            if row.active_ns(time_ns):
                return row
        return None

    def plan_at(self, time_ns: int) -> Plan | None:
        """The plan in force at ``time_ns``, or ``None`` when nothing prices the model."""
        constant = self.constant
        if constant is not None:
            return constant
        row = self.override_at(time_ns)
        if row is not None:
            return self._plan_for(row.price)
        if self._info is None:
            return None
        moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
        return self._plan_for(self._info.get_prices(moment))


MAX_NAMES: Final = 4096
"""(provider, model) pairs a `Pricer` remembers, how to price each and whether it warned of it:
the least recently used is forgotten first (and is looked up again if it comes back)."""


class Pricer:
    """Prices usage at the time it happened, memoised per (provider, model).

    The memo is bounded (`MAX_NAMES` pairs, least recently used out), so an application that
    sends ever new model names holds a constant amount of memory; `clear` empties it.

    Args:
        overrides: A table consulted before genai-prices (added after the built-in
            corrections, so its rows win).
        builtin_corrections: Apply `BUILTIN_CORRECTIONS` (default ``True``).
    """

    def __init__(self, overrides: PriceTable | None = None, *, builtin_corrections: bool = True) -> None:
        table = BUILTIN_CORRECTIONS if builtin_corrections else PriceTable()
        if overrides is not None:
            if not isinstance(overrides, PriceTable):
                raise PriceTableError(f"overrides={overrides!r}: expected a meterline.PriceTable")
            table = table + overrides
        self.table = table
        """The override rows, built-in corrections first."""
        self._resolve = functools.lru_cache(maxsize=MAX_NAMES)(self._build)
        self._warned: OrderedDict[tuple[str | None, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._version: str | None = None

    @property
    def version(self) -> str:
        """The price-data version: genai-prices' version and the override table's digest."""
        version = self._version
        if version is None:
            from importlib.metadata import version as dist_version  # noqa: PLC0415 - only when first asked

            version = self._version = (
                f"genai-prices=={dist_version('genai-prices')};overrides={self.table.digest}"
            )
        return version

    def resolve(self, provider: str | None, model: str) -> Resolution:
        """Return (building and memoising on first use) how ``model`` is priced."""
        return self._resolve(provider, model)

    def clear(self) -> None:
        """Forget every memoised (provider, model): what a meter's `reset` releases."""
        self._resolve.cache_clear()
        with self._lock:
            self._warned.clear()

    def _build(self, provider: str | None, model: str) -> Resolution:
        genai_provider = PRICE_DATA_IDS.get(provider) if provider is not None else None
        info = None
        if provider not in SELF_HOSTED and (provider is None or genai_provider is not None):
            info, genai_provider = _find_genai_model(genai_provider, model)
        if provider is not None:
            overrides = self.table.candidates(provider, model)
        else:
            # No provider given: the one genai-prices matched decides which provider-specific
            # corrections apply; a model genai-prices does not know takes any provider's row.
            matched = provider_of_price_data(genai_provider)
            lowered = model.lower()
            overrides = tuple(
                row
                for row in self.table.rows
                if row.matches(row.provider, lowered) and (matched is None or row.provider in ("*", matched))
            )
        return Resolution(overrides, info, genai_provider)

    def cost_pico(self, usage: Usage, provider: str | None, model: str | None, time_ns: int) -> int | None:
        """The cost of ``usage`` in pico-dollars, or ``None`` (and a warning, once) when unpriced.

        A plan's rates price the usage when they can; otherwise genai-prices does, exactly, and
        the cost is rounded to the pico-dollar (half to even).
        """
        if model is None:
            return None
        plan = self.resolve(provider, model).plan_at(time_ns)
        if plan is None:
            self._warn_unpriced(provider, model)
            return None
        if plan.fast_for(usage):
            return plan.cost_pico(usage)
        try:
            return genai_cost_pico(plan.model_price, usage)
        except (ValueError, ArithmeticError) as exc:
            logger.warning("meterline: cannot price %s/%s for this usage: %s", provider, model, exc)
            return None

    def cost(
        self, usage: Usage, provider: str | None, model: str, at: datetime | None = None
    ) -> Decimal | None:
        """The cost of ``usage`` in USD at ``at`` (default now), or ``None`` when unpriced."""
        moment = at or datetime.now(tz=UTC)
        pico = self.cost_pico(usage, canonical_provider(provider), model, ns_of(moment))
        return None if pico is None else to_usd(pico)

    def _warn_unpriced(self, provider: str | None, model: str) -> None:
        key = (provider, model)
        with self._lock:
            if key in self._warned:
                self._warned.move_to_end(key)
                return
            self._warned[key] = None
            if len(self._warned) > MAX_NAMES:
                self._warned.popitem(last=False)
        warnings.warn(
            f"meterline: no price for model {model!r} (provider {provider!r}): its usage is recorded with "
            "cost=None and counted as unpriced; add it to a PriceTable to price it",
            UnpricedModelWarning,
            stacklevel=4,
        )

    def rates(self, model: str, provider: str | None = None, at: datetime | None = None) -> ModelRates:
        """Resolve the price of ``model`` per token class, for display and audits.

        Raises:
            UnknownModelError: when neither the overrides nor genai-prices price the model.
        """
        canonical = canonical_provider(provider)
        moment = at or datetime.now(tz=UTC)
        resolution = self.resolve(canonical, model)
        time_ns = ns_of(moment)
        plan = resolution.plan_at(time_ns)
        if plan is None:
            raise UnknownModelError(
                f"model={model!r} (provider {canonical!r}): no price in the overrides or genai-prices; "
                "add it to a PriceTable"
            )
        row = resolution.override_at(time_ns)
        tiers = []
        for threshold, rates in zip((0, *plan.thresholds), plan.rates, strict=True):
            effective = []
            for index, ancestors in enumerate(ANCESTORS):
                pico = rates[index] + sum(rates[a] for a in ancestors)
                effective.append(to_usd(pico * _MTOK))
            tiers.append((threshold, dict(zip(_RATE_NAMES, effective, strict=True))))
        return ModelRates(
            provider=canonical,
            model=model,
            source="override" if row is not None else "genai-prices",
            resolved_model=row.model if row is not None else (resolution.genai_model or model),
            resolved_provider=row.provider if row is not None else resolution.genai_provider,
            tiers=tuple(tiers),
            per_request=to_usd(plan.const),
            price_version=self.version,
            note=row.note if row is not None else "",
        )


def _find_genai_model(genai_provider: str | None, model: str) -> tuple[ModelInfo | None, str | None]:
    """Look ``model`` up in genai-prices; ``None`` when it is not there."""
    from genai_prices import data_snapshot  # noqa: PLC0415 - price engine loads lazily

    snapshot = data_snapshot.get_snapshot()
    attempts: list[tuple[str | None, str]] = [(genai_provider, model)]
    if "/" in model:
        prefix, _, rest = model.partition("/")
        if prefix != "models":
            attempts.append((genai_provider, rest))
            if genai_provider is None:
                attempts.append(("litellm", model))
    for provider_id, model_ref in attempts:
        try:
            found_provider, info = snapshot.find_provider_model(model_ref, None, provider_id, None)
        except LookupError:
            continue
        return info, found_provider.id
    return None, genai_provider
