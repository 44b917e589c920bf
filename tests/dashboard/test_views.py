"""Specification of `meterline._dashboard._views`: every figure a page shows equals its events, exactly."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterline import Usage, UsageEvent
from meterline._dashboard import NotFound, Views
from meterline._dashboard._views import windows
from meterline.budgets import BudgetStore, budget_status
from meterline.exceptions import ConfigurationError
from meterline.ledger import open_ledger
from tests.dashboard.conftest import BUDGETS, Filled
from tests.dashboard.data import cost_of, in_range

NOT_MODEL_CALLS = ("execute_tool", "cache")


def test_overview_periods_equal_their_events(filled: Filled) -> None:
    """Each span's cost, calls and not-in-cost counts (and the span before) are its events' sums."""
    views = Views(filled.ledger)
    data = views.overview(filled.now)
    for period, window in zip(data["periods"], windows(filled.now), strict=True):
        for shown, since, until in (
            (period, window.since, window.until),
            (period["previous"], window.before_since, window.before_until),
        ):
            events = in_range(filled.events, since, until)
            assert Decimal(shown["cost"]) == cost_of(events)
            assert shown["events"] == len(events)
            assert shown["model_calls"] == sum(e.operation not in NOT_MODEL_CALLS for e in events)
            assert shown["unmeasured"] == sum(
                e.usage is None and e.operation not in NOT_MODEL_CALLS for e in events
            )
            assert shown["unpriced"] == sum(e.usage is not None and e.cost is None for e in events)
    today = data["periods"][0]
    assert today["since"] == filled.now.strftime("%Y-%m-%dT00:00:00Z")
    assert today["previous"]["since"] == (filled.now - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")


def test_tokens_by_class_are_disjoint_and_add_up(filled: Filled) -> None:
    """Uncached input, cache reads, cache writes, visible output and reasoning split the 30 days' tokens."""
    views = Views(filled.ledger)
    data = views.overview(filled.now)
    month = windows(filled.now)[-1]
    usage = sum(
        (e.usage for e in in_range(filled.events, month.since, month.until) if e.usage is not None), Usage()
    )
    tokens = data["tokens"]
    assert tokens["input_uncached"] + tokens["cache_read"] + tokens["cache_write"] == usage.input_tokens
    assert tokens["output_visible"] + tokens["reasoning"] == usage.output_tokens
    assert tokens["cache_read"] == usage.cache_read_tokens
    assert tokens["reasoning"] == usage.reasoning_tokens


def test_top_lists_are_the_costliest_groups(filled: Filled) -> None:
    """The top users, sessions and agents (a report with a limit) are the costliest over 30 days."""
    views = Views(filled.ledger)
    month = windows(filled.now)[-1]
    for name in ("user", "session", "agent"):
        shown = views.report(by=(name,), since=month.since, limit=3)
        costs: Counter[str] = Counter()
        for e in in_range(filled.events, month.since, None):
            if name in e.dimensions and e.cost is not None:
                costs[e.dimensions[name]] += e.cost  # type: ignore[assignment]
        assert [row[name] for row in shown] == [key for key, _ in costs.most_common(3)]
        assert all(Decimal(row["cost"]) == costs[row[name]] for row in shown)


def test_views_read_through_a_pool_of_connections(sqlite_filled: Filled) -> None:
    """With readers, views run at once on different connections, each giving the same answer."""
    from concurrent.futures import ThreadPoolExecutor

    readers = [open_ledger(sqlite_filled.url) for _ in range(3)]
    views = Views(sqlite_filled.ledger, readers=readers)
    alone = Views(sqlite_filled.ledger).report(by=("session",), limit=5)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: views.report(by=("session",), limit=5), range(16)))
    assert answers == [alone] * 16
    for reader in readers:
        reader.close()


@pytest.mark.parametrize("granularity", ["day", "week", "month"])
def test_series_add_up_per_period_and_keep_the_rest_as_other(filled: Filled, granularity: str) -> None:
    """Each period's series add up to its cost; the top series are the costliest, the rest 'other'."""
    views = Views(filled.ledger)
    since = filled.now - timedelta(days=30)
    data = views.series(by=("user",), since=since, granularity=granularity, top=3)
    events = in_range(filled.events, since.replace(minute=0, second=0, microsecond=0), None)
    per_user: Counter[str] = Counter()
    for e in events:
        if e.cost is not None and "user" in e.dimensions:
            per_user[e.dimensions["user"]] += e.cost  # type: ignore[assignment]
    assert [s["name"] for s in data["series"][:3]] == [user for user, _ in per_user.most_common(3)]
    assert data["series"][-1]["name"] == "other"
    assert sum(Decimal(s["total"]) for s in data["series"]) == cost_of(events)
    for index, period in enumerate(data["periods"]):
        start = datetime.fromisoformat(period)
        step = {"day": timedelta(days=1), "week": timedelta(days=7)}.get(granularity)
        end = start + step if step else (start + timedelta(days=32)).replace(day=1)
        assert sum(Decimal(s["cost"][index]) for s in data["series"]) == cost_of(in_range(events, start, end))
        if granularity == "week":
            assert start.weekday() == 0


@pytest.mark.parametrize(
    ("by", "where"),
    [
        (("user", "model"), None),
        (("session",), {"org": "acme"}),
        (("model", "agent"), {"user": ("bob", "dave")}),
    ],
)
def test_each_series_is_its_group_s_cost_per_day(filled: Filled, by: tuple[str, ...], where: Any) -> None:
    """Whatever the grouping and filters, a series holds its own group's cost each day; 'other' the rest."""
    views = Views(filled.ledger)
    data = views.series(by=by, where=where, granularity="day", top=4)
    allowed = {name: value if isinstance(value, tuple) else (value,) for name, value in (where or {}).items()}

    def value(e: UsageEvent, name: str) -> str | None:
        return (
            getattr(e, name)
            if name in ("model", "operation", "status", "provider")
            else e.dimensions.get(name)
        )

    kept = [e for e in filled.events if all(value(e, n) in v for n, v in allowed.items())]
    groups: Counter[tuple[str | None, ...]] = Counter()
    for e in kept:
        groups[tuple(value(e, name) for name in by)] += e.cost or 0  # type: ignore[assignment]
    assert [tuple(s["key"]) for s in data["series"][:4]] == [key for key, _ in groups.most_common(4)]
    for index, period in enumerate(data["periods"]):
        day = in_range(
            kept, datetime.fromisoformat(period), datetime.fromisoformat(period) + timedelta(days=1)
        )
        for one in data["series"][:4]:
            mine = [e for e in day if tuple(value(e, name) for name in by) == tuple(one["key"])]
            assert Decimal(one["cost"][index]) == cost_of(mine)
        assert sum(Decimal(one["cost"][index]) for one in data["series"]) == cost_of(day)


def test_report_is_the_ledger_report(filled: Filled) -> None:
    """`report` gives `totals`' rows as `meterline report --format json` prints them."""
    views = Views(filled.ledger)
    rows = views.report(by=("user", "model"), where={"org": "acme"}, granularity="day")
    expected = filled.ledger.totals(by=("user", "model"), where={"org": "acme"}, granularity="day")
    assert rows == [row.to_dict(("user", "model")) for row in expected]
    assert {row["user"] for row in rows} <= {"alice", "bob", "carol"}


def test_events_are_the_newest_that_pass_the_filters(filled: Filled) -> None:
    """A filtered event list is the newest matching events, newest first, across days."""
    views = Views(filled.ledger)
    for where, keep in (
        ({"user": "alice"}, lambda e: e.dimensions.get("user") == "alice"),
        (
            {"session": "bob-" + filled.now.strftime("%m%d")},
            lambda e: e.dimensions.get("session") == "bob-" + filled.now.strftime("%m%d"),
        ),
        (
            {"operation": "execute_tool", "tool": "search"},
            lambda e: e.operation == "execute_tool" and e.dimensions.get("tool") == "search",
        ),
        ({"model": None, "operation": "chat"}, lambda e: e.model is None and e.operation == "chat"),
    ):
        shown = views.events(where=where, limit=25)
        expected = sorted((e for e in filled.events if keep(e)), key=lambda e: e.id, reverse=True)[:25]
        assert [e["id"] for e in shown] == [e.id for e in expected]


def test_latest_are_the_ledger_s_newest_events(filled: Filled) -> None:
    """The live list is the newest events of the ledger, newest first."""
    shown = Views(filled.ledger).latest(filled.now, limit=7)
    assert [e["id"] for e in shown] == [e.id for e in sorted(filled.events, key=lambda e: e.id)[-7:][::-1]]
    recent = filled.now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    every = Views(filled.ledger).latest(filled.now, limit=200)  # more than two days hold
    newest = sorted(in_range(filled.events, recent, None), key=lambda e: e.id, reverse=True)
    assert [e["id"] for e in every] == [e.id for e in newest][:200]
    assert len(every) > 7


def test_an_event_comes_with_its_attempts_and_links(filled: Filled) -> None:
    """An event's page has its other attempts (same operation id) and the tool calls linked to it."""
    views = Views(filled.ledger)
    retried = next(e for e in filled.events if e.attempt == 2)
    data = views.event(retried.id)
    assert data["event"] == retried.to_dict()
    assert [e["attempt"] for e in data["attempts"]] == [1]
    tool = next(e for e in filled.events if e.operation == "execute_tool")
    model_call = views.event(tool.links[0])
    assert tool.id in [e["id"] for e in model_call["linked"]]
    assert [e["id"] for e in views.event(tool.id)["linked"]] == [tool.links[0]]


@pytest.mark.parametrize("bad", ["", "zz", "0" * 31, "A" * 32, "'; DROP TABLE x; --" + "0" * 14])
def test_a_bad_event_id_is_refused_and_a_missing_one_is_not_found(filled: Filled, bad: str) -> None:
    """Ids that are not 32 lower-case hex digits raise ConfigurationError; unknown ones NotFound."""
    views = Views(filled.ledger)
    with pytest.raises(ConfigurationError, match="event id"):
        views.event(bad)
    with pytest.raises(NotFound):
        views.event(f"{int(filled.now.timestamp() * 1000):012x}" + "f" * 20)


def test_bad_arguments_raise_configuration_error(filled: Filled) -> None:
    """Limits, series counts, granularities and names out of range are refused by name."""
    views = Views(filled.ledger)
    for call in (
        lambda: views.events(limit=0),
        lambda: views.events(limit=10_000),
        lambda: views.series(by=("user",), top=0),
        lambda: views.series(by=("user",), granularity="year"),
        lambda: views.series(by=("user; drop",)),
        lambda: views.report(by=("user",), granularity="fortnight"),
    ):
        with pytest.raises(ConfigurationError):
            call()


def test_tools_and_caches_equal_their_events(filled: Filled) -> None:
    """Tool calls, failures and durations, cache hits and tokens saved are the events' own."""
    data = Views(filled.ledger).tools()
    tools = [e for e in filled.events if e.operation == "execute_tool"]
    for row in data["tools"]:
        mine = [e for e in tools if e.dimensions["tool"] == row["tool"]]
        assert row["calls"] == len(mine)
        assert row["failures"] == sum(e.status == "error" for e in mine)
        assert row["duration_ms"] == pytest.approx(sum(e.latency_ms or 0 for e in mine))
    cache = [e for e in filled.events if e.operation == "cache"]
    hits = sum(e.status == "hit" for e in cache)
    assert data["cache"]["hits"] == hits
    assert data["cache"]["hit_rate"] == pytest.approx(hits / len(cache))
    assert data["cache"]["tokens_saved"] == sum(e.tokens_saved for e in cache)
    read = {row["model"]: row["cache_read_tokens"] for row in data["prompt_cache"]}
    assert read["gpt-4o"] == sum(
        e.usage.cache_read_tokens for e in filled.events if e.model == "gpt-4o" and e.usage
    )


def test_budgets_show_used_limit_window_and_alerts(views: Views, budget_store: BudgetStore) -> None:
    """Each budget row is the store's status, with its window and the alerts its usage reached."""
    now = datetime.now(tz=UTC).timestamp()
    data = views.budgets(now)
    assert data["configured"] is True
    status = {
        (s.budget, tuple(s.key.items()), s.metric): s for s in budget_status(budget_store, BUDGETS, now)
    }
    assert len(data["budgets"]) == len(status)
    for row in data["budgets"]:
        expected = status[row["budget"], tuple(row["key"].items()), row["metric"]]
        assert (row["used"], row["limit"], row["reserved"]) == (
            str(expected.used),
            str(expected.limit),
            str(expected.reserved),
        )
    alice = next(row for row in data["budgets"] if row["key"] == {"user": "alice"})
    assert alice["window"] == "day"
    assert alice["alerts_fired"] == [0.5, 0.8]
    assert alice["resets_at"].endswith("T00:00:00Z")
    assert Views(views.ledger).budgets() == {"configured": False, "budgets": []}
