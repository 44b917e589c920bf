"""The ledger is lined up with a provider's paginated reports: only real differences are reported."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meterline import ConfigurationError, ReconcileError, Usage
from meterline._reconcile import reconcile
from meterline.ledger import SQLiteLedger
from tests.ledger.conformance import make_event
from tests.reconcile.server import AdminAPI, Line, serve

DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAYS = [DAY1 + timedelta(days=offset) for offset in range(3)]
MODEL = "gpt-4o-2024-08-06"


@pytest.fixture
def api() -> Iterator[AdminAPI]:
    """The fake admin API, on a free port."""
    yield from serve(AdminAPI())


def _ledger(tmp_path: Path, provider: str, model: str) -> SQLiteLedger:
    """Two calls a day for three days (and another provider's call, which is never compared)."""
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    events = []
    for number, at in enumerate(moment + timedelta(hours=hour) for moment in DAYS for hour in (0, 5)):
        usage = Usage(input_tokens=1000 + number, cache_read_tokens=200, output_tokens=100)
        events.append(make_event(number, at, model=model, provider=provider, cost="0.004", usage=usage))
    events.append(make_event(99, DAY1, model="other", provider="mistral_ai", cost="9"))
    ledger.write(events)
    return ledger


def _provider_lines(model: str) -> list[Line]:
    """What the provider reports when it agrees with `_ledger`."""
    return [
        Line(
            day.date(),
            model,
            input_tokens=(1000 + 2 * index) + (1001 + 2 * index),
            output_tokens=200,
            cached=400,
            requests=2,
            cost=Decimal("0.008"),
        )
        for index, day in enumerate(DAYS)
    ]


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", MODEL), ("anthropic", "claude-sonnet-4-5-20250929")]
)
def test_a_ledger_that_metered_every_call_agrees(
    api: AdminAPI, tmp_path: Path, provider: str, model: str
) -> None:
    """Three days over two pages each, the same tokens, calls and cost: no difference."""
    ledger = _ledger(tmp_path, provider, model)
    api.lines = _provider_lines(model)
    result = reconcile(
        ledger, provider, since=DAY1, until=DAYS[-1] + timedelta(hours=6), key="sk-admin-secret", base=api.url
    )
    assert result.agrees, result.differences
    assert (result.usage_lines, result.ledger_cost, result.provider_cost) == (
        3,
        Decimal("0.024"),
        Decimal("0.024"),
    )
    usage_pages = [query for path, query, _ in api.requests if "usage" in path]
    assert len(usage_pages) == 2  # three days, two buckets a page
    assert usage_pages[1]["page"] == ["2"]
    assert result.start == datetime(2026, 11, 2, tzinfo=UTC)
    assert result.end == datetime(2026, 11, 5, tzinfo=UTC)
    ledger.close()


def test_missed_calls_extra_tokens_and_cost_gaps_are_reported(api: AdminAPI, tmp_path: Path) -> None:
    """A model the ledger never saw, tokens it undercounted, a call too few, a day's cost apart."""
    ledger = _ledger(tmp_path, "openai", MODEL)
    lines = _provider_lines(MODEL)
    lines[1].input_tokens += 5000  # a call the ledger missed, on day 2
    lines[1].requests = 3
    lines[1].cost = Decimal("0.02")
    lines.append(Line(DAYS[2].date(), "gpt-4o-mini-2024-07-18", 800, 20, requests=1, cost=Decimal("0.001")))
    lines[2].cost += Decimal("0.001")
    api.lines = lines
    result = reconcile(ledger, "openai", since=DAY1, until=DAYS[-1], key="k", base=api.url)
    found = {
        (difference.key[0].day, difference.key[1:]): difference.issues for difference in result.differences
    }
    assert found == {
        (3, (MODEL, None)): ("input_tokens", "requests"),
        (4, ("gpt-4o-mini-2024-07-18", None)): ("missing in the ledger",),
        (3, (None,)): ("cost",),  # 0.008 against 0.02
    }
    # Day 4's cost is 0.010 against 0.008: within a cent (a provider rounds its report).
    assert result.provider_cost == Decimal("0.038")
    ledger.close()


def test_scopes_are_compared_per_project(api: AdminAPI, tmp_path: Path) -> None:
    """With a scope dimension each project is its own line on both sides."""
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    usage = Usage(input_tokens=10, output_tokens=1)
    ledger.write(
        [
            make_event(1, DAY1, model=MODEL, cost="0.001", usage=usage, dims={"project": "proj_a"}),
            make_event(2, DAY1, model=MODEL, cost="0.001", usage=usage, dims={"project": "proj_b"}),
        ]
    )
    api.lines = [
        Line(DAY1.date(), MODEL, 10, 1, cost=Decimal("0.001"), scope="proj_a"),
        Line(DAY1.date(), MODEL, 20, 2, requests=2, cost=Decimal("0.002"), scope="proj_b"),
    ]
    result = reconcile(
        ledger, "openai", since=DAY1, until=DAY1, key="k", base=api.url, scope_dimension="project"
    )
    assert [(d.key[1:], d.issues) for d in result.differences] == [
        ((MODEL, "proj_b"), ("input_tokens", "output_tokens", "requests"))
    ]
    (_, query, _) = api.requests[0]
    assert query["group_by"] == ["model", "project_id"]
    ledger.close()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_api_keys_split_usage_and_cost_is_compared_per_day(
    api: AdminAPI, tmp_path: Path, provider: str
) -> None:
    """Per API key: usage lines per key, and the day's whole cost (the reports split none by key)."""
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    usage = Usage(input_tokens=10, output_tokens=1)
    ledger.write(
        [
            make_event(
                1, DAY1, model=MODEL, provider=provider, cost="0.001", usage=usage, dims={"key": "key_a"}
            ),
            make_event(
                2, DAY1, model=MODEL, provider=provider, cost="0.001", usage=usage, dims={"key": "key_b"}
            ),
        ]
    )
    api.lines = [
        Line(DAY1.date(), MODEL, 10, 1, cost=Decimal("0.001"), scope="key_a"),
        Line(DAY1.date(), MODEL, 10, 1, cost=Decimal("0.001"), scope="key_b"),
    ]
    result = reconcile(
        ledger,
        provider,
        since=DAY1,
        until=DAY1,
        key="k",
        base=api.url,
        scope_dimension="key",
        scope="api_key",
    )
    assert result.agrees, result.differences
    usage_query = api.requests[0][1]
    assert "api_key_id" in [*usage_query.get("group_by", []), *usage_query.get("group_by[]", [])]
    cost_query = api.requests[-1][1]
    assert "api_key_id" not in [*cost_query.get("group_by", []), *cost_query.get("group_by[]", [])]
    with pytest.raises(ConfigurationError, match="scope='team'"):
        reconcile(ledger, provider, since=DAY1, until=DAY1, key="k", base=api.url, scope="team")
    ledger.close()


def test_the_admin_key_goes_in_a_header_and_never_in_an_error(api: AdminAPI, tmp_path: Path) -> None:
    """OpenAI gets a bearer token, Anthropic an x-api-key; a refusal names the status, not the key."""
    ledger = _ledger(tmp_path, "openai", MODEL)
    reconcile(ledger, "openai", since=DAY1, until=DAY1, key="sk-admin-secret", base=api.url)
    reconcile(ledger, "anthropic", since=DAY1, until=DAY1, key="sk-ant-admin-secret", base=api.url)
    headers = [{name.lower(): value for name, value in headers.items()} for _, _, headers in api.requests]
    assert headers[0]["authorization"] == "Bearer sk-admin-secret"
    assert headers[-1]["x-api-key"] == "sk-ant-admin-secret"
    assert headers[-1]["anthropic-version"] == "2023-06-01"
    api.fail_with = 401
    with pytest.raises(ReconcileError, match="HTTP 401") as caught:
        reconcile(ledger, "openai", since=DAY1, until=DAY1, key="sk-admin-secret", base=api.url)
    assert "secret" not in str(caught.value)
    ledger.close()


def test_bad_providers_urls_and_pages_are_refused(api: AdminAPI, tmp_path: Path) -> None:
    """An unknown provider, a non-http URL, a server that is down or a page of another shape."""
    ledger = _ledger(tmp_path, "openai", MODEL)
    with pytest.raises(ConfigurationError, match="provider='gemini'"):
        reconcile(ledger, "gemini", since=DAY1, until=DAY1, key="k", base=api.url)
    with pytest.raises(ConfigurationError, match="file:///etc"):
        reconcile(ledger, "openai", since=DAY1, until=DAY1, key="k", base="file:///etc")
    with pytest.raises(ReconcileError, match="could not reach"):
        reconcile(ledger, "openai", since=DAY1, until=DAY1, key="k", base="http://127.0.0.1:9")
    api.lines = [Line(DAY1.date(), MODEL, -5, 1)]
    with pytest.raises(ReconcileError, match="input_tokens=-5"):
        reconcile(ledger, "openai", since=DAY1, until=DAY1, key="k", base=api.url)
    ledger.close()


_HOSTILE = st.one_of(
    st.integers(max_value=-1),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


_READ = {
    "openai": ("input_tokens", "output_tokens", "amount"),
    "anthropic": ("uncached_input_tokens", "output_tokens", "cache_creation", "amount"),
}


def _decimal_text(value: object) -> bool:
    try:
        return isinstance(value, str) and Decimal(value).is_finite()
    except ArithmeticError:
        return False


@given(st.sampled_from([(provider, name) for provider, names in _READ.items() for name in names]), _HOSTILE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_report_values_are_refused_naming_them(
    api: AdminAPI, tmp_path: Path, field: tuple[str, str], value: object
) -> None:
    """A count or amount that is not what the API documents raises ReconcileError naming it."""
    provider, name = field
    assume(not (provider == "anthropic" and name == "amount" and _decimal_text(value)))  # valid cents
    ledger = SQLiteLedger(tmp_path / "hostile.db")
    api.lines = [Line(DAY1.date(), MODEL, 10, 1, cost=Decimal("0.001"))]
    api.hostile = {name: value}
    try:
        with pytest.raises(ReconcileError, match=re.escape(name)):
            reconcile(ledger, provider, since=DAY1, until=DAY1, key="k", base=api.url)
    finally:
        ledger.close()
