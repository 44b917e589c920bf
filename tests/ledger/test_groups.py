"""A report's groups add rows up and become frozen LedgerRows, equal to rows built by hand, sorted by cost."""

from __future__ import annotations

import dataclasses
import gc
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline import Usage
from meterline.ledger import LedgerRow
from meterline.ledger._groups import (
    EVENTS,
    SUM_LATENCY,
    SUM_PICO,
    SUM_SAVED,
    SUM_USAGE,
    WIDTH,
    Groups,
    Query,
    add,
    collector_paused,
    month_of,
    segments,
    to_rows,
)


def _sums(events: int, pico: int | Decimal, input_tokens: int) -> tuple[Any, ...]:
    sums: list[Any] = [0] * WIDTH
    sums[EVENTS] = events
    sums[SUM_PICO] = pico
    sums[SUM_USAGE[0]] = input_tokens
    sums[SUM_LATENCY] = 2.5
    sums[SUM_SAVED] = 7
    return tuple(sums)


def test_groups_become_frozen_rows_equal_to_rows_built_by_hand() -> None:
    """Each row is a real, frozen LedgerRow with the group's sums; highest cost first, ties by key."""
    groups: Groups = {
        (("u1",), None): _sums(3, 2_500_000_000, 100),
        ((None,), None): _sums(1, 2_500_000_000, 5),
        (("u2",), None): _sums(9, 10**13, 40),
        (("u0",), None): _sums(1, 2_500_000_000, 5),
    }
    rows = to_rows(groups, None)
    assert [type(row) for row in rows] == [LedgerRow] * 4
    assert rows[0] == LedgerRow(
        key=("u2",),
        period=None,
        events=9,
        usage=Usage(input_tokens=40),
        cost=Decimal(10),
        latency_ms=2.5,
        tokens_saved=7,
    )
    # Equal costs: more events first; equal costs and events: None first, then by value.
    assert [row.key for row in rows] == [("u2",), ("u1",), (None,), ("u0",)]
    assert str(rows[1].cost) == "0.0025"
    assert hash(rows[1]) == hash(dataclasses.replace(rows[1]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].events = 1  # type: ignore[misc]
    assert groups == {}  # emptied as the rows are made


def test_add_sums_model_calls_whole_and_tool_calls_without_usage_or_cost() -> None:
    """Rows add into their group column by column; a tool call's usage and cost are left out."""
    groups: Groups = {}
    key = (("u1",), 86_400)
    add(groups, key, ("skipped", *_sums(2, 10, 100)), 1, False)
    add(groups, key, [*_sums(1, 5, 50)], 0, False)  # a list row (PostgreSQL's differences)
    add(groups, key, _sums(4, 99, 1_000), 0, True)
    assert groups[key] == tuple(
        a + b + c for a, b, c in zip(_sums(2, 10, 100), _sums(1, 5, 50), _sums(4, 0, 0), strict=True)
    )
    add(groups, (("u2",), None), _sums(3, 7, 1), 0, True)  # a tool call starts a group
    informational: list[Any] = [0] * WIDTH
    informational[EVENTS], informational[SUM_LATENCY], informational[SUM_SAVED] = 3, 2.5, 7
    assert groups[("u2",), None] == tuple(informational)


def test_rows_sort_by_exact_cost_also_from_decimal_sums() -> None:
    """PostgreSQL's NUMERIC sums sort as exactly as integers: by cost, then events, then key."""
    groups: Groups = {
        (("a",), None): _sums(1, Decimal(10**30 + 1), 1),
        (("b",), None): _sums(1, Decimal(10**30), 1),
        (("c",), None): _sums(2, Decimal(10**30), 1),
    }
    assert [row.key for row in to_rows(groups, None)] == [("a",), ("c",), ("b",)]


@given(
    st.lists(st.tuples(st.integers(-(10**20), 10**20), st.integers(0, 2**63 - 1)), min_size=1, max_size=40)
)
def test_rows_sort_by_cost_then_events_whatever_their_signs_and_sizes(sums: list[tuple[int, int]]) -> None:
    """Rows come highest cost first, then most events, for negative costs and the largest counts too."""
    groups: Groups = {((f"k{at}",), None): _sums(events, pico, 0) for at, (pico, events) in enumerate(sums)}
    rows = to_rows(groups, None)
    ranked = [(row.cost, row.events) for row in rows]
    assert ranked == sorted(ranked, reverse=True)
    assert sorted(ranked) == sorted((Decimal(pico).scaleb(-12), events) for pico, events in sums)


@given(
    st.dictionaries(
        st.tuples(st.sampled_from([None, "a", "b", "c"]), st.sampled_from([0, 86_400, 172_800])),
        st.tuples(st.integers(-2, 2), st.integers(0, 2)),
        min_size=1,
    )
)
def test_rows_of_equal_cost_and_events_come_by_key_none_first_then_period(
    groups_by_key: dict[tuple[str | None, int], tuple[int, int]],
) -> None:
    """Ties of cost and events are ordered by key (None first, then values), then period."""
    groups: Groups = {
        ((key,), day): _sums(events, pico, 0) for (key, day), (pico, events) in groups_by_key.items()
    }
    rows = to_rows(groups, "day")
    order = [(row.cost, row.events, row.key[0], row.period) for row in rows]
    expected = sorted(
        (
            (Decimal(pico).scaleb(-12), events, key, day)
            for (key, day), (pico, events) in groups_by_key.items()
        ),
        key=lambda item: (-item[0], -item[1], item[2] is not None, item[2] or "", item[3]),
    )
    assert [(cost, events, key) for cost, events, key, _ in order] == [item[:3] for item in expected]
    assert [period and int(period.timestamp()) for *_, period in order] == [item[3] for item in expected]


def test_the_collector_is_paused_while_a_report_runs_and_left_as_it_was() -> None:
    """Inside, the collector is off; after, on again (even after an error), or still off if it was off."""
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the host's choice is kept
    finally:
        gc.enable()


_REPORT: Final = """
import gc, json
from meterline.ledger._groups import collector_paused
{setup}
frozen = gc.get_freeze_count()
started = []
gc.callbacks.append(lambda phase, info: phase == "start" and started.append(info["generation"]))
kept = []
with collector_paused():
    kept.extend([] for _ in range(20_000))
kept.append([])  # allocations after the collector resumed: a young collection would start here
gc.callbacks.clear()
oldest = {{id(found) for found in gc.get_objects(generation=2)}}
print(json.dumps({{
    "started": started, "enabled": gc.isenabled(), "frozen": [frozen, gc.get_freeze_count()],
    "old": id(kept[0]) in oldest and id(kept[-2]) in oldest,
}}))
"""
"""A report keeping 20,000 containers, in an interpreter of its own (the collector is one per process,
and a host may have frozen objects: LiteLLM's proxy freezes them all as it starts)."""


def _report_alone(setup: str) -> dict[str, Any]:
    """What `_REPORT` saw of the collector, run after ``setup`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORT.format(setup=setup)], capture_output=True, text=True, check=True
    )
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def test_what_a_report_keeps_goes_to_the_oldest_generation_unwalked() -> None:
    """Past 10,000 young containers, the paused collector resumes without walking them: they are old."""
    seen = _report_alone("")
    assert seen == {"started": [], "enabled": True, "frozen": [0, 0], "old": True}


def test_the_hosts_frozen_objects_stay_frozen() -> None:
    """A host that froze its objects (before forking) keeps them frozen: the report's are walked as usual."""
    seen = _report_alone("gc.freeze()")
    assert 0 in seen["started"]
    assert seen["frozen"][0] > 0
    assert seen["frozen"][1] == seen["frozen"][0]
    assert seen["old"] is False


_DAYS = st.integers(min_value=20_000, max_value=20_200).map(lambda day: day * 86_400)  # 2024-2025


@given(
    first=st.none() | _DAYS,
    length=st.none() | st.integers(min_value=1, max_value=120),
    folded=st.just(0) | _DAYS,
    granularity=st.sampled_from([None, "day", "month"]),
    field=st.booleans(),
)
def test_segments_cover_the_days_once_each_from_the_roll_up_that_holds_them(
    first: int | None, length: int | None, folded: int, granularity: Any, field: bool
) -> None:
    """Months, folded days and keyed days split [first, last) with no gap or overlap, each where kept."""
    last = None if length is None else (first or 20_000 * 86_400) + length * 86_400
    where = {"model": frozenset({"m"})} if field else {}
    query = Query(by=("user",), where=where, since=None, until=None, granularity=granularity)
    parts = segments(query, first, last, folded)
    low, high = 19_000 * 86_400, 21_000 * 86_400  # None: the ledger's first or last day
    days = sorted(
        day
        for _, start, end in parts
        for day in range(low if start is None else start, high if end is None else end, 86_400)
    )
    assert days == list(range(low if first is None else first, high if last is None else last, 86_400))
    for source, start, end in parts:
        if source == "months":  # whole months, all of them folded
            assert granularity != "day"
            assert start is None or month_of(start) == start
            assert end is not None
            assert end <= folded
            assert end == folded or month_of(end) == end
        if source in ("months", "days"):  # no model field, and only days already folded
            assert not field
            assert end is not None
            assert end <= folded
        else:
            assert field or not folded or (start is not None and start >= folded)
