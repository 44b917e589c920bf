"""Budgets: limits on what the calls in some scopes may use, per window.

A `Budget` limits tokens, cost, requests or tool calls, globally or per distinct value of
some dimensions (each user, each session), over no window, a calendar window or a rolling
one. Budgets come from code or from a TOML file (`load_budgets`). What a budget says when
a threshold is reached (`BudgetAlert`) and where it stands (`BudgetStatus`) are values of
this module too; the engine that enforces budgets is `meterline.budgets._engine`.
"""

from __future__ import annotations as _annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline._dimensions import DIMENSION_NAME
from meterline._money import to_usd
from meterline._usage import MAX_COUNT
from meterline.budgets._store import COST
from meterline.exceptions import ConfigurationError, safe_repr

__all__ = [
    "CALENDAR_WINDOWS",
    "LIMIT_FIELDS",
    "Budget",
    "BudgetAlert",
    "BudgetStatus",
    "amount_of",
    "load_budgets",
    "parse_window",
    "utc",
]

Window = Literal["minute", "hour", "day", "week", "month"]
Policy = Literal["fail_closed", "fail_open", "estimate"]
StorePolicy = Literal["fail_open", "fail_closed"]

CALENDAR_WINDOWS: Final = ("minute", "hour", "day", "week", "month")
POLICIES: Final = ("fail_closed", "fail_open", "estimate")
STORE_POLICIES: Final = ("fail_open", "fail_closed")
MAX_COST: Final = Decimal(2**53) / 10**9
"""The largest cost limit, in USD (about 9 million): with any reservation on top, a store's
signed 64-bit pico-dollar counters still hold it."""
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME_MAX: Final = 200
LIMIT_FIELDS: Final = (
    "max_tokens",
    "max_input_tokens",
    "max_output_tokens",
    "max_cost",
    "max_requests",
    "max_tool_calls",
)
"""The limits a budget can set, in the order of the store's metrics."""


def _limit_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ConfigurationError(f"{name}={safe_repr(value)}: expected an int in 0..2**63-1 or None")
    return value


def _money(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if type(value) is bool or isinstance(value, float):
        raise ConfigurationError(
            f"{name}={safe_repr(value)}: expected a decimal string such as '5.00' (no float)"
        )
    try:
        amount = Decimal(value) if isinstance(value, (str, int, Decimal)) else None
    except (InvalidOperation, ValueError):
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount > MAX_COST:
        raise ConfigurationError(
            f"{name}={safe_repr(value)}: expected a non-negative decimal amount of USD (at most 9,007,199)"
        )
    return amount


def parse_window(value: object) -> str | timedelta | None:
    """A budget window from a calendar name, a duration string (``"90m"``) or a `timedelta`.

    Raises:
        ConfigurationError: for anything else, or a duration under one second.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value in CALENDAR_WINDOWS:
            return value
        match = _DURATION.match(value)
        if match is not None:
            value = timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])
    if isinstance(value, timedelta) and value >= timedelta(seconds=1):
        return value
    raise ConfigurationError(
        f"window={safe_repr(value)}: expected None, one of {', '.join(CALENDAR_WINDOWS)}, "
        "a timedelta of at least one second, or a duration such as '90m', '12h', '7d'"
    )


def _tokens_per_mtok(name: str, value: object) -> tuple[Decimal, Decimal] | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigurationError(
            f"{name}={safe_repr(value)}: expected (input, output) USD per million tokens, e.g. ('3', '15')"
        )
    low, high = (_money(name, item) for item in value)
    if low is None or high is None:
        raise ConfigurationError(f"{name}={safe_repr(value)}: expected two prices, not None")
    return (low, high)


@dataclass(frozen=True, slots=True)
class Budget:
    """A limit on what the calls in some scopes may use, per window.

    Limits are inclusive: a budget of ``max_tokens=1000`` admits calls until their total
    reaches 1,000. Every limit given applies; at least one is required.

    Args:
        per: ``None`` for one global budget; a tuple of dimension names to give each distinct
            combination of values its own budget (``("user",)``: each user). A budget applies
            to a call only when every one of its dimensions is set (by a scope or a tag).
        max_tokens: Input plus output tokens.
        max_input_tokens: Input tokens (cache reads and writes included).
        max_output_tokens: Output tokens (reasoning included).
        max_cost: USD, as a decimal string, int or `Decimal` (floats are refused); kept as a
            `Decimal`.
        max_requests: Model calls.
        max_tool_calls: Tool calls (`Meter.record_tool`).
        window: ``None`` (never resets); ``"minute"``, ``"hour"``, ``"day"``, ``"week"``
            (from Monday) or ``"month"``, which reset at the calendar boundary in
            ``timezone``; or a `timedelta` (or ``"90m"``, ``"12h"``, ``"7d"``) for a rolling
            window, kept as 60 steps: usage leaves it one step (window/60) at a time.
        timezone: IANA time zone of the calendar windows.
        alert_at: Fractions of a limit at which an alert fires, once per window and key.
        name: Unique within a meter; derived from the other fields when omitted.
        on_unpriced: For a cost limit and a model without a price: ``"fail_closed"``
            (default: refuse the reservation), ``"fail_open"`` (count no cost for it) or
            ``"estimate"`` (price it at ``estimate_price``).
        on_unmeasured: For a call recorded without usage (a stream that never reported it):
            ``"fail_closed"`` (default: charge the whole reservation, the worst case),
            ``"estimate"`` (charge the reservation's input estimate only) or ``"fail_open"``
            (charge only the request). Without a reservation only the request is counted.
        on_store_error: When the store cannot be reached: ``"fail_open"`` (default: log,
            count and let the call go ahead) or ``"fail_closed"`` (raise `BudgetStoreError`).
        estimate_price: ``(input, output)`` USD per million tokens, for
            ``on_unpriced="estimate"`` (decimal strings or `Decimal` s; kept as `Decimal` s).
        on_alert: Called with each `BudgetAlert` of this budget (errors are logged, never raised).
    """

    per: tuple[str, ...] | None = None
    max_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost: Decimal | str | int | None = None
    max_requests: int | None = None
    max_tool_calls: int | None = None
    window: str | timedelta | None = None
    timezone: str = "UTC"
    alert_at: tuple[float, ...] = (0.5, 0.8, 1.0)
    name: str = ""
    on_unpriced: Policy = "fail_closed"
    on_unmeasured: Policy = "fail_closed"
    on_store_error: StorePolicy = "fail_open"
    estimate_price: tuple[Decimal | str, Decimal | str] | None = None
    on_alert: Callable[[BudgetAlert], object] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        per: object = self.per
        if per is not None:
            if isinstance(per, str):
                per = (per,)
            if not isinstance(per, (tuple, list)) or not per:
                raise ConfigurationError(
                    f"per={safe_repr(self.per)}: expected None or a tuple of dimension names"
                )
            for name in per:
                if type(name) is not str or not DIMENSION_NAME.fullmatch(name):
                    raise ConfigurationError(
                        f"per dimension {safe_repr(name)}: "
                        "expected a lower-case identifier ([a-z_][a-z0-9_]*)"
                    )
            if len(set(per)) != len(per):
                raise ConfigurationError(f"per={safe_repr(per)}: a dimension is named twice")
            put(self, "per", tuple(per))
        for name in ("max_tokens", "max_input_tokens", "max_output_tokens", "max_requests", "max_tool_calls"):
            _limit_int(name, getattr(self, name))
        put(self, "max_cost", _money("max_cost", self.max_cost))
        if all(getattr(self, name) is None for name in LIMIT_FIELDS):
            raise ConfigurationError(
                "Budget needs at least one limit: max_tokens, max_input_tokens, max_output_tokens, "
                "max_cost, max_requests or max_tool_calls"
            )
        put(self, "window", parse_window(self.window))
        zone = self.timezone
        try:
            if type(zone) is not str:
                raise ValueError(zone)
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"timezone={safe_repr(zone)}: expected an IANA time zone such as 'UTC' or 'Europe/Paris'"
            ) from None
        self._check_rest(put)

    def _check_rest(self, put: Callable[[object, str, object], None]) -> None:
        alerts: object = self.alert_at
        if not isinstance(alerts, (tuple, list)) or not all(
            type(a) in (int, float) and 0 < a <= 1 and math.isfinite(a) for a in alerts
        ):
            raise ConfigurationError(
                f"alert_at={safe_repr(alerts)}: "
                "expected fractions of the limit in (0, 1], e.g. (0.5, 0.8, 1.0)"
            )
        put(self, "alert_at", tuple(sorted({float(a) for a in alerts})))
        for name, allowed in (
            ("on_unpriced", POLICIES),
            ("on_unmeasured", POLICIES),
            ("on_store_error", STORE_POLICIES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigurationError(
                    f"{name}={safe_repr(getattr(self, name))}: expected one of {', '.join(allowed)}"
                )
        put(self, "estimate_price", _tokens_per_mtok("estimate_price", self.estimate_price))
        if self.on_unpriced == "estimate" and self.estimate_price is None:
            raise ConfigurationError(
                "on_unpriced='estimate' needs estimate_price=(input, output) in USD per million tokens"
            )
        if self.on_alert is not None and not callable(self.on_alert):
            raise ConfigurationError(f"on_alert={safe_repr(self.on_alert)}: expected a callable or None")
        name = self.name
        if name == "":
            put(self, "name", self._default_name())
        elif type(name) is not str or not name.strip() or len(name) > _NAME_MAX or not name.isprintable():
            raise ConfigurationError(
                f"name={safe_repr(name)}: expected a printable string of 1 to {_NAME_MAX} characters"
            )

    def _default_name(self) -> str:
        limits = ",".join(
            f"{name.removeprefix('max_')}={getattr(self, name)}"
            for name in LIMIT_FIELDS
            if getattr(self, name) is not None
        )
        scope = "+".join(self.per) if self.per else "global"
        window = self.window
        if isinstance(window, timedelta):
            window = f"rolling {window}"
        when = f"/{window}" if window else ""
        zone = f"@{self.timezone}" if window in CALENDAR_WINDOWS and self.timezone != "UTC" else ""
        return f"{scope}:{limits}{when}{zone}"

    def to_dict(self) -> dict[str, Any]:
        """The budget as plain JSON-able data (what `from_dict` and TOML files take)."""
        data: dict[str, Any] = {"name": self.name}
        if self.per is not None:
            data["per"] = list(self.per)
        for name in LIMIT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value) if isinstance(value, Decimal) else value
        if self.window is not None:
            window = self.window
            data["window"] = f"{int(window.total_seconds())}s" if isinstance(window, timedelta) else window
        data["timezone"] = self.timezone
        data["alert_at"] = list(self.alert_at)
        data["on_unpriced"] = self.on_unpriced
        data["on_unmeasured"] = self.on_unmeasured
        data["on_store_error"] = self.on_store_error
        if self.estimate_price is not None:
            data["estimate_price"] = [str(value) for value in self.estimate_price]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "budget") -> Budget:
        """Build a budget from `to_dict` data (a TOML table).

        Raises:
            ConfigurationError: on an unknown key or a bad value (naming ``source``).
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: expected a table of budget fields, got {safe_repr(data)}")
        known = {name for name in cls.__dataclass_fields__ if name != "on_alert"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown field(s) {', '.join(unknown)}; expected {sorted(known)}"
            )
        values = dict(data)
        for name in ("per", "alert_at", "estimate_price"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None


def load_budgets(path: str | Path) -> list[Budget]:
    """Read budgets from a TOML file: one ``[[budget]]`` table per budget.

    Example::

        [[budget]]
        per = ["user"]
        max_cost = "5.00"
        window = "day"
        timezone = "Europe/Paris"

    Raises:
        ConfigurationError: when the file cannot be read or a budget is invalid.
    """
    import tomllib  # noqa: PLC0415 - only budgets files need it

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"budgets file {str(path)!r}: {exc}") from None
    tables = document.get("budget", [])
    unknown = sorted(set(document) - {"budget"})
    if unknown or not isinstance(tables, list):
        raise ConfigurationError(
            f"budgets file {str(path)!r}: expected only [[budget]] tables, "
            f"found {', '.join(unknown) or 'budget'}"
        )
    return [
        Budget.from_dict(table, source=f"{path} budget #{number}") for number, table in enumerate(tables, 1)
    ]


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A soft threshold of a budget was reached: fired once per window, key and threshold.

    Attributes:
        budget: The budget's name.
        key: The values of the budget's ``per`` dimensions, by name (empty if global).
        metric: The metric that crossed (``cost``, ``tokens``…).
        threshold: The fraction of the limit that was reached (``0.8``).
        limit: The limit (``Decimal`` USD for cost).
        used: What the window has used, the call that crossed included.
        window_start: When the window began (``None`` for a budget without one).
        at: When the crossing call was recorded.
    """

    budget: str
    key: Mapping[str, str]
    metric: str
    threshold: float
    limit: int | Decimal
    used: int | Decimal
    window_start: datetime | None
    at: datetime


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands for one key and metric, now.

    Attributes:
        budget: The budget's name.
        key: The values of its ``per`` dimensions, by name (empty if global).
        metric: ``tokens``, ``input_tokens``, ``output_tokens``, ``cost``, ``requests`` or
            ``tool_calls``.
        limit: The limit (``Decimal`` USD for cost, an int otherwise).
        used: What the current window has used.
        reserved: What live reservations hold.
        remaining: ``limit - used - reserved`` (negative when usage overshot).
        resets_at: When the window resets (``None`` without a window).
    """

    budget: str
    key: Mapping[str, str]
    metric: str
    limit: int | Decimal
    used: int | Decimal
    reserved: int | Decimal
    remaining: int | Decimal
    resets_at: datetime | None


def amount_of(metric: int, value: int) -> int | Decimal:
    """A store amount as the user sees it: ``Decimal`` USD for cost (pico-dollars), the int otherwise."""
    return to_usd(value) if metric == COST else value


def utc(seconds: float | None) -> datetime | None:
    """Seconds since the epoch as an aware UTC ``datetime`` (``None`` stays ``None``)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)
