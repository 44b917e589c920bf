"""What a budget store keeps, and the protocol every store implements.

A store knows nothing of scopes, prices or calendars: the meter turns each budget that
applies to a call into a `Line` (which counter, which window buckets, which limits) and an
amount vector, and the store checks and books them atomically. That keeps every store small
and lets one conformance suite (``tests/budgets/conformance.py``) hold them all to the same
rules.

Amounts are vectors of six non-negative ints, in the order of `METRICS`: tokens, input
tokens, output tokens, cost in pico-dollars (10⁻¹² USD, `meterline._money`), requests,
tool calls.

The rules every store follows:

* ``used`` of a line is the sum of its counter's buckets ``first_bucket..bucket``.
* ``reserved`` of a line is the sum of its counter's holds whose lease has not expired at
  ``now``; expired holds count for nothing and may be deleted at any time.
* `BudgetStore.reserve` books a hold on every line, or on none: a line is refused when, for
  any metric it limits, ``used + reserved + amount > limit``.
* `BudgetStore.settle` deletes the holds of a reservation (if any are left) and adds the
  amounts to each line's current bucket, without any check: usage that happened is counted.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

__all__ = [
    "COST",
    "COUNTER_MAX",
    "INPUT_TOKENS",
    "METRICS",
    "OUTPUT_TOKENS",
    "REQUESTS",
    "TOKENS",
    "TOOL_CALLS",
    "ZERO",
    "BudgetStore",
    "CounterKey",
    "Line",
    "Refusal",
    "Vector",
    "ceilings",
]

METRICS: Final = ("tokens", "input_tokens", "output_tokens", "cost", "requests", "tool_calls")
"""The metrics a budget can limit, in the order of every amount vector."""
TOKENS, INPUT_TOKENS, OUTPUT_TOKENS, COST, REQUESTS, TOOL_CALLS = range(6)

Vector = tuple[int, int, int, int, int, int]
"""One amount per metric, in the order of `METRICS`."""
ZERO: Final[Vector] = (0, 0, 0, 0, 0, 0)

CounterKey = tuple[str, tuple[str, ...]]
"""A counter: the budget's name and the values of its ``per`` dimensions (``()`` if global)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One budget counter, in one window, as a reservation or a charge sees it.

    Attributes:
        budget: The budget's name.
        key: The values of the budget's ``per`` dimensions, in order (``()`` for a global one).
        bucket: The bucket charges go to: the current window's start, in whole seconds since
            the epoch (``0`` for a budget without a window).
        first_bucket: The first bucket that counts as used (``== bucket`` for a calendar window
            or none; earlier for a rolling window, which sums several buckets).
        limits: The limit of each metric, ``None`` where the budget sets none.
        expires_at: When the bucket stops mattering (seconds since the epoch), so a store may
            drop it; ``None`` to keep it.
    """

    budget: str
    key: tuple[str, ...]
    bucket: int
    first_bucket: int
    limits: tuple[int | None, int | None, int | None, int | None, int | None, int | None]
    expires_at: float | None = None

    @property
    def counter(self) -> CounterKey:
        """The counter this line books against."""
        return (self.budget, self.key)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a store refused a reservation: the first line and metric that would go over.

    Attributes:
        line: Index of the refused line in the request.
        metric: Index of the metric in `METRICS`.
        limit: The limit.
        used: What the window has used.
        reserved: What live reservations hold (not counting this one).
        requested: What this reservation asked for.
    """

    line: int
    metric: int
    limit: int
    used: int
    reserved: int
    requested: int


COUNTER_MAX: Final = 2**63 - 1
"""The most a store's counter holds of any metric (a 64-bit integer column).

Stores with fixed-width counters saturate there: a charge that would pass it leaves the
counter at `COUNTER_MAX` (never an error, and the event's other metrics are still counted),
and a reservation that would pass it is refused on that metric, as if it were its limit."""


def ceilings(line: Line) -> Vector:
    """The most each metric of ``line`` may reach: its limit, or `COUNTER_MAX` where none is set.

    `first_refusal` applies the same rule inline (it runs under a store's lock).
    """
    t, i, o, c, r, k = (COUNTER_MAX if limit is None else limit for limit in line.limits)
    return (t, i, o, c, r, k)


def first_refusal(
    lines: Sequence[Line], amounts: Sequence[Vector], state: Sequence[tuple[Vector, Vector]]
) -> Refusal | None:
    """The first (line, metric) where ``used + reserved + amount`` would pass the limit.

    A metric without a limit is limited by `COUNTER_MAX`.

    Args:
        lines: The lines asked for.
        amounts: The amount of each line.
        state: ``(used, reserved)`` of each line, read inside the store's transaction.
    """
    for index, line in enumerate(lines):
        used, reserved = state[index]
        amount = amounts[index]
        for metric, given in enumerate(line.limits):
            limit = COUNTER_MAX if given is None else given  # past what a counter holds: refused
            if used[metric] + reserved[metric] + amount[metric] > limit:
                return Refusal(index, metric, limit, used[metric], reserved[metric], amount[metric])
    return None


def add(a: Sequence[int], b: Sequence[int]) -> Vector:
    """The metric-wise sum of two vectors."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


@runtime_checkable
class BudgetStore(Protocol):
    """Where budget counters and reservations live; atomic across everyone sharing it.

    ``now`` is always the caller's clock, in seconds since the epoch, so that leases and
    windows follow one clock per call. Every method may raise `meterline.BudgetStoreError`
    when the store fails; none raises anything else on purpose.
    """

    url: str
    """Where the store is, without a password."""

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing.

        Args:
            rid: The reservation's id (unique; a second reserve with the same id is refused
                by no store, so callers never reuse one).
            lines: The lines to check and hold.
            amounts: The amount of each line.
            now: The caller's clock.
            lease: Seconds until the holds expire if never settled or released.

        Returns:
            ``None`` when every hold was booked; otherwise why not (and nothing was booked).
        """
        ...

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` (if any are left) and add ``amounts`` to ``lines``.

        Returns:
            The used vector of each line after the charge (for threshold alerts).
        """
        ...

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``; nothing if there are none."""
        ...

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        """``(used, reserved)`` of each line at ``now``."""
        ...

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of every counter of ``budget`` that has usage or live holds, sorted."""
        ...

    def forget(self, budget: str, key: tuple[str | None, ...]) -> int:
        """Delete the counters (usage and holds) of ``budget`` matching ``key``.

        ``None`` in ``key`` matches any value at that position.

        Returns:
            How many counters were deleted.
        """
        ...

    def claim_alert(self, budget: str, key: tuple[str, ...], window: int, threshold: int) -> bool:
        """Claim the right to fire one alert; ``True`` the first time only, across processes.

        Args:
            budget: The budget's name.
            key: The counter's key.
            window: The window's start (seconds since the epoch; ``0`` without a window).
            threshold: The threshold, in thousandths of the limit (``800`` for 80 %).
        """
        ...

    def define(self, budget: str, spec: str) -> None:
        """Store (or replace) a budget's definition, as JSON, for `meterline budgets`."""
        ...

    def definitions(self) -> dict[str, str]:
        """Every stored budget definition, by name."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
