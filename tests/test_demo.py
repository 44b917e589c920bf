"""Specification of `meterline._demo`: the simulated day behind ``meterline demo``."""

from __future__ import annotations as _annotations

import json
import time
import warnings
from decimal import Decimal

import pytest

import meterline
from meterline._demo import RESERVED_OUTPUT, TOP_SESSIONS, DemoResult, run_demo

SEEDS = [1, 7, 42, 2026]


@pytest.fixture(scope="module")
def demo() -> DemoResult:
    """One run of the demo, shared by the tests that only read it."""
    return run_demo(7)


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


@pytest.mark.parametrize("seed", SEEDS)
def test_at_least_four_providers(seed: int) -> None:
    """Model calls come from at least four providers."""
    providers = {row.labels["provider"] for row in run_demo(seed).by_model}
    assert {"openai", "anthropic", "gcp.gemini", "deepseek", "ollama"} <= providers


def test_every_priced_event_costs_a_decimal(demo: DemoResult) -> None:
    """Priced calls carry a Decimal cost and the price version; every other event has cost None."""
    priced = 0
    for event in demo.events:
        if event.unpriced or event.unmeasured or event.operation in ("execute_tool", "cache"):
            assert event.cost is None
        else:
            assert isinstance(event.cost, Decimal)
            assert event.cost > 0
            assert event.price_version == demo.price_version
            priced += 1
    assert priced == demo.totals.requests - demo.totals.unpriced - demo.totals.unmeasured
    assert sum((e.cost for e in demo.events if e.cost is not None), Decimal(0)) == demo.totals.cost


def test_events_cover_the_scenario(demo: DemoResult) -> None:
    """The day has dated models and their aliases, embeddings, reasoning, prompt caching, tools, lookups."""
    events = demo.events
    assert any(e.model == "gpt-4o-2024-08-06" and e.request_model == "gpt-4o" for e in events)
    assert any(
        e.model == "claude-sonnet-4-5-20250929" and e.request_model == "claude-sonnet-4-5" for e in events
    )
    assert any(e.operation == "embeddings" for e in events)

    def measured(provider: str, field: str) -> bool:
        return any(e.provider == provider and e.usage is not None and getattr(e.usage, field) for e in events)

    assert measured("deepseek", "reasoning_tokens")
    assert measured("gcp.gemini", "reasoning_tokens")
    assert measured("openai", "cache_read_tokens")
    assert measured("anthropic", "cache_write_tokens")
    assert demo.totals.cache_hits >= 1
    assert demo.totals.cache_misses >= 1
    assert {"web_search", "retrieval", "code_exec"} <= set(demo.totals.tools)
    assert demo.totals.tool_failures >= 1


def test_tool_runs_link_to_model_calls(demo: DemoResult) -> None:
    """Every tool run links to a model call recorded before it in the same session and agent."""
    seen: dict[str, meterline.UsageEvent] = {}
    for event in demo.events:
        if event.operation == "execute_tool":
            assert len(event.links) == 1
            asked = seen[event.links[0]]
            assert asked.dimensions == {key: event.dimensions[key] for key in asked.dimensions}
        seen[event.id] = event


def test_every_event_is_attributed_to_org_user_session_agent(demo: DemoResult) -> None:
    """Every event carries the four scope dimensions."""
    for event in demo.events:
        assert {"org", "user", "session", "agent"} <= set(event.dimensions)


def test_tables_are_sorted_by_cost(demo: DemoResult) -> None:
    """The cost tables are sorted by cost, highest first."""
    for table in (demo.by_org, demo.by_user, demo.by_session, demo.by_agent, demo.by_model):
        costs = [row.totals.cost for row in table]
        assert costs == sorted(costs, reverse=True)


def test_report_sections(demo: DemoResult) -> None:
    """The report has the header facts, the top sessions, the tables and the notes on what cost leaves out."""
    text = demo.text
    lines = text.splitlines()
    assert lines[0].startswith("meterline demo (seed 7)")
    assert f"price data    {demo.price_version}" in text
    assert f"Top {min(TOP_SESSIONS, len(demo.by_session))} of {len(demo.by_session)} sessions by cost" in text
    assert "never as free" in text
    assert "not a cost of $0" in text
    # The unpriced model's cost is shown as unknown, never as $0.
    ollama_line = next(line for line in lines if line.strip().startswith("ollama ") and "unpriced" in line)
    assert "$" not in ollama_line


def test_to_dict_is_json(demo: DemoResult) -> None:
    """`to_dict()` is JSON-serialisable and keeps money as exact decimal strings."""
    data = json.loads(json.dumps(demo.to_dict()))
    assert Decimal(data["totals"]["cost"]) == demo.totals.cost
    assert [row["user"] for row in data["by_user"]] == [row.labels["user"] for row in demo.by_user]


def test_runs_well_under_two_seconds() -> None:
    """A warm run of the demo takes well under two seconds."""
    run_demo(3)
    started = time.perf_counter()
    run_demo(4)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_budgets_track_the_day_and_stop_the_runaway(seed: int) -> None:
    """Every call was reserved and settled; the orgs' budgets match their usage; the runaway is refused."""
    result = run_demo(seed)
    orgs = {row.key["org"]: row for row in result.budgets if row.budget == "org daily spend"}
    assert set(orgs) == {row.labels["org"] for row in result.by_org}
    for row in result.by_org:
        budget = orgs[row.labels["org"] or ""]
        assert budget.reserved == 0  # every reservation was settled or released
        # The budget counts the org's priced cost, plus the unmeasured stream at its reservation.
        assert budget.used >= row.totals.cost
        assert (budget.used == row.totals.cost) == (row.totals.unmeasured == 0)
    sessions = [row for row in result.budgets if row.budget == "session tokens"]
    # A session's budget counts its tokens, plus the unmeasured stream's reserved output.
    by_session = {
        row.labels["session"] or "": row.totals.usage.total_tokens + RESERVED_OUTPUT * row.totals.unmeasured
        for row in result.by_session
    }
    assert {row.key["session"]: row.used for row in sessions} == by_session
    assert "budget 'session tokens'" in result.refused
    assert "requested 72000" in result.refused
    assert all(alert.budget == "org daily spend" for alert in result.alerts)
    assert len({(alert.key["org"], alert.threshold) for alert in result.alerts}) == len(result.alerts)
    assert "Refused before sending" in result.text
