"""`meterline.testing`: captured events and the in-memory ledger behave as the real thing."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

import meterline
from meterline import Budget, Meter, Usage
from meterline.testing import EventCapture, InMemoryLedger, capture_events
from tests.ledger.conformance import LedgerConformance

MODEL = "gpt-4o-mini"


class TestInMemoryLedger(LedgerConformance):
    """The in-memory ledger passes the conformance suite of the durable ledgers."""

    @pytest.fixture
    def ledger(self) -> Iterator[InMemoryLedger]:
        """A fresh in-memory ledger."""
        ledger = InMemoryLedger()
        yield ledger
        ledger.close()


def test_capture_events_sees_what_the_meter_records() -> None:
    """Every event recorded inside the block is captured, in order; none after it."""
    meter = Meter()
    with capture_events(meter) as captured:
        first = meter.record(Usage(input_tokens=10, output_tokens=2), model=MODEL, provider="openai")
        tool = meter.record_tool("search", llm_call_id=first.id)
        meter.record_cache_miss()
    meter.record(Usage(input_tokens=1), model=MODEL, provider="openai")
    assert isinstance(captured, EventCapture)
    assert [event.id for event in captured] == [first.id, tool.id, captured.events[2].id]
    assert captured.model_calls == [first]
    assert captured.tool_calls == [tool]
    assert len(captured) == 3


def test_captured_totals_equal_the_meters() -> None:
    """The captured events add up to what the meter's own totals say."""
    meter = Meter()
    with capture_events(meter) as captured, meter.scope(user="u1"):
        meter.record(
            Usage(input_tokens=1200, cache_read_tokens=100, output_tokens=300),
            latency_ms=12.5,
            model=MODEL,
            provider="openai",
        )
        meter.record(None, model=MODEL, provider="openai")
        meter.record_tool("search", duration_ms=3.0, usage=Usage(input_tokens=5))
        meter.record_cache_hit(40)
    assert captured.totals() == meter.totals()
    assert captured.totals().cost == Decimal("0.0003525")


def test_capture_events_uses_the_default_meter() -> None:
    """Without a meter, the process-wide default meter is captured."""
    with capture_events() as captured:
        meterline.record(Usage(input_tokens=3), model=MODEL, provider="openai")
    assert [event.usage for event in captured] == [Usage(input_tokens=3)]
    captured.clear()
    assert len(captured) == 0


def test_capture_events_collects_budget_alerts() -> None:
    """With ``alerts=True`` the budget alerts fired inside the block are captured too."""
    meter = Meter(budgets=[Budget(max_tokens=100, alert_at=(0.5,))])
    with capture_events(meter, alerts=True) as captured:
        meter.record(Usage(input_tokens=60), model=MODEL, provider="openai")
    assert [alert.threshold for alert in captured.alerts] == [0.5]


def test_a_meter_writes_into_an_in_memory_ledger() -> None:
    """A meter given an in-memory ledger stores each event once, readable back as it was recorded."""
    ledger = InMemoryLedger()
    meter = Meter(ledger=ledger)
    with meter.scope(user="u1"):
        event = meter.record(Usage(input_tokens=1000, output_tokens=10), model=MODEL, provider="openai")
    assert meter.flush(5)
    assert list(ledger.events()) == [event]
    (row,) = ledger.totals(by=("user",))
    assert (row.key, row.cost) == (("u1",), event.cost)
    meter.close()
