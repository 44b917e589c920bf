"""A roll-up row: the sums of one key in one scope entry, and the shares not yet added up.

`Meter.record` appends an event's share (its usage, cost and latency) to its row's
``pending`` list without a lock (``list.append`` is atomic); whoever next holds the roll-ups'
lock (`meterline._rollup`) *tallies* the row: adds its pending shares up into its sums.
"""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING, Final

from meterline._totals import Sums
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


class Row(Sums):
    """The sums of one row key in one entry, and the events appended to it but not yet added up."""

    __slots__ = ("key", "live", "model_call", "pending", "plan", "provider")

    def __init__(self, key: RowKey, model_call: bool, plan: Plan | None) -> None:
        super().__init__()
        self.pending: list[Pending] = []
        """Shares appended by `Meter.record` without a lock; `tally` adds them up."""
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

    def tally(self, into: Sums | None = None) -> None:
        """Add up the pending shares, into this row or ``into`` (the roll-ups' lock held).

        Shares are taken from the front of the list, so shares appended meanwhile wait for
        the next tally: each is added exactly once.
        """
        items = self.pending
        count = len(items)
        if not count:
            return
        batch = items[:count]
        del items[:count]
        target = self if into is None else into
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
