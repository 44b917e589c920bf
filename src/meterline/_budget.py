"""Budgets: limits on nested scopes, reserved before a call and settled by its usage.

A `Budget` limits tokens, cost, requests or tool calls, globally or per distinct value of
some dimensions (each user, each session), over no window, a calendar window or a rolling
one. `Meter.reserve` books a call's worst case against every budget that applies to the
active scopes, all or nothing, in the meter's budget store; `Meter.record` replaces the
reservation with the actual usage. The stores (memory, SQLite, PostgreSQL, Redis) live in
`meterline.budgets`; this module turns budgets, scopes and clocks into their `Line` s.
"""

from __future__ import annotations as _annotations

import itertools
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from os import getpid as _getpid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterline._events import DIMENSION_NAME
from meterline._usage import MAX_COUNT, Usage
from meterline.budgets._base import (
    COST,
    INPUT_TOKENS,
    METRICS,
    NANOS_PER_USD,
    OUTPUT_TOKENS,
    TOKENS,
    BudgetStore,
    Line,
    Refusal,
    Vector,
)
from meterline.exceptions import BudgetExceeded, BudgetStoreError, ConfigurationError, safe_repr

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = [
    "Budget",
    "BudgetAlert",
    "BudgetEngine",
    "BudgetStatus",
    "Reservation",
    "estimate_tokens",
    "load_budgets",
    "parse_window",
    "read_status",
    "status_rows",
    "unbudgeted",
]

logger = logging.getLogger("meterline")

Window = Literal["minute", "hour", "day", "week", "month"]
Policy = Literal["fail_closed", "fail_open", "estimate"]
StorePolicy = Literal["fail_open", "fail_closed"]

CALENDAR_WINDOWS: Final = ("minute", "hour", "day", "week", "month")
POLICIES: Final = ("fail_closed", "fail_open", "estimate")
STORE_POLICIES: Final = ("fail_open", "fail_closed")
ROLLING_STEPS: Final = 60
"""A rolling window is kept as this many buckets: usage leaves it in steps of window/60."""
DEFAULT_MAX_OUTPUT_TOKENS: Final = 4096
"""The output a reservation assumes when the call sets no ``max_output_tokens``."""
BUDGET_STORE_ENV_VAR: Final = "METERLINE_BUDGET_STORE"
"""The environment variable that names the default budget store's URL."""
DEFAULT_LEASE: Final = 600.0
"""Seconds a reservation holds its amounts if never settled or released (a crashed process)."""
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME_MAX: Final = 200
_LIMIT_FIELDS: Final = (
    "max_tokens",
    "max_input_tokens",
    "max_output_tokens",
    "max_cost",
    "max_requests",
    "max_tool_calls",
)
_ATTO_PER_NANO: Final = 10**9


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
    if amount is None or not amount.is_finite() or amount < 0 or amount > Decimal(2**53) / NANOS_PER_USD:
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
        if all(getattr(self, name) is None for name in _LIMIT_FIELDS):
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
            for name in _LIMIT_FIELDS
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
        for name in _LIMIT_FIELDS:
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


def _amount(metric: int, value: int) -> int | Decimal:
    """A store amount as the user sees it: Decimal USD for cost, the int otherwise."""
    return Decimal(value).scaleb(-9).normalize() if metric == COST else value


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def estimate_tokens(content: object) -> int:
    """A deliberately high estimate of the tokens ``content`` holds, for reservations.

    Counts the UTF-8 bytes of every string in ``content`` (messages, nested dicts and lists,
    SDK objects with ``model_dump``) at three bytes per token, plus four tokens per message
    for the chat framing. English averages about four characters per token, so this
    overestimates ordinary text by about a third; pass ``input_tokens`` for an exact count.
    """
    total_bytes = 0
    parts = 0
    stack: list[object] = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total_bytes += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, Mapping):
            parts += 1
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray)):
            total_bytes += len(item)
        elif item is None or isinstance(item, (bool, int, float)):
            continue
        else:
            dump = getattr(item, "model_dump", None)
            if callable(dump):
                try:
                    stack.append(dump())
                except Exception:  # noqa: BLE001 - an odd object counts as its text
                    total_bytes += len(str(item).encode("utf-8", "replace"))
            else:
                total_bytes += len(str(item).encode("utf-8", "replace"))
    return -(-total_bytes // 3) + 4 * parts + 3


class _Window:
    """The current bucket of one budget's window, recomputed when the clock passes its end."""

    __slots__ = ("alert_window", "bucket", "end", "expires_at", "first", "resets_at", "start")

    def __init__(
        self,
        start: float,
        end: float,
        bucket: int,
        first: int,
        resets_at: float | None,
        expires_at: float | None,
        alert_window: int,
    ) -> None:
        self.start = start
        self.end = end
        self.bucket = bucket
        self.first = first
        self.resets_at = resets_at
        self.expires_at = expires_at
        self.alert_window = alert_window


_FOREVER: Final = _Window(-math.inf, math.inf, 0, 0, None, None, 0)
_STALE: Final = _Window(math.inf, -math.inf, 0, 0, None, None, 0)
"""Matches no time: a windowed budget computes its first window on first use."""


def _calendar(window: str, zone: ZoneInfo, now: float) -> _Window:
    aware = datetime.fromtimestamp(now, tz=zone)
    if window in ("minute", "hour"):
        # In elapsed time, from the local clock's last boundary: a minute or an hour is as long
        # as ever when the clocks go back (local time repeats) or forward.
        into = aware.second + aware.microsecond / 1e6 + (aware.minute * 60 if window == "hour" else 0)
        start_ts = now - into
        end_ts = start_ts + (60 if window == "minute" else 3600)
        bucket = math.floor(start_ts)
        return _Window(start_ts, end_ts, bucket, bucket, end_ts, end_ts + 86_400, bucket)
    local = aware.replace(tzinfo=None)
    if window == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif window == "week":
        start = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=7)
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    start_ts = start.replace(tzinfo=zone).timestamp()
    end_ts = end.replace(tzinfo=zone).timestamp()
    bucket = math.floor(start_ts)
    return _Window(start_ts, end_ts, bucket, bucket, end_ts, end_ts + 86_400, bucket)


def _rolling(length: timedelta, now: float) -> _Window:
    total = max(1, math.ceil(length.total_seconds()))
    step = max(1, math.ceil(total / ROLLING_STEPS))
    steps = math.ceil(total / step)
    bucket = int(now // step) * step
    first = bucket - (steps - 1) * step
    return _Window(
        bucket,
        bucket + step,
        bucket,
        first,
        bucket + step,
        bucket + (steps + 1) * step,
        int(now // total) * total,
    )


class _Compiled:
    """A budget ready for the record path: integer limits and a cached window."""

    __slots__ = ("budget", "limits", "lines", "marks", "name", "per", "window", "zone")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.name = budget.name
        self.per = budget.per
        cost = None if budget.max_cost is None else Decimal(budget.max_cost)
        self.limits: tuple[int | None, int | None, int | None, int | None, int | None, int | None] = (
            budget.max_tokens,
            budget.max_input_tokens,
            budget.max_output_tokens,
            None if cost is None else int(cost * NANOS_PER_USD),
            budget.max_requests,
            budget.max_tool_calls,
        )
        self.marks = tuple(
            (metric, limit, tuple(math.ceil(limit * Decimal(repr(t))) for t in budget.alert_at))
            for metric, limit in enumerate(self.limits)
            if limit is not None and budget.alert_at
        )
        """``(metric, limit, the limit times each alert threshold, rounded up)`` of each limited metric."""
        self.zone = ZoneInfo(budget.timezone)
        self.window = _FOREVER if budget.window is None else _STALE
        self.lines: dict[tuple[tuple[str, ...], int], Line] = {}

    def window_at(self, now: float) -> _Window:
        window = self.window
        if window.start <= now < window.end:
            return window
        spec = self.budget.window
        if spec is None:
            return _FOREVER
        window = _rolling(spec, now) if isinstance(spec, timedelta) else _calendar(spec, self.zone, now)
        self.window = window
        return window

    def line(self, key: tuple[str, ...], window: _Window) -> Line:
        cache_key = (key, window.bucket)
        line = self.lines.get(cache_key)
        if line is None:
            if len(self.lines) > 4096:
                self.lines = {}
            line = self.lines[cache_key] = Line(
                self.name, key, window.bucket, window.first, self.limits, window.expires_at
            )
        return line

    def key_of(self, dims: Mapping[str, str]) -> tuple[str, ...] | None:
        per = self.per
        if per is None:
            return ()
        try:
            return tuple([dims[name] for name in per])
        except KeyError:
            return None

    def key_dict(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.per or (), key, strict=True))


class _Route:
    """The budgets that apply to one set of dimensions, with their lines, while the windows last."""

    __slots__ = ("alert_checks", "dims", "entries", "lines", "since", "until", "version")

    def __init__(
        self,
        dims: Mapping[str, str],
        entries: tuple[tuple[_Compiled, tuple[str, ...], _Window], ...],
        version: int,
    ) -> None:
        self.dims = dims
        self.entries = entries
        self.lines = tuple(compiled.line(key, window) for compiled, key, window in entries)
        self.since = max((window.start for _, _, window in entries), default=-math.inf)
        self.until = min((window.end for _, _, window in entries), default=math.inf)
        self.version = version
        self.alert_checks = tuple(
            (index, metric, marks[0])
            for index, (compiled, _, _) in enumerate(entries)
            for metric, _, marks in compiled.marks
        )
        """``(entry, metric, lowest alert mark)``: usage below the mark fires nothing."""


_NO_ROUTE: Final = _Route({}, (), -1)


class Reservation:
    """What `Meter.reserve` booked: released when unused, settled by the call's `record`.

    Use it as a context manager (``with meter.reserve(...):`` or ``async with``): a
    `Meter.record` inside the block settles it; leaving the block releases whatever was not
    settled, keeping what was recorded. Outside a block, pass it to
    ``record(..., reservation=r)`` or call `release`.

    Attributes:
        id: The reservation's id (the store's key for its holds; empty when no budget applied).
        input_tokens: The input tokens reserved (given or estimated).
        max_output_tokens: The output tokens reserved.
    """

    __slots__ = (
        "_cost",
        "_expires",
        "_meter",
        "_model_call",
        "_priced_as",
        "_route",
        "_state",
        "_token",
        "_vectors",
        "id",
        "input_tokens",
        "max_output_tokens",
    )

    def __init__(
        self,
        meter: Meter,
        rid: str,
        route: _Route,
        vectors: tuple[Vector, ...],
        input_tokens: int,
        max_output_tokens: int,
        cost: int | None,
        expires: float | None,
        model_call: bool,
    ) -> None:
        self._meter = meter
        self._model_call = model_call
        self._priced_as: tuple[str, str | None] | None = None
        """``(model, provider)`` the reservation was priced as, if it was."""
        self.id = rid
        self._route = route
        self._vectors = vectors
        self.input_tokens = input_tokens
        self.max_output_tokens = max_output_tokens
        self._cost = cost
        self._expires = expires
        self._state = "open" if vectors else "empty"
        self._token: Token[Reservation | None] | None = None

    @property
    def active(self) -> bool:
        """Whether the holds are still booked (neither settled nor released)."""
        return self._state == "open"

    @property
    def cost(self) -> Decimal | None:
        """The cost reserved, in USD (``None`` when the model has no price or none was named)."""
        return None if self._cost is None else _nanos_to_usd(self._cost)

    @property
    def expires_at(self) -> datetime | None:
        """When the store lets the holds go if this process never settles them."""
        return _utc(self._expires)

    def release(self) -> None:
        """Give back what is still held. Idempotent; never raises (store failures are logged)."""
        if self._state != "open":
            return
        self._state = "released"
        engine = self._meter._budgets
        if engine is not None:
            engine.release(self)

    def __enter__(self) -> Reservation:
        self._token = self._meter._reservation.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                self._meter._reservation.reset(token)
            except ValueError:  # left in another context than entered (a generator moved between tasks)
                self._meter._reservation.set(None)
        if self._state == "open":
            self.release()

    async def __aenter__(self) -> Reservation:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return (
            f"<meterline.Reservation {self.id or '-'} {self._state}: input_tokens={self.input_tokens} "
            f"max_output_tokens={self.max_output_tokens} cost={self.cost}>"
        )


def unbudgeted(meter: Meter, input_tokens: int, max_output_tokens: int, model_call: bool) -> Reservation:
    """A reservation that holds nothing: no budget applies."""
    return Reservation(meter, "", _NO_ROUTE, (), input_tokens, max_output_tokens, None, None, model_call)


def _ceil_nanos(atto: int) -> int:
    return -(-atto // _ATTO_PER_NANO)


def _nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos).scaleb(-9).normalize()


class BudgetEngine:
    """A meter's budgets and store: turns reservations and events into store calls.

    The budgets that apply to a scope's dimensions, their keys, windows and store lines are
    worked out once per scope and window (a `_Route`) and reused by every call inside it.
    """

    def __init__(self, meter: Meter, store: BudgetStore, lease: float) -> None:
        self.meter = meter
        self.store = store
        self.lease = lease
        self.compiled: tuple[_Compiled, ...] = ()
        self.alert_subscribers: tuple[Callable[[BudgetAlert], object], ...] = ()
        self.owned = False
        """Whether the meter opened the store (and closes it)."""
        self._lock = threading.Lock()
        self._version = 0
        self._routes: dict[int, _Route] = {}
        self._prices: dict[tuple[str | None, str], Any] = {}
        self._prefix = ""
        self._pid = -1
        self._counter = itertools.count(1)

    # -- budgets -----------------------------------------------------------------------

    def add(self, budget: Budget) -> None:
        with self._lock:
            for compiled in self.compiled:
                if compiled.name == budget.name:
                    if compiled.budget == budget:
                        return
                    raise ConfigurationError(
                        f"a different budget named {budget.name!r} is already set; "
                        "give each budget its own name= or remove_budget() first"
                    )
            self.compiled = (*self.compiled, _Compiled(budget))
            self._version += 1
            self._routes = {}
        try:
            self.store.define(budget.name, json.dumps(budget.to_dict(), sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - the definition is for reports only
            self.meter._machinery_failed("the budget store", f"define {budget.name!r}: {exc}")

    def remove(self, name: str) -> bool:
        with self._lock:
            kept = tuple(compiled for compiled in self.compiled if compiled.name != name)
            removed = len(kept) != len(self.compiled)
            self.compiled = kept
            self._version += 1
            self._routes = {}
        return removed

    def route(self, dims: Mapping[str, str], now: float) -> _Route:
        """The budgets that apply to ``dims`` at ``now`` (cached per dimensions object)."""
        route = self._routes.get(id(dims))
        if (
            route is not None
            and route.dims is dims
            and route.since <= now < route.until
            and route.version == self._version
        ):
            return route
        version = self._version  # before the budgets: a concurrent add() makes this route stale, not wrong
        entries = []
        for compiled in self.compiled:
            key = compiled.key_of(dims)
            if key is not None:
                entries.append((compiled, key, compiled.window_at(now)))
        route = _Route(dims, tuple(entries), version)
        routes = self._routes
        if len(routes) >= 1024:
            routes.clear()
        routes[id(dims)] = route  # holds ``dims``, so the id is not reused while cached
        return route

    # -- reserve -----------------------------------------------------------------------

    def _estimate_atto(
        self, model: str, provider: str | None, input_tokens: int, output_tokens: int
    ) -> int | None:
        """The cost of ``input_tokens`` uncached input and ``output_tokens`` output, in atto-dollars."""
        pricer = self.meter.pricer
        now_ns = time.time_ns()
        plan = self._prices.get((provider, model))
        if plan is None:
            plan = pricer.resolve(provider, model).constant
            if plan is not None and plan.flat and plan.exact:
                self._prices[(provider, model)] = plan
            else:
                usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
                return pricer.cost_atto(usage, provider, model, now_ns)
        rates = plan.rates[0]
        return int(plan.const_atto + input_tokens * rates[0] + output_tokens * rates[4])

    def reserve(
        self,
        dims: Mapping[str, str],
        model: str | None,
        provider: str | None,
        input_tokens: int,
        max_output_tokens: int,
        tool_calls: int,
        lease: float,
    ) -> Reservation:
        now = time.time()
        route = self._routes.get(id(dims))
        if (
            route is None
            or route.dims is not dims
            or not route.since <= now < route.until
            or route.version != self._version
        ):
            route = self.route(dims, now)
        meter = self.meter
        model_call = model is not None
        if not route.entries:
            return Reservation(meter, "", route, (), input_tokens, max_output_tokens, None, None, model_call)
        atto: int | None = None
        if model is not None:
            plan = self._prices.get((provider, model))
            if plan is not None:  # a flat, exact price: the estimate inline
                rates = plan.rates[0]
                atto = plan.const_atto + input_tokens * rates[0] + max_output_tokens * rates[4]
            else:
                try:
                    atto = self._estimate_atto(model, provider, input_tokens, max_output_tokens)
                except Exception:  # noqa: BLE001 - a pricing bug makes the call unpriced, never breaks it
                    meter._machinery_failed("pricing", f"{provider}/{model}")
        cost = 0 if atto is None else -(-atto // _ATTO_PER_NANO)
        vector: Vector = (
            input_tokens + max_output_tokens,
            input_tokens,
            max_output_tokens,
            cost,
            1 if model_call else 0,
            tool_calls,
        )
        if atto is None and model_call:
            vectors = tuple(
                self._unpriced_vector(vector, compiled, key, window, model, provider)
                for compiled, key, window in route.entries
            )
        else:
            vectors = (vector,) * len(route.entries)
        pid = _getpid()
        if pid != self._pid:  # first use, or a forked child
            self._pid = pid
            self._prefix = f"{os.urandom(6).hex()}-{pid:x}-"
        rid = self._prefix + str(next(self._counter))  # unique across processes and hosts
        try:
            refusal = self.store.reserve(rid, route.lines, vectors, now, lease)
        except Exception as exc:  # noqa: BLE001 - the store's failure follows each budget's policy
            self._store_failed("reserve", exc, [compiled for compiled, _, _ in route.entries])
            return Reservation(meter, "", route, (), input_tokens, max_output_tokens, None, None, model_call)
        if refusal is not None:
            raise self._exceeded(refusal, route)
        reservation = Reservation(
            meter,
            rid,
            route,
            vectors,
            input_tokens,
            max_output_tokens,
            None if atto is None else cost,
            now + lease,
            model_call,
        )
        if model is not None and atto is not None:
            reservation._priced_as = (model, provider)
        return reservation

    def _unpriced_vector(
        self,
        vector: Vector,
        compiled: _Compiled,
        key: tuple[str, ...],
        window: _Window,
        model: str | None,
        provider: str | None,
    ) -> Vector:
        """The reservation of an unpriced model's call under one budget, by its policy."""
        limit = compiled.limits[COST]
        budget = compiled.budget
        if limit is None or budget.on_unpriced == "fail_open":
            return vector
        if budget.on_unpriced == "estimate" and budget.estimate_price is not None:
            cost = _estimated_nanos(budget.estimate_price, vector[INPUT_TOKENS], vector[OUTPUT_TOKENS])
            return (vector[0], vector[1], vector[2], cost, vector[4], vector[5])
        raise BudgetExceeded(
            compiled.name,
            compiled.key_dict(key),
            "cost",
            _amount(COST, limit),
            Decimal(0),
            Decimal(0),
            Decimal(0),
            _utc(window.resets_at),
            reason=(
                f"model {model!r} (provider {provider!r}) has no price, and the budget's "
                "on_unpriced policy is 'fail_closed' (add a price override, or set on_unpriced="
                "'fail_open' or 'estimate')"
            ),
        )

    def _exceeded(self, refusal: Refusal, route: _Route) -> BudgetExceeded:
        compiled, key, window = route.entries[refusal.line]
        metric = refusal.metric
        return BudgetExceeded(
            compiled.name,
            compiled.key_dict(key),
            METRICS[metric],
            _amount(metric, refusal.limit),
            _amount(metric, refusal.used),
            _amount(metric, refusal.reserved),
            _amount(metric, refusal.requested),
            _utc(window.resets_at),
        )

    def _store_failed(self, what: str, exc: BaseException, budgets: Iterable[_Compiled]) -> None:
        self.meter._machinery_failed("the budget store", f"{what}: {exc}")
        closed = [compiled.name for compiled in budgets if compiled.budget.on_store_error == "fail_closed"]
        if closed:
            raise BudgetStoreError(
                f"the budget store {self.store.url} failed ({exc}); budget {closed[0]!r} fails closed, "
                "so the call is refused"
            ) from exc

    # -- settle ------------------------------------------------------------------------

    def release(self, reservation: Reservation) -> None:
        try:
            self.store.release(reservation.id)
        except Exception as exc:  # noqa: BLE001 - the lease frees the holds anyway
            self.meter._machinery_failed("the budget store", f"release {reservation.id}: {exc}")

    def charge(
        self,
        dims: Mapping[str, str],
        usage: Usage | None,
        atto: int | None,
        model_call: bool,
        tool_calls: int,
        reservation: Reservation | None,
        time_ns: int,
    ) -> None:
        """Charge what one event used, settling ``reservation`` if it is open; never raises.

        Args:
            dims: The event's dimensions.
            usage: Its usage (``None``: unmeasured).
            atto: Its cost in atto-dollars (``None``: unpriced or no usage).
            model_call: Whether it is a model call (counted as a request).
            tool_calls: Tool calls it counts (1 for a tool event).
            reservation: The reservation it settles, if any.
            time_ns: When it was recorded, in nanoseconds since the epoch.
        """
        now = time_ns / 1e9
        rid = None
        try:
            held: tuple[Vector | None, ...] = ()
            route = _NO_ROUTE
            if reservation is not None and reservation._state == "open":
                reservation._state = "settled"
                rid = reservation.id
                route = reservation._route
                if (
                    (route.dims is dims or route.dims == dims)
                    and route.since <= now < route.until
                    and route.version == self._version
                ):
                    held = reservation._vectors
                else:
                    route = _NO_ROUTE
            if route is _NO_ROUTE:
                route = self._routes.get(id(dims)) or _NO_ROUTE
                if (
                    route.dims is not dims
                    or not route.since <= now < route.until
                    or route.version != self._version
                ):
                    route = self.route(dims, now)
            if not route.entries:
                if rid is not None:
                    self.store.release(rid)
                return
            requests = 1 if model_call else 0
            if usage is None:
                if reservation is not None and rid is not None and not held:
                    # The route changed since the reservation (a new window step, other tags,
                    # a budget added): match what was held by budget name.
                    by_name = {
                        compiled.name: vector
                        for (compiled, _, _), vector in zip(
                            reservation._route.entries, reservation._vectors, strict=False
                        )
                    }
                    held = tuple(by_name.get(compiled.name) for compiled, _, _ in route.entries)
                input_nanos: int | None = None
                if reservation is not None and reservation._priced_as is not None:
                    model, provider = reservation._priced_as
                    input_nanos = _ceil_nanos(
                        self._estimate_atto(model, provider, reservation.input_tokens, 0) or 0
                    )
                input_tokens = 0 if reservation is None else reservation.input_tokens
                vectors = tuple(
                    _unmeasured(
                        compiled,
                        held[index] if held else None,
                        requests,
                        tool_calls,
                        input_nanos,
                        input_tokens,
                    )
                    for index, (compiled, _, _) in enumerate(route.entries)
                )
            else:
                input_tokens = usage.input_tokens
                output_tokens = usage.output_tokens
                vector: Vector = (
                    input_tokens + output_tokens,
                    input_tokens,
                    output_tokens,
                    0 if atto is None else -(-atto // _ATTO_PER_NANO),
                    requests,
                    tool_calls,
                )
                if atto is None and model_call:
                    vectors = tuple(_unpriced_actual(compiled, vector) for compiled, _, _ in route.entries)
                else:
                    vectors = (vector,) * len(route.entries)
            after = self.store.settle(rid, route.lines, vectors, now)
            for index, metric, lowest in route.alert_checks:
                if after[index][metric] >= lowest:
                    self._alerts(route, vectors, after, now)
                    break
        except Exception as exc:  # noqa: BLE001 - settling never breaks record()
            self.meter._machinery_failed("the budget store", f"settle: {exc}")
            if rid is not None:  # the usage is lost to the budget; at least free what was held
                try:
                    self.store.release(rid)
                except Exception as again:  # noqa: BLE001 - the lease frees it in the end
                    self.meter._machinery_failed("the budget store", f"release {rid}: {again}")

    def _alerts(self, route: _Route, vectors: Sequence[Vector], after: Sequence[Vector], now: float) -> None:
        for index, metric, lowest in route.alert_checks:
            total = after[index][metric]
            if total < lowest:
                continue
            compiled, key, window = route.entries[index]
            before = total - vectors[index][metric]
            for _, limit, marks in compiled.marks:
                if _ != metric:
                    continue
                for threshold, mark in zip(compiled.budget.alert_at, marks, strict=True):
                    if before < mark <= total and self.store.claim_alert(
                        compiled.name, key, window.alert_window, round(threshold * 1000)
                    ):
                        self._fire(
                            compiled,
                            BudgetAlert(
                                compiled.name,
                                compiled.key_dict(key),
                                METRICS[metric],
                                threshold,
                                _amount(metric, limit),
                                _amount(metric, total),
                                None if compiled.budget.window is None else _utc(window.start),
                                datetime.fromtimestamp(now, tz=UTC),
                            ),
                        )

    def _fire(self, compiled: _Compiled, alert: BudgetAlert) -> None:
        callbacks = [*self.alert_subscribers]
        if compiled.budget.on_alert is not None:
            callbacks.append(compiled.budget.on_alert)
        for callback in callbacks:
            try:
                callback(alert)
            except Exception:  # noqa: BLE001 - an alert callback never breaks record()
                self.meter._subscriber_failed(callback)

    # -- reading -----------------------------------------------------------------------

    def status(self, now: float | None = None) -> list[BudgetStatus]:
        moment = time.time() if now is None else now
        result = []
        for compiled in self.compiled:
            result.extend(read_status(self.store, compiled, moment))
        return result

    def forget(self, dims: Mapping[str, str]) -> int:
        forgotten = 0
        for compiled in self.compiled:
            per = compiled.per or ()
            if per and set(dims) <= set(per):
                pattern = tuple(dims.get(name) for name in per)
                try:
                    forgotten += self.store.forget(compiled.name, pattern)
                except Exception as exc:  # noqa: BLE001 - forgetting is housekeeping
                    self.meter._machinery_failed("the budget store", f"forget: {exc}")
        return forgotten


def _unmeasured(
    compiled: _Compiled,
    held: Vector | None,
    requests: int,
    tool_calls: int,
    input_nanos: int | None,
    input_tokens: int,
) -> Vector:
    """What a call recorded without usage charges, by the budget's ``on_unmeasured`` policy.

    ``input_nanos`` is the cost of the reservation's ``input_tokens`` alone at the model's
    price (``None`` for a model without one: the budget's ``estimate_price`` is used, if any).
    """
    if held is None or not requests:
        return (0, 0, 0, 0, requests, tool_calls)
    policy = compiled.budget.on_unmeasured
    if policy == "fail_closed":
        return (held[TOKENS], held[INPUT_TOKENS], held[OUTPUT_TOKENS], held[COST], requests, tool_calls)
    if policy == "estimate":
        if input_nanos is None:
            price = compiled.budget.estimate_price
            input_nanos = 0 if price is None else _estimated_nanos(price, input_tokens, 0)
        share = min(held[COST], input_nanos)
        return (held[INPUT_TOKENS], held[INPUT_TOKENS], 0, share, requests, tool_calls)
    return (0, 0, 0, 0, requests, tool_calls)


def _unpriced_actual(compiled: _Compiled, vector: Vector) -> Vector:
    """An unpriced call's charge: its estimated price under ``on_unpriced="estimate"``, else no cost."""
    budget = compiled.budget
    if budget.on_unpriced == "estimate" and budget.estimate_price is not None and compiled.limits[COST]:
        cost = _estimated_nanos(budget.estimate_price, vector[INPUT_TOKENS], vector[OUTPUT_TOKENS])
        return (vector[0], vector[1], vector[2], cost, vector[4], vector[5])
    return vector


def read_status(store: BudgetStore, compiled: _Compiled, now: float) -> list[BudgetStatus]:
    """Every key's `BudgetStatus` rows of one budget, read from ``store`` at ``now``."""
    window = compiled.window_at(now)
    keys = store.keys(compiled.name)
    if compiled.per is None and () not in keys:
        keys = [(), *keys]
    lines = [compiled.line(key, window) for key in keys]
    rows = []
    for key, (used, reserved) in zip(keys, store.read(lines, now), strict=True):
        rows.extend(
            status_rows(compiled.name, compiled.key_dict(key), compiled.limits, used, reserved, window)
        )
    return rows


def status_rows(
    name: str,
    key: Mapping[str, str],
    limits: Sequence[int | None],
    used: Vector,
    reserved: Vector,
    window: _Window,
) -> list[BudgetStatus]:
    """One `BudgetStatus` per limited metric of one counter."""
    rows = []
    for metric, limit in enumerate(limits):
        if limit is None:
            continue
        rows.append(
            BudgetStatus(
                name,
                key,
                METRICS[metric],
                _amount(metric, limit),
                _amount(metric, used[metric]),
                _amount(metric, reserved[metric]),
                _amount(metric, limit - used[metric] - reserved[metric]),
                _utc(window.resets_at),
            )
        )
    return rows


def _estimated_nanos(
    price: tuple[Decimal | str, Decimal | str], input_tokens: int, output_tokens: int
) -> int:
    usd = (Decimal(price[0]) * input_tokens + Decimal(price[1]) * output_tokens) / 1_000_000
    return math.ceil(usd * NANOS_PER_USD)
