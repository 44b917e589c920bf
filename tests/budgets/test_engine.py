"""The budget engine: reserve-then-settle on nested scopes, policies, alerts and concurrency."""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypedDict
from zoneinfo import ZoneInfo

import pytest

import meterline
from meterline import (
    Budget,
    BudgetAlert,
    BudgetExceeded,
    BudgetStoreError,
    ConfigurationError,
    MalformedUsageError,
    Meter,
    Usage,
)
from meterline._usage import MAX_EVENT_TOKENS
from meterline.budgets import BudgetStore, MemoryBudgetStore
from meterline.budgets._store import Line, Refusal, Vector
from tests.budgets.stores import KINDS, fresh_store


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o", "provider": "openai"}
"""gpt-4o: $2.50 per million input tokens, $10 per million output tokens."""


def status(meter: Meter) -> list[tuple[str, dict[str, str], str, object, object, object]]:
    """(budget, key, metric, used, reserved, remaining) of every budget row."""
    return [
        (row.budget, dict(row.key), row.metric, row.used, row.reserved, row.remaining)
        for row in meter.budget_status()
    ]


def active(reservation: meterline.Reservation) -> bool:
    """Whether ``reservation`` still holds its amounts."""
    return reservation.active


def ts(text: str, zone: str = "UTC") -> float:
    """An ISO local time in ``zone`` as seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_add_budget_is_idempotent_and_names_are_unique(meter: Meter) -> None:
    """Adding the same budget twice keeps one; a different budget under a taken name is refused."""
    meter.add_budget(Budget(max_tokens=10, name="cap"))
    meter.add_budget(Budget(max_tokens=10, name="cap"))
    assert len(meter.budgets) == 1
    with pytest.raises(ConfigurationError, match="'cap'"):
        meter.add_budget(Budget(max_tokens=11, name="cap"))
    with pytest.raises(ConfigurationError, match=r"meterline\.Budget"):
        meter.add_budget({"max_tokens": 1})  # type: ignore[arg-type]
    assert meter.remove_budget("cap") is True
    assert meter.remove_budget("cap") is False
    assert not meter.budgets


def test_usage_leaves_a_rolling_window(meter: Meter) -> None:
    """Usage counts while it is inside the rolling window and stops counting after it."""
    meter.add_budget(Budget(max_tokens=100, window=timedelta(minutes=10)))
    engine = meter._budgets
    assert engine is not None
    dims = meter._root.dimensions
    t0 = 1_800_000_000.0
    engine.charge(dims, Usage(input_tokens=60), None, True, 0, None, int(t0 * 1e9))
    route = engine.route(dims, t0 + 300)
    assert engine.store.reserve("r1", route.lines, [(50, 50, 0, 0, 1, 0)], t0 + 300, 30) is not None
    later = engine.route(dims, t0 + 601)
    assert engine.store.reserve("r2", later.lines, [(50, 50, 0, 0, 1, 0)], t0 + 601, 30) is None


def test_calendar_window_resets(meter: Meter) -> None:
    """A daily budget spent today admits calls again tomorrow."""
    meter.add_budget(Budget(max_tokens=100, window="day"))
    engine = meter._budgets
    assert engine is not None
    dims = meter._root.dimensions
    today = ts("2026-05-01T23:00:00")
    engine.charge(dims, Usage(input_tokens=100), None, True, 0, None, int(today * 1e9))
    line = engine.route(dims, today).lines
    assert engine.store.reserve("r1", line, [(1, 1, 0, 0, 1, 0)], today, 30) is not None
    tomorrow = today + 3600
    assert (
        engine.store.reserve("r2", engine.route(dims, tomorrow).lines, [(1, 1, 0, 0, 1, 0)], tomorrow, 30)
        is None
    )


def test_reserve_holds_the_worst_case_and_record_settles(meter: Meter) -> None:
    """A reservation holds input plus max output at the model's price; record replaces it with actuals."""
    meter.add_budget(Budget(per=("user",), max_cost="1.00", max_tokens=10_000))
    with meter.scope(user="u1"):
        with meter.reserve(input_tokens=1000, max_output_tokens=500, **GPT) as reservation:
            assert reservation.cost == Decimal("0.0075")
            assert active(reservation)
            assert status(meter) == [
                ("user:tokens=10000,cost=1.00", {"user": "u1"}, "tokens", 0, 1500, 8500),
                (
                    "user:tokens=10000,cost=1.00",
                    {"user": "u1"},
                    "cost",
                    0,
                    Decimal("0.0075"),
                    Decimal("0.9925"),
                ),
            ]
            event = meter.record(Usage(input_tokens=900, output_tokens=100), **GPT)
            assert not active(reservation)
        assert event.cost == Decimal("0.00325")
        assert status(meter) == [
            ("user:tokens=10000,cost=1.00", {"user": "u1"}, "tokens", 1000, 0, 9000),
            (
                "user:tokens=10000,cost=1.00",
                {"user": "u1"},
                "cost",
                Decimal("0.00325"),
                0,
                Decimal("0.99675"),
            ),
        ]


def test_refusal_names_everything_and_changes_nothing(meter: Meter) -> None:
    """BudgetExceeded names budget, key, metric, limit, used, reserved, requested and reset time."""
    meter.add_budget(Budget(per=("user",), max_cost="0.01", window="day", name="daily"))
    with meter.scope(user="u1"):
        meter.record(Usage(input_tokens=1000, output_tokens=100), **GPT)  # $0.0035
        held = meter.reserve(input_tokens=1000, max_output_tokens=100, **GPT)  # $0.0035
        before = status(meter)
        with pytest.raises(BudgetExceeded) as caught:
            meter.reserve(input_tokens=1000, max_output_tokens=500, **GPT)  # $0.0075
        error = caught.value
        assert (error.budget, error.key, error.metric) == ("daily", {"user": "u1"}, "cost")
        assert (error.limit, error.used, error.reserved, error.requested) == (
            Decimal("0.01"),
            Decimal("0.0035"),
            Decimal("0.0035"),
            Decimal("0.0075"),
        )
        tomorrow = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        assert error.resets_at == tomorrow
        for part in ("daily", "user='u1'", "0.0075"):
            assert part in str(error)
        assert status(meter) == before
        assert pickle.loads(pickle.dumps(error)).requested == Decimal("0.0075")
        held.release()


def test_nested_scopes_are_all_or_nothing(meter: Meter) -> None:
    """A call is reserved against every applicable budget of every scope, or none."""
    meter.add_budget(Budget(per=("org",), max_tokens=10_000))
    meter.add_budget(Budget(per=("user",), max_tokens=10_000))
    meter.add_budget(Budget(per=("session",), max_tokens=1_000))
    with meter.scope(org="acme"), meter.scope(user="u1"), meter.scope(session="s1"):
        with pytest.raises(BudgetExceeded) as caught:
            meter.reserve(input_tokens=900, max_output_tokens=200, **GPT)
        assert caught.value.budget == "session:tokens=1000"
        assert status(meter) == []  # no key holds anything
        with meter.reserve(input_tokens=700, max_output_tokens=300, **GPT):
            assert [row[4] for row in status(meter)] == [1000, 1000, 1000]
            meter.record(Usage(input_tokens=650, output_tokens=50), **GPT)
    assert [(row[1], row[3], row[4]) for row in status(meter)] == [
        ({"org": "acme"}, 700, 0),
        ({"user": "u1"}, 700, 0),
        ({"session": "s1"}, 700, 0),
    ]


def test_budget_applies_only_where_its_dimensions_are_set(meter: Meter) -> None:
    """A per-user budget does not apply to calls outside any user scope."""
    meter.add_budget(Budget(per=("user",), max_tokens=10))
    with meter.reserve(input_tokens=1000, **GPT) as reservation:
        assert reservation.id == ""
        meter.record(Usage(input_tokens=1000), **GPT)
    assert meter.budget_status() == []


def test_tags_select_the_budget_key(meter: Meter) -> None:
    """Tags passed to reserve and record count as dimensions for budgets."""
    meter.add_budget(Budget(per=("feature",), max_requests=1))
    with meter.reserve(tags={"feature": "search"}, **GPT):
        meter.record(Usage(input_tokens=1), tags={"feature": "search"}, **GPT)
    with pytest.raises(BudgetExceeded, match="feature='search'"):
        meter.reserve(tags={"feature": "search"}, **GPT)
    meter.reserve(tags={"feature": "chat"}, **GPT).release()


def test_leaving_with_an_error_releases_and_keeps_recorded_usage(meter: Meter) -> None:
    """An exception leaving the block releases the reservation; usage already recorded stays."""
    meter.add_budget(Budget(max_tokens=1000))
    res = meter.reserve(input_tokens=100, max_output_tokens=400, **GPT)

    def call_then_fail() -> None:
        with res:
            meter.record(Usage(input_tokens=100, output_tokens=20), **GPT)
            raise RuntimeError("the app failed after the call")

    with pytest.raises(RuntimeError):
        call_then_fail()
    assert not active(res)
    assert status(meter) == [("global:tokens=1000", {}, "tokens", 120, 0, 880)]

    def fail() -> None:
        with meter.reserve(input_tokens=100, max_output_tokens=400, **GPT):
            raise RuntimeError("the call itself failed")

    with pytest.raises(RuntimeError):
        fail()
    assert status(meter) == [("global:tokens=1000", {}, "tokens", 120, 0, 880)]


def test_explicit_reservation_settles_outside_a_block(meter: Meter) -> None:
    """record(reservation=) settles a reservation that was never entered (a stream consumed later)."""
    meter.add_budget(Budget(max_tokens=1000))
    reservation = meter.reserve(input_tokens=100, max_output_tokens=400, **GPT)
    assert status(meter)[0][4] == 500
    meter.record(Usage(input_tokens=100, output_tokens=7), reservation=reservation, **GPT)
    assert status(meter) == [("global:tokens=1000", {}, "tokens", 107, 0, 893)]
    reservation.release()
    assert status(meter)[0][4] == 0


def test_record_without_reservation_still_counts(meter: Meter) -> None:
    """Usage recorded outside any reservation is charged to the budgets it falls under."""
    meter.add_budget(Budget(per=("user",), max_tokens=100))
    with meter.scope(user="u1"):
        meter.record(Usage(input_tokens=90), **GPT)
        with pytest.raises(BudgetExceeded):
            meter.reserve(input_tokens=20, max_output_tokens=0, **GPT)


def test_second_record_in_a_block_charges_without_releasing_twice(meter: Meter) -> None:
    """A retry recorded in the same block is charged too; the reservation was settled once."""
    meter.add_budget(Budget(max_requests=10))
    with meter.reserve(**GPT):
        meter.record(None, status="error", **GPT)
        meter.record(Usage(input_tokens=5), **GPT)
    assert status(meter) == [("global:requests=10", {}, "requests", 2, 0, 8)]


def test_meter_options_are_checked() -> None:
    """Bad budget options of Meter raise ConfigurationError or MalformedUsageError naming them."""
    with pytest.raises(ConfigurationError, match="budget_lease=-1"):
        Meter(budget_lease=-1)
    with pytest.raises(MalformedUsageError, match="default_max_output_tokens"):
        Meter(default_max_output_tokens=-5)


def test_no_budgets_cost_nothing(meter: Meter) -> None:
    """Without budgets, reserve returns an empty reservation and nothing is stored."""
    with meter.reserve(input_tokens=10**9, **GPT) as reservation:
        meter.record(Usage(input_tokens=5), **GPT)
    assert reservation.id == ""
    assert not active(reservation)
    assert meter.budget_store is None
    assert meter.budget_status() == []


def test_leases_expire() -> None:
    """An abandoned reservation stops holding its budget when its lease ends."""
    meter = Meter(budget_lease=0.2)
    meter.add_budget(Budget(max_tokens=100))
    abandoned = meter.reserve(input_tokens=100, max_output_tokens=0, **GPT)
    assert abandoned.expires_at is not None
    with pytest.raises(BudgetExceeded):
        meter.reserve(input_tokens=1, max_output_tokens=0, **GPT)
    time.sleep(0.25)
    meter.reserve(input_tokens=100, max_output_tokens=0, lease=5, **GPT).release()


def test_tool_call_budgets(meter: Meter) -> None:
    """A tool-call budget is reserved with tool_calls= and settled by record_tool, not by record."""
    meter.add_budget(Budget(per=("agent",), max_tool_calls=2))
    meter.add_budget(Budget(per=("agent",), max_requests=5))
    with meter.scope(agent="researcher"):
        for _ in range(2):
            with meter.reserve(tool_calls=1):
                meter.record_tool("web_search", category="retrieval")
        with pytest.raises(BudgetExceeded) as caught:
            meter.reserve(tool_calls=1)
        assert caught.value.metric == "tool_calls"
        with meter.reserve(**GPT) as model_call:
            meter.record_tool("calculator")  # a tool inside the model call's block
            assert active(model_call)
            meter.record(Usage(input_tokens=3), **GPT)
            assert not active(model_call)
    calls = {row[2]: row[3] for row in status(meter)}
    assert calls == {"tool_calls": 3, "requests": 1}


def test_forget_budget_usage_releases_a_pruned_thread(meter: Meter) -> None:
    """forget_budget_usage(thread=) deletes what a per-thread budget held for that thread."""
    meter.add_budget(Budget(per=("thread",), max_tokens=100_000))
    for thread in ("t1", "t2"):
        with meter.scope(thread=thread):
            meter.record(Usage(input_tokens=99_000), **GPT)
    assert meter.forget_budget_usage(thread="t1") == 1
    assert [row[1] for row in status(meter)] == [{"thread": "t2"}]
    with meter.scope(thread="t1"):
        meter.reserve(input_tokens=99_000, max_output_tokens=1000, **GPT).release()


@pytest.mark.parametrize("store", ["memory://", "sqlite"])
def test_forget_leaves_budgets_alone(store: str, tmp_path: Path) -> None:
    """forget(user=) drops live rows only: a user over budget stays refused, on memory and SQLite."""
    url = store if store == "memory://" else f"sqlite:///{tmp_path}/budgets.db"
    meter = Meter(budget_store=url)
    try:
        meter.add_budget(Budget(per=("user",), max_tokens=1000))
        with meter.scope(user="u1"):
            meter.record(Usage(input_tokens=990), **GPT)
        assert meter.forget(user="u1") == 1
        with meter.scope(user="u1"), pytest.raises(BudgetExceeded):
            meter.reserve(input_tokens=100, max_output_tokens=10, **GPT)
        assert [row[1] for row in status(meter)] == [{"user": "u1"}]
    finally:
        meter.close()


def test_unpriced_model_fails_closed_by_default(meter: Meter) -> None:
    """A cost budget refuses a model without a price, saying why and how to fix it."""
    meter.add_budget(Budget(max_cost="1"))
    with pytest.raises(BudgetExceeded, match="no price") as caught:
        meter.reserve(model="my-private-model", provider="openai", input_tokens=10)
    assert "on_unpriced" in (caught.value.reason or "")


def test_unpriced_model_fail_open_and_estimate(meter: Meter) -> None:
    """fail_open counts no cost for an unpriced model; estimate prices it at the given rate."""
    meter.add_budget(Budget(max_cost="1", on_unpriced="fail_open", name="open"))
    meter.add_budget(Budget(max_cost="1", on_unpriced="estimate", estimate_price=("100", "100"), name="est"))
    model: _Model = {"model": "my-private-model", "provider": "openai"}
    with pytest.warns(meterline.UnpricedModelWarning):
        reservation = meter.reserve(input_tokens=1000, max_output_tokens=1000, **model)
    assert {row[0]: row[4] for row in status(meter)} == {"open": 0, "est": Decimal("0.2")}
    with reservation:
        meter.record(Usage(input_tokens=500, output_tokens=500), **model)
    assert {row[0]: row[3] for row in status(meter)} == {"open": 0, "est": Decimal("0.1")}


@pytest.mark.parametrize(
    ("policy", "tokens", "cost"),
    [("fail_closed", 1500, Decimal("0.0075")), ("estimate", 1000, Decimal("0.0025")), ("fail_open", 0, 0)],
)
def test_unmeasured_calls_follow_the_policy(meter: Meter, policy: str, tokens: int, cost: Decimal) -> None:
    """A call recorded without usage charges the worst case, the input estimate or nothing."""
    meter.add_budget(Budget(max_tokens=10**6, max_cost="10", max_requests=10, on_unmeasured=policy))  # type: ignore[arg-type]
    with meter.reserve(input_tokens=1000, max_output_tokens=500, **GPT):
        meter.record(None, **GPT)
    used = {row[2]: row[3] for row in status(meter)}
    assert used["tokens"] == tokens
    assert used["requests"] == 1
    assert used["cost"] == cost


class _DownStore(MemoryBudgetStore):
    """A store whose server is down: every call fails the way a driver error surfaces."""

    url = "down://"

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        raise BudgetStoreError("connection refused")

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        raise BudgetStoreError("connection refused")

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        raise BudgetStoreError("connection refused")


def test_store_down_fails_open_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """With the store down, calls go ahead; the failures are logged and counted."""
    meter = Meter(budget_store=_DownStore())
    meter.add_budget(Budget(max_tokens=1))
    with caplog.at_level(logging.ERROR, logger="meterline"), meter.reserve(input_tokens=100, **GPT):
        meter.record(Usage(input_tokens=100), **GPT)
    assert meter.stats().machinery_errors == 2
    assert "connection refused" in caplog.text


def test_store_down_fails_closed_when_asked() -> None:
    """A budget that fails closed refuses the call when its store is down."""
    meter = Meter(budget_store=_DownStore())
    meter.add_budget(Budget(max_tokens=1, on_store_error="fail_closed", name="strict"))
    with pytest.raises(BudgetStoreError, match="strict"):
        meter.reserve(input_tokens=1, **GPT)


def test_alerts_fire_once_per_window_and_key(meter: Meter) -> None:
    """Soft thresholds fire once each per key, to the budget's callback and alert subscribers."""
    from_budget: list[BudgetAlert] = []
    from_meter: list[object] = []
    meter.add_budget(
        Budget(per=("user",), max_tokens=100, alert_at=(0.5, 0.8, 1.0), on_alert=from_budget.append)
    )
    unsubscribe = meter.subscribe(from_meter.append, alerts=True)
    with meter.scope(user="u1"):
        meter.record(Usage(input_tokens=40), **GPT)
        assert from_budget == []
        meter.record(Usage(input_tokens=45), **GPT)  # 85: crosses 0.5 and 0.8 at once
        meter.record(Usage(input_tokens=1), **GPT)
        meter.record(Usage(input_tokens=20), **GPT)  # 106: crosses 1.0
        meter.record(Usage(input_tokens=20), **GPT)
    with meter.scope(user="u2"):
        meter.record(Usage(input_tokens=60), **GPT)
    assert [(a.key, a.threshold, a.used) for a in from_budget] == [
        ({"user": "u1"}, 0.5, 85),
        ({"user": "u1"}, 0.8, 85),
        ({"user": "u1"}, 1.0, 106),
        ({"user": "u2"}, 0.5, 60),
    ]
    assert [a for a in from_meter if isinstance(a, BudgetAlert)] == from_budget
    first = from_budget[0]
    assert (first.metric, first.limit, first.window_start) == ("tokens", 100, None)
    unsubscribe()
    with meter.scope(user="u3"):
        meter.record(Usage(input_tokens=60), **GPT)
    assert len([a for a in from_meter if isinstance(a, BudgetAlert)]) == 4


def test_a_failing_alert_callback_is_counted_not_raised(meter: Meter) -> None:
    """An alert callback that raises never breaks record()."""

    def explode(alert: BudgetAlert) -> None:
        raise RuntimeError("boom")

    meter.add_budget(Budget(max_tokens=10, alert_at=(0.5,), on_alert=explode))
    meter.record(Usage(input_tokens=9), **GPT)
    assert meter.stats().subscriber_errors == 1


def test_64_threads_never_overshoot() -> None:
    """64 threads reserving and settling against one small cost budget stay within it, none leaked."""
    meter = Meter()
    meter.add_budget(Budget(per=("org",), max_cost="0.05", name="org"))
    meter.add_budget(Budget(per=("user",), max_cost="100", name="user"))
    granted: list[Decimal] = []
    refused = []
    start = threading.Barrier(64)

    def worker(number: int) -> None:
        start.wait()
        with meter.scope(org="acme"), meter.scope(user=f"u{number % 8}"):
            for attempt in range(25):
                try:
                    with meter.reserve(input_tokens=1000, max_output_tokens=100, **GPT):  # $0.0035
                        actual = Usage(input_tokens=1000, output_tokens=(number + attempt) % 100)
                        cost = meter.record(actual, **GPT).cost
                        assert cost is not None
                        granted.append(cost)
                except BudgetExceeded:
                    refused.append(number)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = {(row[0], row[2]): row for row in status(meter) if row[0] == "org"}
    _, _, _, used, reserved, _ = rows[("org", "cost")]
    assert isinstance(used, Decimal)
    assert reserved == 0
    assert used == sum(granted)
    assert sum(granted) <= Decimal("0.05")
    assert len(granted) + len(refused) == 64 * 25
    assert used > Decimal("0.05") - Decimal("0.0035")  # spent up to the last whole call


def test_async_tasks_reserve_in_their_own_scopes(meter: Meter) -> None:
    """Concurrent asyncio tasks settle their own reservations under their own scopes."""
    meter.add_budget(Budget(per=("session",), max_tokens=1000))

    async def call(session: str, tokens: int) -> None:
        with meter.scope(session=session):
            async with meter.reserve(input_tokens=tokens, max_output_tokens=0, **GPT):
                await asyncio.sleep(0.01)
                meter.record(Usage(input_tokens=tokens // 2), **GPT)

    async def main() -> None:
        await asyncio.gather(*(call(f"s{n}", 100 * (n + 1)) for n in range(5)))

    asyncio.run(main())
    assert {row[1]["session"]: (row[3], row[4]) for row in status(meter)} == {
        f"s{n}": (50 * (n + 1), 0) for n in range(5)
    }


def test_a_tools_reported_usage_is_not_charged_as_tokens(meter: Meter) -> None:
    """record_tool(usage=) counts one tool call; the tool's own usage is informational, as in totals."""
    meter.add_budget(Budget(max_tokens=1000, max_tool_calls=10, name="b"))
    meter.record_tool("search", usage=Usage(input_tokens=600, output_tokens=300))
    assert {row[2]: row[3] for row in status(meter)} == {"tokens": 0, "tool_calls": 1}
    meter.reserve(input_tokens=1000, max_output_tokens=0, **GPT).release()


def test_an_unmeasured_call_recorded_under_other_tags_still_charges_its_reservation(meter: Meter) -> None:
    """When the route changed since reserve (other tags here), the held worst case is still charged."""
    meter.add_budget(Budget(max_tokens=10**6, max_requests=100, name="b"))
    with meter.reserve(input_tokens=1000, max_output_tokens=500, tags={"attempt_kind": "first"}, **GPT):
        meter.record(None, tags={"attempt_kind": "retry"}, **GPT)
    assert {row[2]: (row[3], row[4]) for row in status(meter)} == {"tokens": (1500, 0), "requests": (1, 0)}


def test_an_unpriced_unmeasured_call_is_charged_its_estimated_input(meter: Meter) -> None:
    """on_unpriced and on_unmeasured both 'estimate': the input estimate is priced at estimate_price."""
    meter.add_budget(
        Budget(
            max_cost="10",
            on_unpriced="estimate",
            on_unmeasured="estimate",
            estimate_price=("100", "100"),
            name="b",
        )
    )
    model: _Model = {"model": "my-private-model", "provider": "openai"}
    with pytest.warns(meterline.UnpricedModelWarning):
        reservation = meter.reserve(input_tokens=1000, max_output_tokens=1000, **model)
    with reservation:
        meter.record(None, **model)
    assert status(meter) == [("b", {}, "cost", Decimal("0.1"), 0, Decimal("9.9"))]


class _FlakyStore(MemoryBudgetStore):
    """A store whose first settle times out."""

    url = "flaky://"

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        if self.failing:
            self.failing = False
            raise BudgetStoreError("timeout")
        return super().settle(rid, lines, amounts, now)


def test_a_failed_settle_still_frees_the_hold() -> None:
    """When settling fails, the reservation's hold is released rather than left to its lease."""
    meter = Meter(budget_store=_FlakyStore())
    meter.add_budget(Budget(max_tokens=1000, name="b"))
    with meter.reserve(input_tokens=900, max_output_tokens=0, **GPT):
        meter.record(Usage(input_tokens=10), **GPT)
    assert meter.stats().machinery_errors == 1
    assert status(meter) == [
        ("b", {}, "tokens", 0, 0, 1000)
    ]  # nothing used (the settle failed), nothing held
    meter.reserve(input_tokens=1000, max_output_tokens=0, **GPT).release()


def test_routes_never_miss_a_budget_added_concurrently() -> None:
    """A scope's cached budgets never lag behind add_budget, whatever the thread interleaving."""
    meter = Meter()
    meter.add_budget(Budget(max_requests=10**9, name="b0"))
    engine = meter._budgets
    assert engine is not None
    stop = threading.Event()
    stale: list[int] = []

    def reserver() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            with meter.scope(user=f"u{number}"):
                meter.reserve(**GPT).release()
                reservation = meter.reserve(**GPT)  # from the cached route
                reservation.release()
                route = reservation._route
                with engine._lock:  # add_budget changes both under it
                    version, count = engine._version, len(engine.compiled)
                if route.version == version and len(route.entries) != count:
                    stale.append(route.version)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=reserver) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for number in range(1, 150):
            meter.add_budget(Budget(max_requests=10**9, name=f"b{number}"))
            time.sleep(0.001)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(previous)
    assert stale == []


@pytest.fixture(params=KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BudgetStore]:
    """Each budget store in turn, fresh."""
    with fresh_store(request.param, tmp_path) as store:
        yield store


@pytest.mark.services
def test_a_reservation_past_what_a_store_holds_is_refused_never_failed_open(any_store: BudgetStore) -> None:
    """Amounts past 64 bits are a MalformedUsageError on every store, even failing open; nothing is held."""
    meter = Meter(budget_store=any_store)
    meter.add_budget(Budget(max_requests=1000, name="global", on_store_error="fail_open"))
    before = status(meter)
    with pytest.raises(MalformedUsageError, match=r"input_tokens \+ max_output_tokens"):
        meter.reserve(**GPT, input_tokens=2**62, max_output_tokens=2**62)
    with pytest.raises(MalformedUsageError, match="estimated cost"):
        meter.reserve(**GPT, input_tokens=2**62, max_output_tokens=0)  # $11.5 trillion at gpt-4o's price
    assert status(meter) == before
    assert meter.stats().machinery_errors == 0


@pytest.mark.services
def test_hostile_usage_never_makes_a_budget_lose_count(any_store: BudgetStore) -> None:
    """Usage past what stores add up is refused at record(); up to it, every token and request is counted."""
    meter = Meter(budget_store=any_store)
    meter.add_budget(Budget(max_requests=1000, name="global", on_store_error="fail_open"))
    meter.add_budget(Budget(per=("user",), max_tokens=2**62, name="tokens", on_store_error="fail_open"))
    with warnings.catch_warnings(), meter.scope(user="u1"):
        warnings.simplefilter("ignore")  # the model has no price
        with pytest.raises(MalformedUsageError, match=r"input_tokens=1099511627777: expected at most"):
            meter.record(Usage(input_tokens=MAX_EVENT_TOKENS + 1), model="in-house", provider="ollama")
        for _ in range(3):
            meter.record(Usage(input_tokens=MAX_EVENT_TOKENS), model="in-house", provider="ollama")
    assert meter.stats().machinery_errors == 0
    assert sorted((row.metric, row.used) for row in meter.budget_status()) == [
        ("requests", 3),
        ("tokens", 3 * MAX_EVENT_TOKENS),
    ]


class _NarrowStore(MemoryBudgetStore):
    """A third-party store whose token counters are narrower than meterline's: 32 bits."""

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        if any(amount[0] >= 2**31 for amount in amounts):
            raise BudgetStoreError("integer out of range") from OverflowError("int too large for 32 bits")
        return super().reserve(rid, lines, amounts, now, lease)


def test_a_store_that_answers_but_refuses_the_values_refuses_the_call() -> None:
    """A store that is up but cannot take this call's values refuses it: on_store_error is for one down."""
    meter = Meter(budget_store=_NarrowStore())
    meter.add_budget(Budget(max_requests=1000, name="global", on_store_error="fail_open"))
    with pytest.raises(BudgetStoreError, match="refused this call's amounts"):
        meter.reserve(**GPT, input_tokens=2**32)
    with meter.reserve(**GPT, input_tokens=10) as small:
        assert small.active


class _SwitchableStore(MemoryBudgetStore):
    """A store that can be taken down and brought back, counting the calls sent to it."""

    url = "flaky://"

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.calls = 0
        self.probes = 0

    def _check(self) -> None:
        if not self.up:
            raise BudgetStoreError("connection refused")

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        self.calls += 1
        self._check()
        return super().reserve(rid, lines, amounts, now, lease)

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        self.calls += 1
        self._check()
        return super().settle(rid, lines, amounts, now)

    def release(self, rid: str) -> None:
        self.probes += 1
        self._check()
        super().release(rid)


def test_a_failed_store_gets_no_calls_until_a_probe_finds_it_working(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failure, calls fail fast without touching the store; a background probe brings it back."""
    from meterline.budgets import _health

    monkeypatch.setattr(_health, "STORE_REST", 0.05)
    store = _SwitchableStore()
    meter = Meter(budget_store=store)
    meter.add_budget(Budget(max_tokens=10**6, name="strict", on_store_error="fail_closed"))
    store.up = False
    for _ in range(5):
        with pytest.raises(BudgetStoreError):
            meter.reserve(input_tokens=1, **GPT)
    meter.record(Usage(input_tokens=1), **GPT)  # its charge is not sent either
    assert store.calls == 1
    deadline = time.monotonic() + 5
    while store.probes < 2 and time.monotonic() < deadline:  # probes keep failing: 0.05 s, 0.1 s…
        time.sleep(0.01)
    assert store.probes >= 2
    with pytest.raises(BudgetStoreError, match="background probe"):
        meter.reserve(input_tokens=1, **GPT)
    store.up = True
    while time.monotonic() < deadline:
        try:
            with meter.reserve(input_tokens=1, **GPT) as reservation:
                assert reservation.active
            break
        except BudgetStoreError:
            time.sleep(0.01)
    else:
        pytest.fail("the store never came back")
    assert meter.stats().machinery_errors >= 7  # every call that could not be budgeted is counted


def test_reserve_with_tags_kept_from_the_last_call_refuses_a_bad_value(meter: Meter) -> None:
    """reserve() keeps its last checked tags as record() does: equal ones pass, True for a kept 1 never."""
    meter.add_budget(Budget(per=("n",), max_requests=10))
    for _ in range(2):
        meter.reserve(tags={"n": 1}, **GPT).release()
        meter.reserve(tags={"n": "1"}, **GPT).release()
    with pytest.raises(ConfigurationError, match="n=True"):
        meter.reserve(tags={"n": True}, **GPT)
    with pytest.raises(ConfigurationError, match="tag name"):
        meter.reserve(tags={"N": "1"}, **GPT)
    with meter.reserve(tags={"n": "1"}, **GPT):
        meter.record(Usage(input_tokens=1), tags={"n": "1"}, **GPT)
    assert [status.key for status in meter.budget_status()] == [{"n": "1"}]
