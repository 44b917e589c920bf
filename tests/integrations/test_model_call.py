"""A framework's model call records once, in its caller's scopes; calls never ended are dropped."""

from __future__ import annotations

import threading

import pytest

import meterline
from meterline.integrations import _model_call
from meterline.integrations._model_call import InFlight, begin


def test_a_call_records_once_in_the_scope_it_began_in() -> None:
    """Ended on another thread, twice: one event, with the starting scope's dimensions."""
    meter = meterline.Meter()
    with meter.scope(user="u1"):
        call = begin(meter, model="gpt-4o", provider="openai")
    assert call is not None
    usage = meterline.Usage(input_tokens=10, output_tokens=2)
    threads = [threading.Thread(target=call.finish, args=(usage,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert meter.totals().requests == 1
    assert meter.totals(by=("user",))[("u1",)].requests == 1


def test_a_refusal_is_raised_before_anything_is_held() -> None:
    """begin() raises BudgetExceeded over budget; nothing stays reserved."""
    meter = meterline.Meter()
    meter.add_budget(meterline.Budget(max_requests=0))
    with pytest.raises(meterline.BudgetExceeded):
        begin(meter, model="gpt-4o", provider="openai")
    assert all(status.reserved == 0 for status in meter.budget_status())


def test_calls_never_ended_are_dropped_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_IN_FLIGHT, the oldest call is dropped and its reservation released, counted as a failure."""
    monkeypatch.setattr(_model_call, "MAX_IN_FLIGHT", 2)
    meter = meterline.Meter()
    meter.add_budget(meterline.Budget(max_requests=10))
    table = InFlight()
    calls = [begin(meter, model="gpt-4o", provider="openai") for _ in range(3)]
    for key, call in enumerate(calls):
        assert call is not None
        assert table.add(key, call)
    second = calls[1]
    assert second is not None
    assert not table.add(1, second)  # a key is held once
    assert table.pop(0) is None  # the oldest was dropped
    (status,) = meter.budget_status()
    assert status.reserved == 2
    assert meter.stats().machinery_errors == 1
