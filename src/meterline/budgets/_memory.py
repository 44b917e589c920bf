"""The in-memory budget store: the default, for the threads of one process."""

from __future__ import annotations as _annotations

import math
import time
from collections.abc import Sequence

from meterline._yielding_lock import YieldingLock
from meterline.budgets._store import ZERO, CounterKey, Line, Refusal, Vector

__all__ = ["MemoryBudgetStore"]

_INF = math.inf


class _Counter:
    """One counter: usage per bucket, and the running sum of its live holds.

    Usage vectors are tuples rebuilt with unrolled arithmetic (cheaper in CPython than a loop
    over six metrics). The running sum of holds is kept only for the metrics the counter's
    budget limits, the only ones a reservation checks; `MemoryBudgetStore.read` adds the
    others up from the holds when asked.
    """

    __slots__ = ("buckets", "expiry", "held", "holds", "metrics")

    def __init__(self) -> None:
        self.buckets: dict[int, Vector] = {}
        self.expiry: dict[int, float] = {}
        self.metrics: tuple[int, ...] = ()
        """The limited metrics, whose live holds ``held`` adds up."""
        self.held = [0, 0, 0, 0, 0, 0]
        """The sum of the live holds, for each metric in ``metrics`` (zero elsewhere)."""
        self.holds = 0
        """How many live holds there are."""

    def used(self, first: int, last: int) -> Vector:
        buckets = self.buckets
        if first == last:
            return buckets.get(last, ZERO)
        total = ZERO
        for bucket, amounts in buckets.items():
            if first <= bucket <= last:
                total = _plus(total, amounts)
        return total

    def new_bucket(self, line: Line, amount: Vector, now: float) -> Vector:
        buckets = self.buckets
        if self.expiry:  # drop the buckets that stopped mattering
            for old in [old for old, expires in self.expiry.items() if expires <= now]:
                del self.expiry[old]
                buckets.pop(old, None)
        buckets[line.bucket] = amount
        if line.expires_at is not None:
            self.expiry[line.bucket] = line.expires_at
        return amount


def _plus(a: Vector, b: Vector) -> Vector:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


_Entry = tuple[Line, _Counter, tuple[tuple[int, int], ...]]


class MemoryBudgetStore:
    """Budget counters in this process's memory, guarded by one lock.

    Atomic across the threads (and asyncio tasks) of one process; gone when it exits. Use
    SQLite for the processes of one host, PostgreSQL or Redis for many hosts.

    Each counter keeps the running sum of its live holds; the holds themselves are kept per
    reservation. When the earliest lease passes, the expired reservations are dropped and
    the sums rebuilt from the rest.
    """

    url = "memory://"

    def __init__(self) -> None:
        # Taken on every charge: a blocking lock let two recording threads fall into taking
        # turns at every call (see `YieldingLock`). Two threads flat out under two in-memory
        # budgets (bench/bench_budget_threads.py, 6 runs each): record()'s median 5.9-14.3 ->
        # 3.8-5.7 µs, p99 126-141 -> 7.5-15 µs, 42,500-48,700 -> 82,000-115,000 calls/s.
        self._lock = YieldingLock()
        self._counters: dict[CounterKey, _Counter] = {}
        self._by_line: dict[int, _Entry] = {}
        self._holds: dict[str, tuple[list[_Counter], Sequence[Vector], float]] = {}
        self._soonest = _INF
        self._alerts: set[tuple[str, tuple[str, ...], int, int]] = set()
        self._definitions: dict[str, str] = {}

    def _entry(self, line: Line) -> _Entry:
        """The counter of ``line`` and its (metric, limit) checks, cached by the line's identity."""
        entry = self._by_line.get(id(line))
        if entry is not None and entry[0] is line:
            return entry
        key = (line.budget, line.key)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter()
        checks = tuple((metric, limit) for metric, limit in enumerate(line.limits) if limit is not None)
        metrics = tuple(metric for metric, _ in checks)
        if counter.metrics != metrics:  # first use, or the budget's limits changed: add up again
            counter.metrics = metrics
            held = [0, 0, 0, 0, 0, 0]
            for counters, amounts, _ in self._holds.values():
                for index, holder in enumerate(counters):
                    if holder is counter:
                        for metric in metrics:
                            held[metric] += amounts[index][metric]
            counter.held = held
        if len(self._by_line) >= 8192:
            self._by_line.clear()
        entry = self._by_line[id(line)] = (line, counter, checks)  # holds the line: its id stays unique
        return entry

    def _expire(self, now: float) -> None:
        """Drop the reservations whose lease has passed and add the live holds up again (lock held)."""
        live = {rid: hold for rid, hold in self._holds.items() if hold[2] > now}
        self._holds = live
        for counter in self._counters.values():
            counter.held = [0, 0, 0, 0, 0, 0]
            counter.holds = 0
        for counters, amounts, _ in live.values():
            for counter, amount in zip(counters, amounts, strict=True):
                held = counter.held
                for metric in counter.metrics:
                    held[metric] += amount[metric]
                counter.holds += 1
        self._soonest = min((hold[2] for hold in live.values()), default=_INF)

    def _drop(self, rid: str) -> None:
        hold = self._holds.pop(rid, None)
        if hold is not None:
            amounts = hold[1]
            for index, counter in enumerate(hold[0]):
                held = counter.held
                amount = amounts[index]
                for metric in counter.metrics:
                    held[metric] -= amount[metric]
                counter.holds -= 1

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing."""
        with self._lock:
            if now >= self._soonest:
                self._expire(now)
            counters = []
            by_line = self._by_line
            for index, line in enumerate(lines):
                entry = by_line.get(id(line))
                if entry is None or entry[0] is not line:
                    entry = self._entry(line)
                counter = entry[1]
                checks = entry[2]
                if checks:
                    buckets = counter.buckets
                    if line.first_bucket == line.bucket:
                        used = buckets.get(line.bucket, ZERO)
                    else:
                        used = counter.used(line.first_bucket, line.bucket)
                    held = counter.held
                    amount = amounts[index]
                    for metric, limit in checks:
                        if used[metric] + held[metric] + amount[metric] > limit:
                            return Refusal(index, metric, limit, used[metric], held[metric], amount[metric])
                counters.append(counter)
            expires = now + lease
            for index, counter in enumerate(counters):
                held = counter.held
                amount = amounts[index]
                for metric in counter.metrics:
                    held[metric] += amount[metric]
                counter.holds += 1
            self._holds[rid] = (counters, amounts, expires)
            self._soonest = min(self._soonest, expires)
            return None

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` and add ``amounts`` to ``lines``; return the new used."""
        with self._lock:
            if rid is not None:
                self._drop(rid)
            after: list[Vector] = []
            by_line = self._by_line
            for index, line in enumerate(lines):
                entry = by_line.get(id(line))
                if entry is None or entry[0] is not line:
                    entry = self._entry(line)
                counter = entry[1]
                a = amounts[index]
                buckets = counter.buckets
                b = buckets.get(line.bucket)
                if b is None:
                    b = counter.new_bucket(line, a, now)
                else:
                    b = buckets[line.bucket] = (
                        b[0] + a[0], b[1] + a[1], b[2] + a[2], b[3] + a[3], b[4] + a[4], b[5] + a[5]
                    )  # fmt: skip
                if line.first_bucket != line.bucket:
                    b = counter.used(line.first_bucket, line.bucket)
                after.append(b)
            return after

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``."""
        with self._lock:
            self._drop(rid)

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        """``(used, reserved)`` of each line at ``now``."""
        with self._lock:
            if now >= self._soonest:
                self._expire(now)
            result = []
            for line in lines:
                counter = self._counters.get((line.budget, line.key))
                if counter is None:
                    result.append((ZERO, ZERO))
                else:
                    result.append((counter.used(line.first_bucket, line.bucket), self._held(counter)))
            return result

    def _held(self, counter: _Counter) -> Vector:
        """Every metric of the live holds on ``counter`` (lock held, leases already expired)."""
        total = ZERO
        for counters, amounts, _ in self._holds.values():
            for index, holder in enumerate(counters):
                if holder is counter:
                    total = _plus(total, amounts[index])
        return total

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of ``budget``'s counters that have usage or live holds, sorted."""
        with self._lock:
            if self._holds and min(hold[2] for hold in self._holds.values()) <= time.time():
                self._expire(time.time())
            return sorted(
                key
                for (name, key), counter in self._counters.items()
                if name == budget and (counter.buckets or counter.holds > 0)
            )

    def forget(self, budget: str, key: tuple[str | None, ...]) -> int:
        """Delete ``budget``'s counters whose key matches (``None`` matches anything)."""
        with self._lock:
            doomed = [
                counter
                for counter in self._counters
                if counter[0] == budget
                and len(counter[1]) == len(key)
                and all(want is None or want == have for want, have in zip(key, counter[1], strict=True))
            ]
            for counter in doomed:
                del self._counters[counter]
            if doomed:
                # Holds on a forgotten counter now land on a detached object: harmless.
                self._by_line.clear()
            return len(doomed)

    def claim_alert(self, budget: str, key: tuple[str, ...], window: int, threshold: int) -> bool:
        """``True`` the first time this (budget, key, window, threshold) is claimed."""
        claim = (budget, key, window, threshold)
        with self._lock:
            if claim in self._alerts:
                return False
            self._alerts.add(claim)
            return True

    def define(self, budget: str, spec: str) -> None:
        """Keep a budget's definition."""
        with self._lock:
            self._definitions[budget] = spec

    def definitions(self) -> dict[str, str]:
        """Every budget definition, by name."""
        with self._lock:
            return dict(self._definitions)

    def close(self) -> None:
        """Nothing to release."""
