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
from meterline._pricing._corrections import BUILTIN_CORRECTIONS, BUILTIN_FEES, with_fees
from meterline._pricing._modes import PriceContext, half_price, halved, price_context
from meterline._pricing._plan import ANCESTORS, UNITS, Plan, compile_price, genai_cost_pico
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
_UNIT_NAMES: Final = ("web_search", "web_fetch", "file_search", "code_execution")


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
    per_call: Mapping[str, Decimal]
    """The price of one call of each provider-side tool (``web_search``, ``web_fetch``,
    ``file_search``, ``code_execution``), in USD; a tool the price data does not price is
    left out."""
    price_version: str
    """genai-prices version and override-table digest."""
    note: str = ""
    """The override's note, when an override priced the model."""


class Resolution:
    """How one (provider, model) is priced over time: overrides first, then genai-prices."""

    __slots__ = (
        "_fees",
        "_info",
        "_minutes",
        "_overrides",
        "_plans",
        "_variants",
        "constant",
        "genai_model",
        "genai_provider",
    )

    def __init__(
        self,
        overrides: tuple[PriceOverride, ...],
        info: ModelInfo | None,
        genai_provider: str | None,
        fees: Mapping[str, Decimal] | None = None,
    ) -> None:
        self._overrides = overrides
        self._info = info
        self._fees = fees or {}
        self._plans: dict[int, Plan] = {}
        self._variants: dict[str, Plan] = {}
        self._minutes: dict[tuple[PriceContext, int], Plan] = {}
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
            plan = self._plans[key] = compile_price(with_fees(model_price, self._fees))
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

    def plan_in(self, time_ns: int, context: PriceContext, provider: str | None) -> Plan | None:
        """The plan in force at ``time_ns`` for a call in the price ``context`` (a tier, batch mode).

        The variant genai-prices has for the context, if any; for a batch (or OpenAI flex) call
        that no variant prices, half the standard token prices where the provider documents
        that (`meterline._pricing._modes.half_price`); else the standard price. An override's
        price has no variants: it is the standard price, halved for such a call.
        """
        minute = (context, time_ns // _MINUTE_NS)
        plan = self._minutes.get(minute)
        if plan is not None:
            return plan
        row = self.override_at(time_ns)
        if row is not None:
            standard = price = row.price.to_genai()
        elif self._info is None:
            return None
        else:
            moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
            standard = self._info.get_prices(moment)
            price = self._info.get_prices(moment, dict(context))
        if price == standard and half_price(context, provider):
            price = halved(standard)
        key = repr(price)
        plan = self._variants.get(key)
        if plan is None:
            plan = self._variants[key] = compile_price(with_fees(price, self._fees))
        if len(self._minutes) >= _MINUTES_KEPT:
            self._minutes.clear()
        self._minutes[minute] = plan
        return plan


_MINUTE_NS: Final = 60 * 10**9
_MINUTES_KEPT: Final = 64
"""A variant's plan is looked up once per (context, minute): resolving it costs about 15 µs
(genai-prices copies the price and its variants are matched), and no price changes within a
minute (dated prices start on a day, time-of-day prices on a half hour at the finest)."""

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
        builtin_corrections: Apply `BUILTIN_CORRECTIONS` and the per-call prices the price data
            lacks (`BUILTIN_FEES`) (default ``True``).
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
        self._warned: OrderedDict[tuple[str | None, str, tuple[str, ...]], None] = OrderedDict()
        self._lock = threading.Lock()
        self._version: str | None = None
        self._fees = builtin_corrections

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
        fees = (
            BUILTIN_FEES.get(provider or provider_of_price_data(genai_provider) or "") if self._fees else None
        )
        return Resolution(overrides, info, genai_provider, fees)

    def cost_pico(
        self,
        usage: Usage,
        provider: str | None,
        model: str | None,
        time_ns: int,
        context: PriceContext = (),
    ) -> int | None:
        """The cost of ``usage`` in pico-dollars, or ``None`` (and a warning, once) when unpriced.

        A plan's rates price the usage when they can; otherwise genai-prices does, exactly, and
        the cost is rounded to the pico-dollar (half to even). ``context`` (`price_context`)
        selects the price of a service tier or of batch mode.
        """
        if model is None:
            return None
        resolution = self.resolve(provider, model)
        plan = resolution.plan_in(time_ns, context, provider) if context else resolution.plan_at(time_ns)
        if plan is None:
            self._warn_unpriced(provider, model)
            return None
        if usage.has_units and plan.unpriced_units:
            missing = plan.missing_units(usage)
            if missing:
                self._warn_unpriced(provider, model, missing)
        if plan.exact_for(usage):
            return plan.cost_pico(usage)
        return self._genai_pico(plan, usage, provider, model)

    @staticmethod
    def _genai_pico(plan: Plan, usage: Usage, provider: str | None, model: str) -> int | None:
        try:
            return genai_cost_pico(plan.model_price, usage)
        except (ValueError, ArithmeticError) as exc:
            logger.warning("meterline: cannot price %s/%s for this usage: %s", provider, model, exc)
            return None

    def cost(
        self,
        usage: Usage,
        provider: str | None,
        model: str,
        at: datetime | None = None,
        *,
        service_tier: str | None = None,
        batch: bool = False,
    ) -> Decimal | None:
        """The cost of ``usage`` in USD at ``at`` (default now), or ``None`` when unpriced.

        ``service_tier`` and ``batch`` select the price of that tier or of batch mode.
        """
        moment = at or datetime.now(tz=UTC)
        context = price_context(service_tier, batch)
        pico = self.cost_pico(usage, canonical_provider(provider), model, ns_of(moment), context)
        return None if pico is None else to_usd(pico)

    def _warn_unpriced(self, provider: str | None, model: str, units: tuple[str, ...] = ()) -> None:
        key = (provider, model, units)
        with self._lock:
            if key in self._warned:
                self._warned.move_to_end(key)
                return
            self._warned[key] = None
            if len(self._warned) > MAX_NAMES:
                self._warned.popitem(last=False)
        if units:
            message = (
                f"meterline: no per-call price for {', '.join(units)} of model {model!r} (provider"
                f" {provider!r}): those calls' tokens are priced, their fees are not; add"
                " web_search_kcount, file_search_kcount or code_execution_kcount to a PriceTable row"
            )
        else:
            message = (
                f"meterline: no price for model {model!r} (provider {provider!r}): its usage is recorded"
                " with cost=None and counted as unpriced; add it to a PriceTable to price it"
            )
        warnings.warn(message, UnpricedModelWarning, stacklevel=4)

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
            for index, ancestors in enumerate(ANCESTORS[:UNITS]):
                pico = rates[index] + sum(rates[a] for a in ancestors)
                effective.append(to_usd(pico * _MTOK))
            tiers.append((threshold, dict(zip(_RATE_NAMES, effective, strict=True))))
        per_call = {
            name: to_usd(plan.base[UNITS + index])
            for index, name in enumerate(_UNIT_NAMES)
            if UNITS + index not in plan.unpriced_units
        }
        return ModelRates(
            provider=canonical,
            model=model,
            source="override" if row is not None else "genai-prices",
            resolved_model=row.model if row is not None else (resolution.genai_model or model),
            resolved_provider=row.provider if row is not None else resolution.genai_provider,
            tiers=tuple(tiers),
            per_request=to_usd(plan.const),
            per_call=per_call,
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
