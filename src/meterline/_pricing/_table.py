"""Price overrides: `Price`, `PriceOverride` and the `PriceTable` consulted before genai-prices.

Custom and self-hosted models, negotiated rates and corrections of the price data are rows
of a table, in USD per million tokens, loadable from TOML. A table's digest is part of the
price version every priced event carries.
"""

from __future__ import annotations as _annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from meterline._providers import canonical_provider
from meterline.exceptions import ConfigurationError, PriceTableError

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

__all__ = ["Price", "PriceOverride", "PriceTable", "ns_of"]


MAX_PRICE: Final = Decimal(1_000_000)
"""The highest price a table may give: USD 1,000,000 per million tokens (or per request)."""
MIN_PRICE: Final = Decimal("0.000001")
"""The lowest non-zero price per million tokens: one pico-dollar per token."""
MIN_REQUEST_PRICE: Final = Decimal("0.000000000001")
"""The lowest non-zero price per request: one pico-dollar."""


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
    if name == "per_request":
        smallest, unit = MIN_REQUEST_PRICE, "USD per request"
    elif name.endswith("_kcount"):
        smallest, unit = MIN_REQUEST_PRICE * 1000, "USD per 1,000 calls"
    else:
        smallest, unit = MIN_PRICE, "USD per 1M"
    if number > MAX_PRICE or 0 < number < smallest:
        raise PriceTableError(
            f"{owner}: {name}={value!r}: expected 0 or a price from {smallest} to {MAX_PRICE:,} {unit}"
            " (a smaller one rounds to nothing: meterline counts whole pico-dollars)"
        )
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
    web_search_kcount: Decimal | None = None
    """Web searches a provider-side tool ran, in USD per 1,000 searches."""
    file_search_kcount: Decimal | None = None
    """File (vector store) searches a provider-side tool ran, in USD per 1,000 calls."""
    code_execution_kcount: Decimal | None = None
    """Code execution sessions (containers) a provider-side tool ran, in USD per 1,000 sessions."""

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
            web_searches_kcount=self.web_search_kcount,
            storage_searches_kcount=self.file_search_kcount,
            code_executions_kcount=self.code_execution_kcount,
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
        if since is not None and time_ns < ns_of(since):
            return False
        return until is None or time_ns < ns_of(until)

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


def ns_of(moment: datetime) -> int:
    """``moment`` in nanoseconds since the Unix epoch (microsecond precision)."""
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
        except UnicodeDecodeError as exc:
            raise PriceTableError(
                f"price table {str(file)!r}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at"
                f" offset {exc.start}); TOML files are UTF-8"
            ) from None
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
