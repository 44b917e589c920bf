"""A roll-up row: the sums of one key in one scope entry, and the shares not yet added up.

`Meter.record` appends an event's share (its usage, cost and latency) to its row, a list of
them, without a lock (``list.append`` is atomic); whoever next holds the roll-ups' lock
(`meterline._rollup`) *tallies* the row: adds its pending shares up into its sums.
"""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING, Final

from meterline._totals import COUNTERS, Counts, Sums
from meterline._usage import Usage

if TYPE_CHECKING:
    from meterline._pricing import Plan

__all__ = ["TALLY_AT", "Pending", "Row", "RowKey"]

RowKey = tuple[str, str, str | None, str | None, tuple[tuple[str, str], ...]]
"""(operation, status, provider, model, dimensions): a row of the roll-ups.

In an entry's own rows the provider is as the caller spelled it and the dimensions are the
call's tags only; in the cube, the provider is canonical and the dimensions are all of them."""
Pending = (
    tuple["int | None", "float | None", int, int, int] | tuple["int | None", "float | None", "Usage | None"]
)
"""An event's share of its row, not yet added up: (cost in pico-dollars, latency in ms, usage).

The usage as its input, output and cache-read tokens when it has no other count (`Meter.record`),
else the `Usage` itself (or ``None``: an unmeasured call)."""

TALLY_AT: Final = 256
"""Pending shares a row holds before the recording thread tallies them."""


class Row(list[Pending], Counts):
    """The sums of one row key in one entry, and the shares appended to it but not yet added up.

    A row is the list of its pending shares itself, its sums in its own slots: one object for
    the cyclic collector to walk a live row, where a row and its list were two, and a full
    collection walks every live row while it holds the GIL (`bench/bench_record_under_load.py`
    without a ledger, its longest full collection: 400,000 live rows 664 -> 199-246 ms; 100,000
    sessions of four calls each 236 -> 103-139 ms). It compares, and is true or false (empty), as
    the list it is: rows are found by key and tested with ``is None``, never compared.
    """

    __slots__ = (*COUNTERS, "key", "links", "live", "model_call", "plan", "provider")

    def __init__(self, key: RowKey, model_call: bool, plan: Plan | None) -> None:
        self.zero()
        self.live: bool | None = True
        """``False`` once the row was taken from its entry (exit, reset, forget): record elsewhere.

        ``None`` for a row never kept in an entry (`RollUps.add_row` past ``max_live_keys``, or
        in an entry that has ended): only the call that made it holds it."""
        self.key = key
        """The row's key in the cube: canonical provider, every dimension of the entry merged in."""
        self.provider = key[2]
        """The canonical provider (an entry finds its rows by the name as given)."""
        self.model_call = model_call
        """Whether the row's operation is a model call (unmeasured and unpriced calls count)."""
        self.plan = plan
        """The model's compiled price when it does not depend on time; else ``None``."""

    def __repr__(self) -> str:
        return f"Row({self.key!r}, events={self.events}, pending={len(self)})"

    def tally(self, into: Sums | None = None) -> None:
        """Add up the pending shares, into this row or ``into`` (the roll-ups' lock held).

        Shares are taken from the front of the list, so shares appended meanwhile wait for
        the next tally: each is added exactly once.
        """
        count = len(self)
        if not count:
            return
        batch = self[:count]
        del self[:count]
        target: Counts = self if into is None else into
        input_tokens = output_tokens = cache_read = cost = latency_ns = unmeasured = unpriced = 0
        for share in batch:
            pico = share[0]
            latency_ms = share[1]
            if latency_ms is not None:
                latency_ns += int(latency_ms * 1e6)
            if len(share) == 5:  # the common usage, as its three counts
                input_tokens += share[2]
                output_tokens += share[3]
                cache_read += share[4]
            else:
                usage = share[2]
                if usage is None:
                    unmeasured += 1
                    continue
                input_tokens += usage.input_tokens
                output_tokens += usage.output_tokens
                cache_read += usage.cache_read_tokens
                target.add_rare_usage(usage)
            if pico is None:
                unpriced += 1
            else:
                cost += pico
        target.events += count
        target.input_tokens += input_tokens
        target.output_tokens += output_tokens
        target.cache_read_tokens += cache_read
        target.cost_pico += cost
        target.latency_ns += latency_ns
        if self.model_call:
            target.unmeasured += unmeasured
            target.unpriced += unpriced
