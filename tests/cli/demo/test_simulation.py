"""Specification of `meterline._cli._demo._simulation`: what the simulated day records.

Providers, priced events, the scenario's features, tool links, attribution, and the budgets
every call is reserved against, up to the runaway refused at the end of the day.
"""

from __future__ import annotations as _annotations

from decimal import Decimal

import pytest

import meterline
from meterline._cli._demo._product import RESERVED_OUTPUT
from meterline._cli._demo._result import DemoResult
from meterline._cli._demo._run import run_demo
from tests.cli.demo import SEEDS


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
