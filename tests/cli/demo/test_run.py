"""Specification of `meterline._cli._demo._run`: one seed, one day; every table derived from the meter.

`run_demo` meters the day, catches the warnings it expects and derives every table from the
meter's totals, sorted by cost.
"""

from __future__ import annotations as _annotations

import time
import warnings
from decimal import Decimal

import pytest

import meterline
from meterline._cli._demo._result import DemoResult
from meterline._cli._demo._run import run_demo
from tests.cli.demo import SEEDS


def _sum(rows: tuple[meterline.Totals, ...]) -> tuple[Decimal, meterline.Usage, int, int, int, int]:
    return (
        sum((t.cost for t in rows), Decimal(0)),
        sum((t.usage for t in rows), meterline.Usage()),
        sum(t.events for t in rows),
        sum(t.requests for t in rows),
        sum(t.unmeasured for t in rows),
        sum(t.unpriced for t in rows),
    )


def _whole(t: meterline.Totals) -> tuple[Decimal, meterline.Usage, int, int, int, int]:
    return t.cost, t.usage, t.events, t.requests, t.unmeasured, t.unpriced


def test_same_seed_same_report() -> None:
    """Two runs with the same seed give the same report and the same tables."""
    first, second = run_demo(11), run_demo(11)
    assert first.text == second.text
    assert first.to_dict() == second.to_dict()
    assert [row.labels for row in first.by_session] == [row.labels for row in second.by_session]


def test_different_seeds_differ() -> None:
    """Another seed simulates another day."""
    assert run_demo(1).to_dict()["totals"] != run_demo(2).to_dict()["totals"]


@pytest.mark.parametrize("seed", SEEDS)
def test_totals_equal_the_sum_of_users_and_of_agents(seed: int) -> None:
    """The meter's totals equal, exactly, the sum of the per-user rows and the sum of the per-agent rows."""
    result = run_demo(seed)
    assert _sum(tuple(row.totals for row in result.by_user)) == _whole(result.totals)
    assert _sum(tuple(row.totals for row in result.by_agent)) == _whole(result.totals)
    assert _sum(tuple(row.totals for row in result.by_session)) == _whole(result.totals)


def test_org_scope_totals_match_the_meter(demo: DemoResult) -> None:
    """Each org scope's own totals equal the meter's roll-up for that org, and together the whole."""
    assert demo.meter is not None
    for row in demo.by_org:
        rollup = demo.meter.totals(where={"org": row.labels["org"]})
        assert _whole(row.totals) == _whole(rollup)
        assert row.totals.tools == rollup.tools
        assert (row.totals.cache_hits, row.totals.cache_misses) == (rollup.cache_hits, rollup.cache_misses)
        # Latencies are floats: the same sum in another order may differ in the last bit.
        assert row.totals.latency_ms == pytest.approx(rollup.latency_ms)
    assert _sum(tuple(row.totals for row in demo.by_org)) == _whole(demo.totals)


@pytest.mark.parametrize("seed", SEEDS)
def test_has_unmeasured_and_unpriced_calls(seed: int) -> None:
    """Every run has an unmeasured stream and unpriced self-hosted calls, and reports both."""
    result = run_demo(seed)
    assert result.totals.unmeasured == 1
    assert result.totals.unpriced >= 1
    assert not result.totals.complete
    assert result.unpriced_models == (("ollama", "llama3.2:3b"),)
    assert len(result.warnings) == 1
    assert "llama3.2:3b" in result.warnings[0]
    assert "1 model call (usage never arrived)" in result.text


def test_no_warning_escapes() -> None:
    """The UnpricedModelWarning is caught and reported, never shown as a Python warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_demo(5)
    assert result.warnings


def test_tables_are_sorted_by_cost(demo: DemoResult) -> None:
    """The cost tables are sorted by cost, highest first."""
    for table in (demo.by_org, demo.by_user, demo.by_session, demo.by_agent, demo.by_model):
        costs = [row.totals.cost for row in table]
        assert costs == sorted(costs, reverse=True)


def test_runs_well_under_two_seconds() -> None:
    """A warm run of the demo takes well under two seconds."""
    run_demo(3)
    started = time.perf_counter()
    run_demo(4)
    assert time.perf_counter() - started < 1.0
