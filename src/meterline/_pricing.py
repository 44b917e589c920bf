"""Exact prices: genai-prices behind an override table, compiled once per model into integer rates.

genai-prices is the price engine (offline, ``Decimal``, cache, tier and date aware). Asking it
for every event would cost tens of microseconds, so a model's prices are resolved once and
compiled into a `_Plan`: one integer rate per canonical token class, in atto-dollars
(1e-18 USD) per token, plus a fixed per-request charge. A plan is linear in the usage counts
(genai-prices prices a request as a sum over disjoint token classes), so the compiled rates
reproduce genai-prices to the last digit; the compiler checks this against genai-prices
itself before trusting a plan, and falls back to calling genai-prices when it does not hold.
Context-length tiers become one plan per tier, chosen by the request's input tokens.

Overrides (custom and self-hosted models, corrections) are consulted before genai-prices.
meterline ships three corrections for known data errors in genai-prices 0.2.3 (see
`BUILTIN_CORRECTIONS`).
"""

from __future__ import annotations as _annotations

import bisect
import hashlib
import json
import logging
import threading
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from meterline._providers import canonical_provider
from meterline._usage import Usage
from meterline.exceptions import ConfigurationError, PriceTableError, UnknownModelError, UnpricedModelWarning

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice

__all__ = [
    "BUILTIN_CORRECTIONS",
    "EXACT_DIGITS",
    "ModelRates",
    "Price",
    "PriceOverride",
    "PriceTable",
    "Pricer",
    "atto_to_decimal",
    "tidy",
]

logger = logging.getLogger("meterline")

ATTO: Final = 10**18
"""Costs are carried as integers of 1e-18 USD (atto-dollars) between events and totals."""

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_EXACT: Final = Context(prec=4000, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Arithmetic that never rounds: costs have at most a few dozen digits."""
EXACT_DIGITS: Final = 10**27
"""Below this, ``Decimal(n) * scale`` under the default 28-digit context is exact."""
_MTOK: Final = 1_000_000

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
)
# Each canonical field's ancestor chain (the totals it is a subset of), by index.
_ANCESTORS: Final = ((), (0,), (0,), (0, 2), (), (4,), (0,), (4,))
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
    }
)

# OpenTelemetry provider names to genai-prices provider ids.
_GENAI_PROVIDER: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "together": "together",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
    "openrouter": "openrouter",
}
_CANONICAL_OF_GENAI: Final[Mapping[str, str]] = {
    genai: canonical for canonical, genai in reversed(tuple(_GENAI_PROVIDER.items()))
}
"""genai-prices provider ids back to OpenTelemetry names (the first name listed for each wins)."""
# Providers whose models are self-hosted: only an override can price them.
_SELF_HOSTED: Final = frozenset({"ollama", "vllm", "llama.cpp", "lmstudio"})


def tidy(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, and never in exponent notation (``10``, not ``1E+1``); exact."""
    normal = value.normalize(_EXACT)
    exponent = normal.as_tuple().exponent
    return normal if isinstance(exponent, int) and exponent < 0 else normal.quantize(_ONE, context=_EXACT)


def atto_to_decimal(atto: int) -> Decimal:
    """Convert an integer amount of 1e-18 USD to an exact, tidy ``Decimal`` of USD."""
    if atto == 0:
        return _ZERO
    return tidy(Decimal(atto).scaleb(-18, _EXACT))


def _decimal_price(owner: str, name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise PriceTableError(
            f"{owner}: {name}={value!r}: expected a decimal string such as '0.15' (USD per 1M)"
        )
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise PriceTableError(
            f"{owner}: {name}={value!r}: expected a decimal string such as '0.15'"
        ) from None
    if not number.is_finite() or number < 0:
        raise PriceTableError(f"{owner}: {name}={value!r}: expected a finite, non-negative price")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """Prices of one model in USD per million tokens (``per_request`` in USD per request).

    Each class prices the tokens of that class only: a cache read is charged
    ``cache_read_mtok``, not ``input_mtok``. ``None`` means "not priced separately": cache
    reads and writes then fall back to the input price, 1 h writes to the write price,
    reasoning and audio to their parent class, exactly as genai-prices does.
    """

    input_mtok: Decimal | None = None
    """Uncached input tokens."""
    output_mtok: Decimal | None = None
    """Output tokens (reasoning included unless ``reasoning_mtok`` is set)."""
    cache_read_mtok: Decimal | None = None
    """Input tokens read from a prompt cache."""
    cache_write_mtok: Decimal | None = None
    """Input tokens written to a prompt cache (the default, short TTL)."""
    cache_write_1h_mtok: Decimal | None = None
    """Input tokens written to a prompt cache with a 1 hour TTL."""
    reasoning_mtok: Decimal | None = None
    """Reasoning output tokens, where the provider prices them apart from other output."""
    audio_input_mtok: Decimal | None = None
    """Audio input tokens."""
    audio_output_mtok: Decimal | None = None
    """Audio output tokens."""
    per_request: Decimal | None = None
    """A fixed charge per request, in USD."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _decimal_price("Price", f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    def to_genai(self) -> ModelPrice:
        """Return the equivalent genai-prices ``ModelPrice``."""
        from genai_prices.types import ModelPrice  # noqa: PLC0415 - price engine loads lazily

        kcount = None if self.per_request is None else self.per_request * 1000
        return ModelPrice(
            input_mtok=self.input_mtok,
            output_mtok=self.output_mtok,
            cache_read_mtok=self.cache_read_mtok,
            cache_write_mtok=self.cache_write_mtok,
            cache_write_1h_mtok=self.cache_write_1h_mtok,
            output_reasoning_mtok=self.reasoning_mtok,
            input_audio_mtok=self.audio_input_mtok,
            output_audio_mtok=self.audio_output_mtok,
            requests_kcount=kcount,
        )


def _as_datetime(owner: str, name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _as_datetime(owner, name, datetime.fromisoformat(value))
        except ValueError:
            pass
    raise PriceTableError(f"{owner}: {name}={value!r}: expected a date or an ISO 8601 date-time")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceOverride:
    """One row of a `PriceTable`: the price of a model from a provider, optionally for a period.

    ``model`` matches a model id exactly (case-insensitively), or every id starting with a
    prefix when it ends in ``*`` (``"llama-3.3-*"``). ``since`` is inclusive and ``until``
    exclusive; both are UTC when no time zone is given.
    """

    provider: str
    """The provider's OpenTelemetry name (aliases accepted), or ``"*"`` for any provider."""
    model: str
    """The model id, or a prefix ending in ``*``."""
    price: Price
    """What the model costs."""
    since: datetime | None = None
    """First instant the price applies (inclusive); ``None``: always in the past."""
    until: datetime | None = None
    """Instant the price stops applying (exclusive); ``None``: still applies."""
    note: str = ""
    """Why the override exists (shown by ``meterline prices``)."""

    def __post_init__(self) -> None:
        owner = f"override {self.provider}/{self.model}"
        model: object = self.model
        if not isinstance(model, str) or not model.strip() or model.strip() == "*":
            raise PriceTableError(
                f"{owner}: model={self.model!r}: expected a model id or a prefix ending in '*'"
            )
        if not isinstance(self.price, Price):
            raise PriceTableError(f"{owner}: price={self.price!r}: expected a meterline.Price")
        try:
            provider = "*" if self.provider == "*" else canonical_provider(self.provider)
        except ConfigurationError as exc:
            raise PriceTableError(f"{owner}: {exc}") from None
        object.__setattr__(self, "provider", provider)
        object.__setattr__(self, "model", self.model.strip().lower())
        object.__setattr__(self, "since", _as_datetime(owner, "since", self.since))
        object.__setattr__(self, "until", _as_datetime(owner, "until", self.until))
        if self.since and self.until and self.until <= self.since:
            raise PriceTableError(f"{owner}: until={self.until.isoformat()} must be after since")

    def matches(self, provider: str | None, model: str) -> bool:
        """Whether this row prices ``model`` (lower-case) from ``provider``, at some time."""
        if self.provider not in ("*", provider):
            return False
        if self.model.endswith("*"):
            return model.startswith(self.model[:-1])
        return model == self.model

    def active_ns(self, time_ns: int) -> bool:
        """Whether the row applies at ``time_ns`` (nanoseconds since the Unix epoch)."""
        since, until = self.since, self.until
        if since is not None and time_ns < _ns(since):
            return False
        return until is None or time_ns < _ns(until)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (used for the table's hash)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "price": {
                f.name: str(v) for f in fields(Price) if (v := getattr(self.price, f.name)) is not None
            },
        }


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


_PRICE_KEYS: Final = frozenset(f.name for f in fields(Price))


class PriceTable:
    """An ordered table of price overrides, consulted before genai-prices.

    Later rows win over earlier ones, so a file loaded after the built-in corrections can
    correct them again. Load one from TOML with `PriceTable.from_toml`::

        [[model]]
        provider = "ollama"
        model = "llama3.3*"
        input_mtok = "0.10"
        output_mtok = "0.30"

        [[model]]
        provider = "deepseek"
        model = "deepseek-chat"
        since = 2025-09-29
        input_mtok = "0.28"
        cache_read_mtok = "0.028"
        output_mtok = "0.42"
        note = "V3.2 prices"
    """

    __slots__ = ("_digest", "_rows")

    def __init__(self, rows: Iterable[PriceOverride] = ()) -> None:
        self._rows: tuple[PriceOverride, ...] = tuple(rows)
        for row in self._rows:
            if not isinstance(row, PriceOverride):
                raise PriceTableError(f"PriceTable row {row!r}: expected a meterline.PriceOverride")
        canonical = json.dumps([row.to_json() for row in self._rows], sort_keys=True, separators=(",", ":"))
        self._digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def rows(self) -> tuple[PriceOverride, ...]:
        """The rows, in priority order (last wins)."""
        return self._rows

    @property
    def digest(self) -> str:
        """A short hash of the table's content; part of every priced event's price version."""
        return self._digest

    def __add__(self, other: PriceTable) -> PriceTable:
        return PriceTable((*self._rows, *other._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def find(self, provider: str | None, model: str, time_ns: int) -> PriceOverride | None:
        """Return the row that prices ``model`` at ``time_ns``, or ``None``."""
        lowered = model.lower()
        for row in reversed(self._rows):
            if row.matches(provider, lowered) and row.active_ns(time_ns):
                return row
        return None

    def candidates(self, provider: str | None, model: str) -> tuple[PriceOverride, ...]:
        """Every row that prices ``model`` at some time, in priority order."""
        lowered = model.lower()
        return tuple(row for row in self._rows if row.matches(provider, lowered))

    @classmethod
    def from_toml(cls, path: str | Path) -> PriceTable:
        """Load a table from a TOML file of ``[[model]]`` rows (see the class docstring).

        Raises:
            PriceTableError: naming the file, row and field that is wrong.
        """
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PriceTableError(f"price table {str(file)!r}: cannot be read ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PriceTableError(f"price table {str(file)!r}: not valid TOML ({exc})") from exc
        return cls.from_dict(data, source=str(file))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "price table") -> PriceTable:
        """Build a table from the parsed form of the TOML file (``{"model": [row, ...]}``)."""
        unknown = set(data) - {"model"}
        if unknown:
            raise PriceTableError(
                f"{source}: unknown top-level key {sorted(unknown)[0]!r}: expected [[model]] rows"
            )
        rows = data.get("model", [])
        if not isinstance(rows, list):
            raise PriceTableError(f"{source}: model={rows!r}: expected an array of [[model]] tables")
        built: list[PriceOverride] = []
        for number, row in enumerate(rows, start=1):
            owner = f"{source}, row {number}"
            if not isinstance(row, Mapping):
                raise PriceTableError(f"{owner}: {row!r}: expected a table")
            extra = set(row) - _PRICE_KEYS - {"provider", "model", "since", "until", "note"}
            if extra:
                raise PriceTableError(
                    f"{owner}: unknown key {sorted(extra)[0]!r}: "
                    "expected provider, model, since, until, note "
                    f"or one of {', '.join(sorted(_PRICE_KEYS))}"
                )
            for required in ("provider", "model"):
                if not isinstance(row.get(required), str):
                    raise PriceTableError(f"{owner}: {required}={row.get(required)!r}: expected a string")
            prices = {key: _decimal_price(owner, key, row[key]) for key in _PRICE_KEYS if key in row}
            if not prices:
                raise PriceTableError(
                    f"{owner}: no price given: expected at least one of input_mtok, output_mtok, ..."
                )
            try:
                built.append(
                    PriceOverride(
                        provider=row["provider"],
                        model=row["model"],
                        price=Price(**prices),
                        since=row.get("since"),
                        until=row.get("until"),
                        note=str(row.get("note", "")),
                    )
                )
            except PriceTableError as exc:
                raise PriceTableError(f"{owner}: {exc}") from exc
        return cls(built)


_DEEPSEEK_V32 = Price(
    input_mtok=Decimal("0.28"), cache_read_mtok=Decimal("0.028"), output_mtok=Decimal("0.42")
)
_DEEPSEEK_SINCE = datetime(2025, 9, 29, tzinfo=UTC)

BUILTIN_CORRECTIONS: Final = PriceTable(
    (
        PriceOverride(
            provider="deepseek",
            model="deepseek-chat",
            price=_DEEPSEEK_V32,
            since=_DEEPSEEK_SINCE,
            note="DeepSeek V3.2 price list since 2025-09-29 (genai-prices 0.2.3 keeps the V3 prices)",
        ),
        PriceOverride(
            provider="deepseek",
            model="deepseek-reasoner",
            price=_DEEPSEEK_V32,
            since=_DEEPSEEK_SINCE,
            note="DeepSeek V3.2 price list since 2025-09-29 (genai-prices 0.2.3 keeps the R1 prices)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-audio-preview*",
            price=Price(
                input_mtok=Decimal("2.50"),
                output_mtok=Decimal("10"),
                audio_input_mtok=Decimal("40"),
                audio_output_mtok=Decimal("80"),
            ),
            note="audio tokens at OpenAI's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-audio-preview-2024-10-01",
            price=Price(
                input_mtok=Decimal("2.50"),
                output_mtok=Decimal("10"),
                audio_input_mtok=Decimal("100"),
                audio_output_mtok=Decimal("200"),
            ),
            note="the first audio preview's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
        PriceOverride(
            provider="openai",
            model="gpt-4o-mini-audio-preview*",
            price=Price(
                input_mtok=Decimal("0.15"),
                output_mtok=Decimal("0.60"),
                audio_input_mtok=Decimal("10"),
                audio_output_mtok=Decimal("20"),
            ),
            note="audio tokens at OpenAI's audio rates (genai-prices 0.2.3 bills them as text)",
        ),
    )
)
"""Corrections for the known data errors of genai-prices 0.2.3 (`research/pricing.md`)."""


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


@dataclass(slots=True)
class _Plan:
    """A compiled, linear price for one model and period.

    ``thresholds[i]`` is the input-token count above which ``rates[i + 1]`` applies;
    ``rates[i]`` holds one integer atto-dollar rate per canonical field (the increment that
    field adds on top of its ancestors, as genai-prices decomposes usage). ``slow`` plans
    delegate every call to genai-prices.
    """

    model_price: Any
    const_atto: int
    thresholds: tuple[int, ...]
    rates: tuple[tuple[int, ...], ...]
    exact: bool
    slow: bool
    audio_joins: bool
    divisor: int = 1
    scale: Decimal = Decimal("1E-18")
    exponent: int = -18
    flat: bool = False
    """No tiers, and the compiled rates are exact: `Meter.record` prices inline with ``unit_rates``."""
    unit_rates: tuple[int, ...] = ()
    """The flat rates in units of ``divisor`` atto-dollars: small ints, so pricing stays cheap."""
    unit_const: int = 0
    """The per-request charge in units of ``divisor`` atto-dollars."""
    one_usd: int = ATTO
    """One dollar in units of ``divisor`` atto-dollars."""

    def __post_init__(self) -> None:
        self._set_units()

    def _set_units(self) -> None:
        self.one_usd = ATTO // self.divisor
        self.flat = not self.thresholds and not self.slow
        self.unit_rates = tuple(rate // self.divisor for rate in self.rates[0])
        self.unit_const = self.const_atto // self.divisor

    def fast_for(self, usage: Usage) -> bool:
        """Whether the compiled rates price ``usage`` exactly (else genai-prices must)."""
        if self.slow:
            return False
        return not (self.audio_joins and (usage.audio_input_tokens or usage.audio_output_tokens))

    def decimal(self, atto: int) -> Decimal:
        """``atto`` (a cost this plan computed) as USD, at the precision of the plan's prices.

        Every term of a plan's cost is a multiple of ``divisor``, so the division is exact;
        the result has the same digits genai-prices would give (``0.0003525``, not
        ``0.000352500000000000``) without normalising, which costs a microsecond.
        """
        if atto == 0:
            return _ZERO
        digits = atto // self.divisor
        if digits >= EXACT_DIGITS:
            return tidy(Decimal(digits).scaleb(self.exponent, _EXACT))
        return Decimal(digits) * self.scale if digits % 10 else tidy(Decimal(digits) * self.scale)

    def cost_of(self, usage: Usage) -> Decimal:
        """The cost of ``usage`` in USD."""
        return self.decimal(self.atto(usage))

    def atto(self, usage: Usage) -> int:
        """The cost of ``usage`` in atto-dollars (exact integer arithmetic)."""
        input_tokens = usage.input_tokens
        rates = (
            self.rates[bisect.bisect_left(self.thresholds, input_tokens)]
            if self.thresholds
            else self.rates[0]
        )
        total = self.const_atto + input_tokens * rates[0] + usage.output_tokens * rates[4]
        if usage.cache_read_tokens:
            total += usage.cache_read_tokens * rates[1]
        if usage.cache_write_tokens:
            total += usage.cache_write_tokens * rates[2] + usage.cache_write_1h_tokens * rates[3]
        if usage.reasoning_tokens:
            total += usage.reasoning_tokens * rates[5]
        if usage.audio_input_tokens or usage.audio_output_tokens:
            total += usage.audio_input_tokens * rates[6] + usage.audio_output_tokens * rates[7]
        return total


def _genai_usage(counts: tuple[int, ...]) -> Any:
    from genai_prices import Usage as GenaiUsage  # noqa: PLC0415 - price engine loads lazily

    return GenaiUsage(**{key: value for key, value in zip(_GENAI_KEYS, counts, strict=True) if value})


def genai_cost(model_price: Any, usage: Usage) -> Decimal:
    """Price ``usage`` with genai-prices' own arithmetic (the reference the plans are checked against)."""
    counts = (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.audio_input_tokens,
        usage.audio_output_tokens,
    )
    total: Decimal = model_price.calc_price(_genai_usage(counts))["total_price"]
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


def _to_atto(amount: Decimal) -> tuple[int, bool]:
    scaled = amount.scaleb(18)
    whole = int(scaled)
    return whole, scaled == whole


def _compile(model_price: Any) -> _Plan:
    """Compile a genai-prices ``ModelPrice`` into integer rates, checked against genai-prices."""
    from genai_prices.types import TieredPrices  # noqa: PLC0415 - price engine loads lazily

    priced_keys = {k for k, v in model_price.__dict__.items() if v is not None and not k.startswith("_")}
    audio_joins = bool(priced_keys - _MAPPED_PRICE_KEYS)
    thresholds = sorted(
        {tier.start for v in model_price.__dict__.values() if isinstance(v, TieredPrices) for tier in v.tiers}
    )
    exact = True
    try:
        base = model_price.calc_price(_genai_usage((0,) * 8))["total_price"]
        const_atto, ok = _to_atto(base)
        exact &= ok
        all_rates: list[tuple[int, ...]] = []
        for region in range(len(thresholds) + 1):
            flat = _flat_at(model_price, 0 if region == 0 else thresholds[region - 1] + 1)
            increments: list[Decimal] = []
            for index, ancestors in enumerate(_ANCESTORS):
                vector = [0] * 8
                for position in (*ancestors, index):
                    vector[position] = 1
                value = flat.calc_price(_genai_usage(tuple(vector)))["total_price"] - base
                increments.append(value - sum((increments[a] for a in ancestors), _ZERO))
            converted = [_to_atto(value) for value in increments]
            exact &= all(ok for _, ok in converted)
            all_rates.append(tuple(rate for rate, _ in converted))
        plan = _Plan(model_price, const_atto, tuple(thresholds), tuple(all_rates), exact, False, audio_joins)
        plan.divisor, plan.scale = _precision(const_atto, all_rates)
        plan.exponent = int(plan.scale.as_tuple().exponent)
        plan._set_units()
        if exact and not _agrees(plan):
            plan.slow = True
            plan._set_units()
    except (ValueError, ArithmeticError, TypeError):
        logger.debug("meterline: price %r does not compile; genai-prices prices it per call", model_price)
        return _Plan(model_price, 0, (), ((0,) * 8,), False, True, audio_joins)
    if not exact:
        plan.slow = True
        plan._set_units()
    return plan


def _precision(const_atto: int, all_rates: list[tuple[int, ...]]) -> tuple[int, Decimal]:
    """The largest power of ten dividing every rate, and the matching USD scale."""
    zeros = 18
    for value in (const_atto, *(rate for rates in all_rates for rate in rates)):
        while zeros and value % (10**zeros):
            zeros -= 1
    return 10**zeros, Decimal(1).scaleb(zeros - 18)


_CHECK_VECTORS: Final = (
    (1000, 300, 200, 50, 500, 100, 0, 0),
    (1000, 0, 0, 0, 500, 0, 200, 100),
    (3, 1, 1, 1, 7, 7, 1, 7),
)


def _agrees(plan: _Plan) -> bool:
    """Check the compiled rates against genai-prices on a few usages per tier."""
    from meterline._usage import _new_usage  # noqa: PLC0415 - private constructor

    for threshold in (0, *plan.thresholds):
        for vector in _CHECK_VECTORS:
            counts = (vector[0] + threshold, *vector[1:])
            usage = _new_usage(*counts)
            if plan.audio_joins and (usage.audio_input_tokens or usage.audio_output_tokens):
                continue
            if Decimal(plan.atto(usage)).scaleb(-18) != genai_cost(plan.model_price, usage):
                return False
    return True


class _Resolution:
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
        self._plans: dict[int, _Plan] = {}
        self.genai_provider = genai_provider
        self.genai_model = info.id if info is not None else None
        self.constant: _Plan | None = None
        """The plan, when the price does not depend on time (the common case)."""
        if info is not None and not overrides:
            from genai_prices.types import ModelPrice  # noqa: PLC0415 - price engine loads lazily

            if isinstance(info.prices, ModelPrice):
                self.constant = self._plan_for(info.prices)
        elif len(overrides) == 1 and overrides[0].since is None and overrides[0].until is None:
            self.constant = self._plan_for(overrides[0].price)

    @property
    def priceable(self) -> bool:
        return self._info is not None or bool(self._overrides)

    def _plan_for(self, price: Any) -> _Plan:
        key = id(price)
        plan = self._plans.get(key)
        if plan is None:
            model_price = price.to_genai() if isinstance(price, Price) else price
            plan = self._plans[key] = _compile(model_price)
        return plan

    def override_at(self, time_ns: int) -> PriceOverride | None:
        for row in reversed(self._overrides):
            if row.active_ns(time_ns):
                return row
        return None

    def plan_at(self, time_ns: int) -> _Plan | None:
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


class Pricer:
    """Prices usage at the time it happened, memoised per (provider, model).

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
        self._resolutions: dict[tuple[str | None, str], _Resolution] = {}
        self._warned: set[tuple[str | None, str]] = set()
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

    def resolve(self, provider: str | None, model: str) -> _Resolution:
        """Return (building and memoising on first use) how ``model`` is priced."""
        key = (provider, model)
        resolution = self._resolutions.get(key)
        if resolution is None:
            with self._lock:
                resolution = self._resolutions.get(key)
                if resolution is None:
                    resolution = self._resolutions[key] = self._build(provider, model)
        return resolution

    def _build(self, provider: str | None, model: str) -> _Resolution:
        genai_provider = _GENAI_PROVIDER.get(provider) if provider is not None else None
        info = None
        if provider not in _SELF_HOSTED and (provider is None or genai_provider is not None):
            info, genai_provider = _find_genai_model(genai_provider, model)
        if provider is not None:
            overrides = self.table.candidates(provider, model)
        else:
            # No provider given: the one genai-prices matched decides which provider-specific
            # corrections apply; a model genai-prices does not know takes any provider's row.
            matched = _CANONICAL_OF_GENAI.get(genai_provider or "")
            lowered = model.lower()
            overrides = tuple(
                row
                for row in self.table.rows
                if row.matches(row.provider, lowered) and (matched is None or row.provider in ("*", matched))
            )
        return _Resolution(overrides, info, genai_provider)

    def cost_atto(self, usage: Usage, provider: str | None, model: str | None, time_ns: int) -> int | None:
        """The cost of ``usage`` in atto-dollars, or ``None`` (and a warning, once) when unpriced."""
        if model is None:
            return None
        plan = self.resolve(provider, model).plan_at(time_ns)
        if plan is None:
            self._warn_unpriced(provider, model)
            return None
        if plan.slow or (plan.audio_joins and (usage.audio_input_tokens or usage.audio_output_tokens)):
            try:
                return _to_atto(genai_cost(plan.model_price, usage))[0]
            except (ValueError, ArithmeticError) as exc:
                logger.warning("meterline: cannot price %s/%s for this usage: %s", provider, model, exc)
                return None
        return plan.atto(usage)

    def cost(
        self, usage: Usage, provider: str | None, model: str, at: datetime | None = None
    ) -> Decimal | None:
        """The cost of ``usage`` in USD at ``at`` (default now), or ``None`` when unpriced."""
        moment = at or datetime.now(tz=UTC)
        atto = self.cost_atto(usage, canonical_provider(provider), model, _ns(moment))
        return None if atto is None else atto_to_decimal(atto)

    def _warn_unpriced(self, provider: str | None, model: str) -> None:
        key = (provider, model)
        if key in self._warned:
            return
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
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
        time_ns = _ns(moment)
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
            for index, ancestors in enumerate(_ANCESTORS):
                atto = rates[index] + sum(rates[a] for a in ancestors)
                effective.append(atto_to_decimal(atto * _MTOK))
            tiers.append((threshold, dict(zip(_RATE_NAMES, effective, strict=True))))
        return ModelRates(
            provider=canonical,
            model=model,
            source="override" if row is not None else "genai-prices",
            resolved_model=row.model if row is not None else (resolution.genai_model or model),
            resolved_provider=row.provider if row is not None else resolution.genai_provider,
            tiers=tuple(tiers),
            per_request=atto_to_decimal(plan.const_atto),
            price_version=self.version,
            note=row.note if row is not None else "",
        )


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
