"""Snapshots: JSON that merges exactly across processes."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

import pytest

from meterline import MalformedUsageError, Meter, Snapshot, Usage


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_snapshots_merge_exactly_across_processes() -> None:
    """Merging the JSON snapshots of several meters gives exactly the totals of one meter that saw all."""
    everything = Meter()
    parts = [Meter() for _ in range(3)]
    for index in range(60):
        part = parts[index % 3]
        usage = Usage(
            input_tokens=index * 7, cache_read_tokens=index, output_tokens=index * 3, reasoning_tokens=index
        )
        for target in (part, everything):
            with target.scope(user=f"u{index % 4}", session=f"s{index % 5}"):
                target.record(
                    usage, model=("gpt-4o", "o3-mini")[index % 2], provider="openai", latency_ms=1.5
                )
                target.record_tool("search", duration_ms=2.0, llm_call_id=f"id{index}")
            if index % 7 == 0:
                target.record(None, **GPT)
    merged = Meter()
    for part in parts:
        merged.merge(Snapshot.from_json(part.snapshot().to_json()))
    assert merged.totals() == everything.totals()
    assert merged.totals(by=("user", "model")) == everything.totals(by=("user", "model"))
    assert merged.totals().cost == sum((p.totals().cost for p in parts), Decimal(0))


def test_snapshot_and_reset_is_atomic(meter: Meter) -> None:
    """snapshot_and_reset() hands over everything once; the meter then starts from zero."""
    with meter.scope(session="s1") as scope:
        meter.record(Usage(input_tokens=5), **GPT)
        snap = meter.snapshot_and_reset()
        meter.record(Usage(input_tokens=7), **GPT)
        assert scope.totals.usage.input_tokens == 12  # the scope keeps its own totals
    restored = Meter()
    restored.merge(snap)
    assert restored.totals().usage.input_tokens == 5
    assert meter.totals().usage.input_tokens == 7
    meter.reset()
    assert meter.totals().events == 0


def test_snapshot_from_bad_json_raises() -> None:
    """A document that is not a meterline snapshot raises MalformedUsageError."""
    for text in ("{}", "[]", "not json", '{"format": "meterline.snapshot/1", "rows": [{"x": 1}]}'):
        with pytest.raises(MalformedUsageError):
            Snapshot.from_json(text)
