"""Budget counters caught up from the ledger, the source of truth.

While a budget store is down, ``on_store_error="fail_open"`` lets calls through uncharged, and
a settle that fails loses its usage to the budget: the counters fall behind the ledger, which
kept every event (spooled, then replayed). `rebuild_from_ledger` charges each counter what the
ledger holds beyond it in the budget's current window: per key and bucket, and per metric,
``max(0, ledger - store)``. It only ever adds, so it is safe to run while meters record: an
event that is in the store and not yet in the ledger (batch mode commits within a second)
makes the difference smaller, never negative, and nothing is charged twice. Run it again a
few seconds later to take in those stragglers.

What the ledger gives, per event, is what the meter would have charged: input plus output
tokens, the priced cost, one request for a model call (operations other than tools and cache
hits), one tool call for ``execute_tool``. Estimates a budget's ``on_unpriced`` or
``on_unmeasured`` policy charged are not in the ledger: where the store holds more than the
ledger, it is left as it is.
"""

from __future__ import annotations as _annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from meterline._events import NOT_MODEL_CALLS, TOOL_OPERATION
from meterline._money import pico_of
from meterline.budgets._budget import Budget, amount_of
from meterline.budgets._compiled import CompiledBudget
from meterline.budgets._store import METRICS, BudgetStore, Line, Vector

if TYPE_CHECKING:  # the ledger is the caller's: budgets never import the ledger package
    from meterline.ledger import LedgerBackend

__all__ = ["CatchUp", "rebuild_from_ledger"]

_HOUR: Final = 3600


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What `rebuild_from_ledger` charged one counter, in one bucket of its window.

    Attributes:
        budget: The budget's name.
        key: The values of its ``per`` dimensions (empty for a global budget).
        bucket_start: When the bucket began (UTC); ``None`` for a budget without a window.
        charged: What was added, by metric name (tokens and counts as ints, cost in USD);
            only the metrics that were behind.
    """

    budget: str
    key: Mapping[str, str]
    bucket_start: datetime | None
    charged: Mapping[str, int | object]


def rebuild_from_ledger(
    budgets: Iterable[Budget], store: BudgetStore, ledger: LedgerBackend, *, now: float | None = None
) -> list[CatchUp]:
    """Charge ``store`` what ``ledger`` holds beyond it, for every budget's current window.

    Args:
        budgets: The budgets whose counters to catch up.
        store: Their budget store.
        ledger: The ledger their meters write to.
        now: The moment whose windows to rebuild (default: the clock), seconds since the epoch.

    Returns:
        One `CatchUp` per counter and bucket that was behind, in budget order.

    Raises:
        BudgetStoreError: when the store fails (what was charged before stays charged).
        LedgerError: when the ledger cannot be read.
    """
    moment = time.time() if now is None else now
    caught: list[CatchUp] = []
    for budget in budgets:
        compiled = CompiledBudget(budget)
        for bucket, since, until, expires_at in _buckets(compiled, moment):
            for key, amounts in _ledger_sums(ledger, compiled, since, until).items():
                line = Line(compiled.name, key, bucket, bucket, compiled.limits, expires_at)
                ((used, _),) = store.read([line], moment)
                behind: Vector = tuple(max(0, amounts[m] - used[m]) for m in range(len(METRICS)))  # type: ignore[assignment]
                if any(behind):
                    store.settle(None, [line], [behind], moment)
                    caught.append(
                        CatchUp(
                            compiled.name,
                            compiled.key_dict(key),
                            None if since is None else datetime.fromtimestamp(since, UTC),
                            {METRICS[m]: amount_of(m, behind[m]) for m in range(len(METRICS)) if behind[m]},
                        )
                    )
    return caught


def _buckets(
    compiled: CompiledBudget, now: float
) -> list[tuple[int, float | None, float | None, float | None]]:
    """``(bucket, since, until, expires_at)`` of each bucket of the budget's window at ``now``.

    ``since`` and ``until`` bound the bucket's events (``None``: unbounded); the current bucket
    runs to the end of the ledger.
    """
    window = compiled.window_at(now)
    if compiled.budget.window is None:
        return [(0, None, None, None)]
    if window.first == window.bucket:  # a calendar window: one bucket
        return [(window.bucket, window.start, None, window.expires_at)]
    step = int(window.end - window.start)
    keep = None if window.expires_at is None else window.expires_at - window.bucket
    return [
        (
            bucket,
            float(bucket),
            None if bucket == window.bucket else float(bucket + step),
            None if keep is None else bucket + keep,
        )
        for bucket in range(window.first, window.bucket + 1, step)
    ]


def _ledger_sums(
    ledger: LedgerBackend, compiled: CompiledBudget, since: float | None, until: float | None
) -> dict[tuple[str, ...], list[int]]:
    """What the ledger's events from ``since`` to ``until`` charge each of the budget's keys.

    From the hourly roll-ups when both bounds fall on an hour (a calendar day, week or month in
    a whole-hour time zone), else by reading the events of the bucket.
    """
    per = compiled.per or ()
    sums: dict[tuple[str, ...], list[int]] = {}

    def add(
        key: tuple[str | None, ...], operation: str, events: int, inputs: int, outputs: int, pico: int
    ) -> None:
        if None in key:
            return  # an event without one of the budget's dimensions: not this budget's
        total = sums.setdefault(key, [0] * len(METRICS))  # type: ignore[arg-type]
        total[0] += inputs + outputs  # tokens, input, output, cost, requests, tool calls
        total[1] += inputs
        total[2] += outputs
        total[3] += pico
        if operation not in NOT_MODEL_CALLS:
            total[4] += events
        elif operation == TOOL_OPERATION:
            total[5] += events

    start = None if since is None else datetime.fromtimestamp(since, UTC)
    end = None if until is None else datetime.fromtimestamp(until, UTC)
    if all(bound is None or bound % _HOUR == 0 for bound in (since, until)):
        for row in ledger.totals(by=(*per, "operation"), since=start, until=end):
            usage = row.usage
            operation = row.key[-1] or ""
            add(
                row.key[:-1],
                operation,
                row.events,
                usage.input_tokens,
                usage.output_tokens,
                pico_of(row.cost),
            )
        return sums
    for event in ledger.events(since=start, until=end):
        measured = event.usage
        add(
            tuple(event.dimensions.get(name) for name in per),
            event.operation,
            1,
            0 if measured is None else measured.input_tokens,
            0 if measured is None else measured.output_tokens,
            event.cost_pico or 0,
        )
    return sums
