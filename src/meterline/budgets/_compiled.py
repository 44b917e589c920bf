"""Budgets made ready for the record path: integer limits, cached windows and routes.

A `CompiledBudget` is one `Budget` with its limits in the store's units (cost in
pico-dollars), its current window and its store `Line` s. A `Route` is the set of budgets
that apply to one set of dimensions while their windows last: worked out once per scope and
window, and reused by every call inside it. `budget_status` reads where budgets stand from a
store, with or without a meter.
"""

from __future__ import annotations as _annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from meterline._money import PICO_PER_USD
from meterline.budgets._budget import Budget, BudgetStatus, amount_of, utc
from meterline.budgets._store import (
    COST,
    INPUT_TOKENS,
    METRICS,
    OUTPUT_TOKENS,
    TOKENS,
    BudgetStore,
    Line,
    Vector,
)
from meterline.budgets._window import FOREVER, STALE, Window, calendar_window, rolling_window
from meterline.exceptions import BudgetExceeded, ConfigurationError

__all__ = [
    "NO_ROUTE",
    "CompiledBudget",
    "Route",
    "budget_status",
    "estimated_pico",
    "known_budgets",
    "status_rows",
]

_MAX_CACHED_LINES: Final = 4096


class CompiledBudget:
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
            None if cost is None else int(cost * PICO_PER_USD),
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
        self.window = FOREVER if budget.window is None else STALE
        self.lines: dict[tuple[tuple[str, ...], int], Line] = {}

    def window_at(self, now: float) -> Window:
        """The budget's window at ``now`` (cached until it ends)."""
        window = self.window
        if window.start <= now < window.end:
            return window
        spec = self.budget.window
        if spec is None:
            return FOREVER
        window = (
            rolling_window(spec, now)
            if isinstance(spec, timedelta)
            else calendar_window(spec, self.zone, now)
        )
        self.window = window
        return window

    def line(self, key: tuple[str, ...], window: Window) -> Line:
        """The store line of ``key`` in ``window``."""
        cache_key = (key, window.bucket)
        line = self.lines.get(cache_key)
        if line is None:
            if len(self.lines) > _MAX_CACHED_LINES:
                self.lines = {}
            line = self.lines[cache_key] = Line(
                self.name, key, window.bucket, window.first, self.limits, window.expires_at
            )
        return line

    def key_of(self, dims: Mapping[str, str]) -> tuple[str, ...] | None:
        """The budget's key for ``dims``: the values of its ``per`` dimensions (``None`` if one is unset)."""
        per = self.per
        if per is None:
            return ()
        try:
            return tuple([dims[name] for name in per])
        except KeyError:
            return None

    def key_dict(self, key: tuple[str, ...]) -> dict[str, str]:
        """``key`` by dimension name."""
        return dict(zip(self.per or (), key, strict=True))

    # -- policies ----------------------------------------------------------------------

    def unpriced_hold(
        self, vector: Vector, key: tuple[str, ...], window: Window, model: str | None, provider: str | None
    ) -> Vector:
        """What a reservation of an unpriced model's call holds under this budget's ``on_unpriced``.

        Raises:
            BudgetExceeded: under ``fail_closed``, when the budget limits cost.
        """
        limit = self.limits[COST]
        budget = self.budget
        if limit is None or budget.on_unpriced == "fail_open":
            return vector
        if budget.on_unpriced == "estimate" and budget.estimate_price is not None:
            cost = estimated_pico(budget.estimate_price, vector[INPUT_TOKENS], vector[OUTPUT_TOKENS])
            return (vector[0], vector[1], vector[2], cost, vector[4], vector[5])
        raise BudgetExceeded(
            self.name,
            self.key_dict(key),
            "cost",
            amount_of(COST, limit),
            Decimal(0),
            Decimal(0),
            Decimal(0),
            utc(window.resets_at),
            reason=(
                f"model {model!r} (provider {provider!r}) has no price, and the budget's "
                "on_unpriced policy is 'fail_closed' (add a price override, or set on_unpriced="
                "'fail_open' or 'estimate')"
            ),
        )

    def unpriced_charge(self, vector: Vector) -> Vector:
        """An unpriced call's charge: its estimated price under ``on_unpriced="estimate"``, else no cost."""
        budget = self.budget
        if budget.on_unpriced == "estimate" and budget.estimate_price is not None and self.limits[COST]:
            cost = estimated_pico(budget.estimate_price, vector[INPUT_TOKENS], vector[OUTPUT_TOKENS])
            return (vector[0], vector[1], vector[2], cost, vector[4], vector[5])
        return vector

    def unmeasured_charge(
        self, held: Vector | None, requests: int, tool_calls: int, input_pico: int | None, input_tokens: int
    ) -> Vector:
        """What a call recorded without usage charges, by this budget's ``on_unmeasured`` policy.

        Args:
            held: What the call's reservation held under this budget (``None``: nothing).
            requests: The requests the call counts (1 for a model call).
            tool_calls: The tool calls it counts.
            input_pico: The cost of the reservation's ``input_tokens`` alone at the model's
                price (``None`` for a model without one: ``estimate_price`` is used, if set).
            input_tokens: The reservation's input tokens.
        """
        if held is None or not requests:
            return (0, 0, 0, 0, requests, tool_calls)
        policy = self.budget.on_unmeasured
        if policy == "fail_closed":
            return (held[TOKENS], held[INPUT_TOKENS], held[OUTPUT_TOKENS], held[COST], requests, tool_calls)
        if policy == "estimate":
            if input_pico is None:
                price = self.budget.estimate_price
                input_pico = 0 if price is None else estimated_pico(price, input_tokens, 0)
            share = min(held[COST], input_pico)
            return (held[INPUT_TOKENS], held[INPUT_TOKENS], 0, share, requests, tool_calls)
        return (0, 0, 0, 0, requests, tool_calls)

    # -- status --------------------------------------------------------------------------

    def status(self, store: BudgetStore, now: float) -> list[BudgetStatus]:
        """Every key's `BudgetStatus` rows of this budget, read from ``store`` at ``now``."""
        window = self.window_at(now)
        keys = store.keys(self.name)
        if self.per is None and () not in keys:
            keys = [(), *keys]
        lines = [self.line(key, window) for key in keys]
        rows = []
        for key, (used, reserved) in zip(keys, store.read(lines, now), strict=True):
            rows.extend(status_rows(self.name, self.key_dict(key), self.limits, used, reserved, window))
        return rows


class Route:
    """The budgets that apply to one set of dimensions, with their lines, while the windows last."""

    __slots__ = ("alert_checks", "dims", "entries", "lines", "since", "until", "version")

    def __init__(
        self,
        dims: Mapping[str, str],
        entries: tuple[tuple[CompiledBudget, tuple[str, ...], Window], ...],
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


NO_ROUTE: Final = Route({}, (), -1)


def estimated_pico(price: tuple[Decimal | str, Decimal | str], input_tokens: int, output_tokens: int) -> int:
    """The cost at a budget's ``estimate_price`` (USD per million tokens), in pico-dollars rounded up."""
    usd = (Decimal(price[0]) * input_tokens + Decimal(price[1]) * output_tokens) / 1_000_000
    return math.ceil(usd * PICO_PER_USD)


def budget_status(
    store: BudgetStore, budgets: Iterable[Budget], now: float | None = None
) -> list[BudgetStatus]:
    """Where ``budgets`` stand in ``store`` at ``now`` (default: the clock): one row per key and limit.

    A global budget always has its row; a per-key budget has one for each key the store holds
    usage or reservations for.
    """
    moment = time.time() if now is None else now
    rows: list[BudgetStatus] = []
    for budget in budgets:
        rows.extend(CompiledBudget(budget).status(store, moment))
    return rows


def known_budgets(store: BudgetStore, budgets: Iterable[Budget] = ()) -> list[Budget]:
    """``budgets`` plus every definition ``store`` keeps; ``budgets`` wins for a name in both.

    Meters store the definitions of the budgets they enforce, so a reader of the store (the
    command line, the dashboard) knows every budget without being told.

    Raises:
        ConfigurationError: for a stored definition this meterline cannot read.
    """
    by_name = {}
    for name, spec in sorted(store.definitions().items()):
        try:
            by_name[name] = Budget.from_dict(json.loads(spec), source=f"stored budget {name!r}")
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"stored budget {name!r} cannot be read: {exc}") from None
    for budget in budgets:
        by_name[budget.name] = budget
    return list(by_name.values())


def status_rows(
    name: str,
    key: Mapping[str, str],
    limits: Sequence[int | None],
    used: Vector,
    reserved: Vector,
    window: Window,
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
                amount_of(metric, limit),
                amount_of(metric, used[metric]),
                amount_of(metric, reserved[metric]),
                amount_of(metric, limit - used[metric] - reserved[metric]),
                utc(window.resets_at),
            )
        )
    return rows
