"""A roll-up row: its pending shares are added up exactly once, into itself or another `Sums`."""

from __future__ import annotations

from meterline import Usage
from meterline._row import Row
from meterline._totals import COUNTERS, Sums

KEY = ("chat", "ok", "openai", "gpt-4o", ())


def test_tally_adds_each_share_once_and_keeps_later_ones_for_the_next() -> None:
    """Shares are added up once; those appended after a tally wait for the next one."""
    row = Row(KEY, model_call=True, plan=None)
    row.append((100, 5.0, 10, 2, 4))  # a common usage, as its three counts
    row.append((None, None, None))  # unmeasured
    row.append((None, 1.5, Usage(input_tokens=1, reasoning_tokens=0, output_tokens=3)))  # unpriced
    row.tally()
    assert (row.events, row.input_tokens, row.output_tokens, row.cache_read_tokens) == (3, 11, 5, 4)
    assert (row.cost_pico, row.unmeasured, row.unpriced, row.latency_ns) == (100, 1, 1, 6_500_000)
    assert row == []
    row.tally()
    assert row.events == 3
    row.append((5, None, Usage(input_tokens=1, output_tokens=9, reasoning_tokens=7)))
    row.tally()
    assert (row.events, row.output_tokens, row.reasoning_tokens, row.cost_pico) == (4, 14, 7, 105)


def test_tally_into_another_sums_leaves_the_row_as_it_was() -> None:
    """A row taken from its entry sends its shares on: into the given sums, not its own."""
    row = Row(KEY, model_call=True, plan=None)
    row.append((70, None, Usage(input_tokens=7)))
    late = Sums()
    row.tally(into=late)
    assert (late.events, late.input_tokens, late.cost_pico) == (1, 7, 70)
    assert (row.events, row.input_tokens, list(row)) == (0, 0, [])


def test_a_tool_rows_unmeasured_and_unpriced_calls_are_not_counted() -> None:
    """Only model calls count as unmeasured or unpriced; a tool's events still count."""
    row = Row(("execute_tool", "success", None, None, ()), model_call=False, plan=None)
    row.append((None, 3.0, None))
    row.tally()
    assert (row.events, row.unmeasured, row.unpriced, row.latency_ns) == (1, 0, 0, 3_000_000)


def test_a_share_as_counts_adds_up_as_the_same_usage_would() -> None:
    """A common usage's three counts add up exactly as the `Usage` they came from."""
    counted, whole = Row(KEY, model_call=True, plan=None), Row(KEY, model_call=True, plan=None)
    for pico, latency, tokens in ((30, 2.5, (120, 40, 64)), (None, None, (1, 0, 0)), (7, 0.25, (0, 9, 0))):
        counted.append((pico, latency, *tokens))
        usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1], cache_read_tokens=tokens[2])
        whole.append((pico, latency, usage))
    counted.tally()
    whole.tally()
    fields = COUNTERS
    assert [getattr(counted, name) for name in fields] == [getattr(whole, name) for name in fields]
    assert (counted.events, counted.input_tokens, counted.unpriced, counted.cost_pico) == (3, 121, 1, 37)
