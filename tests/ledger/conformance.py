"""The conformance suite every `LedgerBackend` passes.

A backend's test module subclasses `LedgerConformance` and provides a ``ledger`` fixture
that yields a fresh, empty backend (and closes it afterwards)::

    class TestSQLite(LedgerConformance):
        @pytest.fixture
        def ledger(self, tmp_path):
            ledger = SQLiteLedger(tmp_path / "ledger.db")
            yield ledger
            ledger.close()

The class name does not start with ``Test``, so pytest collects it only through subclasses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pytest

import meterline
from meterline import ConfigurationError, Usage, UsageEvent
from meterline._dimensions import Dimensions
from meterline.exceptions import LedgerError, UnpricedModelWarning
from meterline.ledger._backend import SCHEMA_VERSION, LedgerBackend, LedgerRow

FIXTURES: Final = Path(__file__).parent.parent / "fixtures"
T0 = datetime(2025, 1, 30, 22, 0, tzinfo=UTC)
"""A fixed time two days before a month boundary (events built by hand start here)."""
HOSTILE = (
    "'; DROP TABLE meterline_events; --",
    'say "hi" \\ \' ` %s ? :name $1',
    "ünïcødé 💸 \u2028 \x00 null",
    "a'||(SELECT 1)||'",
)


def ns(moment: datetime) -> int:
    """``moment`` in nanoseconds since the epoch."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def make_event(
    number: int,
    at: datetime,
    *,
    model: str | None = "gpt-4o",
    provider: str | None = "openai",
    cost: str | None = "0.001",
    usage: Usage | None = None,
    operation: str = "chat",
    status: str = "ok",
    latency_ms: float | None = 10.0,
    dims: dict[str, str] | None = None,
    tokens_saved: int = 0,
    service_tier: str | None = None,
    batch: bool = False,
    reported_cost: str | None = None,
) -> UsageEvent:
    """An event built by hand at a time the test controls (ids sort like ``number``)."""
    if usage is None and operation == "chat" and cost is not None:
        usage = Usage(input_tokens=100, output_tokens=20)
    return UsageEvent(
        id=f"{number:032x}",
        time_ns=ns(at),
        operation=operation,
        provider=provider,
        model=model,
        request_model=None,
        usage=usage,
        cost=None if cost is None else Decimal(cost),
        price_version=None if cost is None else "test-prices",
        latency_ms=latency_ms,
        status=status,
        dimensions=Dimensions(dims or {}),
        tokens_saved=tokens_saved,
        service_tier=service_tier,
        batch=batch,
        reported_cost=None if reported_cost is None else Decimal(reported_cost),
    )


def metered_events() -> tuple[meterline.Meter, list[UsageEvent]]:
    """A real meter and every kind of event it makes (priced, unpriced, unmeasured, tools, cache, scopes)."""
    meter = meterline.Meter()
    events: list[UsageEvent] = []
    with meter.scope(user="alice", team="core"):
        events.append(
            meter.record(
                Usage(input_tokens=1234, output_tokens=567, cache_read_tokens=200),
                model="gpt-4o",
                provider="openai",
                latency_ms=812.5,
                tags={"feature": "summary"},
            )
        )
        events.append(
            meter.record(Usage(input_tokens=10, output_tokens=5), model="gpt-4o-mini", provider="openai")
        )
        with meter.scope(session="s-1"):
            events.append(
                meter.record(
                    Usage(input_tokens=2000, output_tokens=100, reasoning_tokens=40),
                    model="claude-3-5-sonnet-20241022",
                    provider="anthropic",
                    latency_ms=1500.0,
                    status="timeout",
                )
            )
            events.append(meter.record(None, model="gpt-4o", provider="openai"))  # unmeasured
            tool = meter.record_tool(
                "search",
                category="retrieval",
                duration_ms=42.25,
                usage=Usage(input_tokens=7, output_tokens=3),
                llm_call_id=events[0].id,
            )
            events.append(tool)
            events.append(
                meter.record_tool("fetch", status="failure", llm_call_id=[events[0].id, events[1].id])
            )
    with meter.scope(user="bob"):
        with pytest.warns(UnpricedModelWarning):
            events.append(
                meter.record(
                    Usage(input_tokens=300, output_tokens=30), model="no-such-model-xyz", provider="openai"
                )
            )
        events.append(meter.record_cache_hit(1500, tags={"feature": "summary"}))
        events.append(meter.record_cache_miss())
        events.append(
            meter.record(
                Usage(input_tokens=50, output_tokens=5),
                model="text-embedding-3-small",
                provider="openai",
                operation="embeddings",
                operation_id="op-1",
                attempt=2,
            )
        )
    events.append(
        meter.record(Usage(input_tokens=1, output_tokens=1), model="gpt-4o-mini", provider="openai")
    )
    with meter.scope(user="carol"):  # billed beyond tokens: server tools, a tier, batch, a stated cost
        events.append(meter.record(load_fixture("anthropic/message_server_tool_web_search.json")))
        events.append(meter.record(load_fixture("openai/responses_server_tools.json")))
        events.append(
            meter.record(
                Usage(input_tokens=4000, output_tokens=900),
                model="o3",
                provider="openai",
                service_tier="flex",
            )
        )
        events.append(
            meter.record(
                Usage(input_tokens=4000, output_tokens=900), model="gpt-4o", provider="openai", batch=True
            )
        )
        events.append(meter.record(OPENROUTER_BODY, provider="openrouter"))
    return meter, events


OPENROUTER_BODY: Final = {
    "id": "gen-1764851200-Hq3kR8mVx2LpZcTn9WfY",
    "provider": "OpenAI",
    "model": "openai/gpt-4o-mini",
    "object": "chat.completion",
    "created": 1764851200,
    "choices": [
        {
            "logprobs": None,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "reasoning": None},
        }
    ],
    "system_fingerprint": "fp_51db84afab",
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "cost": 0.00036,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
    },
}
"""An OpenRouter chat completion stating its own cost (``usage.cost``)."""


def load_fixture(name: str) -> dict[str, Any]:
    """The payload of a usage fixture (``tests/fixtures/<name>``)."""
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())["payload"]
    return payload


def by_key(rows: Sequence[LedgerRow]) -> dict[tuple[str | None, ...], LedgerRow]:
    """Rows without a period, by key (each key once)."""
    assert all(row.period is None for row in rows)
    result = {row.key: row for row in rows}
    assert len(result) == len(rows)
    return result


def value_of(event: UsageEvent, name: str) -> str | None:
    """The value ``totals(by=(name,))`` groups ``event`` under."""
    if name in ("operation", "status", "provider", "model"):
        value: str | None = getattr(event, name)
        return value
    return event.dimensions.get(name)


def assert_matches_meter(
    ledger: LedgerBackend,
    meter: meterline.Meter,
    events: Sequence[UsageEvent],
    by: tuple[str, ...],
    where: dict[str, object] | None = None,
) -> None:
    """The ledger's totals equal the meter's for the same events (latency: the events' own sum)."""
    rows = by_key(ledger.totals(by=by, where=where))
    expected = meter.totals(by, where)
    assert set(rows) == set(expected)
    for key, totals in expected.items():
        row = rows[key]
        assert row.events == totals.events
        assert row.usage == totals.usage
        assert row.cost == totals.cost
        assert row.unmeasured == totals.unmeasured
        assert row.unpriced == totals.unpriced
        assert row.tokens_saved == totals.cache_tokens_saved
        latencies = [
            event.latency_ms or 0.0
            for event in events
            if tuple(value_of(event, name) for name in by) == key
            and all(
                value_of(event, name) in (value if isinstance(value, (set, list, tuple)) else (value,))
                for name, value in (where or {}).items()
            )
        ]
        assert row.latency_ms == pytest.approx(sum(latencies))


def product_events(count: int = 4000, seed: int = 5) -> list[UsageEvent]:
    """Events of a product with thousands of users and sessions, over five days across a month's end."""
    import random

    rng = random.Random(seed)
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-x"), (None, None)]
    events = []
    for number in range(count):
        session = rng.randrange(3000)
        user = session % 1500
        dims = {"user": f"u{user}", "session": f"s{session}", "agent": f"a{session % 3}"}
        at = T0 + timedelta(seconds=number * 5 * 86_400 // count)
        if number % 7 == 0:
            dims["tool"] = f"t{rng.randrange(4)}"
            event = make_event(
                number, at, operation="execute_tool", model=None, provider=None, cost=None, dims=dims
            )
        else:
            provider, model = models[rng.randrange(len(models))]
            event = make_event(
                number,
                at,
                model=model,
                provider=provider,
                cost=None if number % 11 == 0 else f"0.{rng.randrange(10**12):012d}",
                usage=None
                if number % 13 == 0
                else Usage(
                    input_tokens=rng.randrange(10**6),
                    output_tokens=number,
                    web_search_requests=number % 3 if number % 23 == 0 else 0,
                    file_search_requests=1 if number % 29 == 0 else 0,
                ),
                service_tier="flex" if number % 31 == 0 else None,
                batch=number % 37 == 0,
                reported_cost=f"0.{rng.randrange(10**9):09d}" if number % 41 == 0 else None,
                status="error" if number % 17 == 0 else "ok",
                latency_ms=None if number % 5 == 0 else float(number % 97),
                dims=dims if number % 19 else {"user": dims["user"]},
            )
        events.append(event)
    return events


def as_stored_before_billing(event: UsageEvent) -> UsageEvent:
    """``event`` as a store of the schema before server-tool calls, tiers and stated costs held it."""
    usage = event.usage
    if usage is not None:
        usage = dataclasses.replace(
            usage,
            web_search_requests=0,
            web_fetch_requests=0,
            file_search_requests=0,
            code_execution_requests=0,
        )
    return dataclasses.replace(event, usage=usage, service_tier=None, batch=False, reported_cost=None)


def expected_rows(
    events: Sequence[UsageEvent],
    by: tuple[str, ...],
    where: dict[str, object] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    granularity: str | None = None,
) -> dict[tuple[object, ...], tuple[object, ...]]:
    """What ``totals`` must give, added up from the events in Python: (key, period) -> figures."""
    counts: dict[tuple[object, ...], list[int]] = {}  # events, unmeasured, unpriced
    usage: dict[tuple[object, ...], Usage] = {}
    cost: dict[tuple[object, ...], Decimal] = {}
    latency: dict[tuple[object, ...], float] = {}
    floor = None if since is None else since.replace(minute=0, second=0, microsecond=0)
    end = None if until is None else until.replace(minute=0, second=0, microsecond=0)
    for event in events:
        moment = datetime.fromtimestamp(event.time_ns // 10**9, tz=UTC)
        if (floor is not None and moment < floor) or (end is not None and moment >= end):
            continue
        allowed = all(
            value_of(event, name) in (value if isinstance(value, (set, list, tuple)) else (value,))
            for name, value in (where or {}).items()
        )
        if not allowed:
            continue
        period = None
        if granularity is not None:
            period = moment.replace(minute=0, second=0, microsecond=0)
            if granularity != "hour":
                period = period.replace(hour=0)
            if granularity == "month":
                period = period.replace(day=1)
        key = (tuple(value_of(event, name) for name in by), period)
        acc = counts.setdefault(key, [0, 0, 0])
        acc[0] += 1
        latency[key] = latency.get(key, 0.0) + (event.latency_ms or 0.0)
        usage.setdefault(key, Usage())
        cost.setdefault(key, Decimal(0))
        if event.operation in ("execute_tool", "cache"):
            continue
        if event.cost is not None:  # an unmeasured call's too (written with a cost, or re-priced)
            cost[key] += event.cost
        if event.usage is None:
            acc[1] += 1
            continue
        usage[key] += event.usage
        if event.cost is None:
            acc[2] += 1
    return {
        key: (*acc, usage[key], cost[key], latency[key])  # as the test compares them
        for key, acc in counts.items()
    }


_MIDNIGHT: Final = datetime(2025, 2, 1, tzinfo=UTC)
PRODUCT_REPORTS: Final[list[dict[str, Any]]] = [
    {"by": ("user",)},
    {"by": ("session",)},
    {"by": ("agent",), "granularity": "day"},
    {"by": ("agent",), "granularity": "month"},
    {"by": ("tool",)},
    {"by": ("tool",), "where": {"tool": [None, "t1"]}},
    {"by": ("model",), "granularity": "hour"},
    {"by": ("user", "model"), "since": _MIDNIGHT - timedelta(days=1), "until": _MIDNIGHT + timedelta(days=1)},
    {"by": ("agent", "model"), "granularity": "month"},
    {"by": ("user", "agent"), "since": _MIDNIGHT},
    {"by": ("model", "user", "agent"), "since": _MIDNIGHT, "granularity": "day"},
    {"by": ("agent",), "since": T0 + timedelta(hours=5, minutes=30), "until": _MIDNIGHT + timedelta(hours=7)},
    {"by": ("agent",), "since": T0 + timedelta(hours=5, minutes=30)},
    {"by": ("user",), "since": T0 + timedelta(days=2, hours=3)},  # folded days in no whole month
    {"by": ("session",), "where": {"user": "u7"}},
    {"by": ("agent",), "where": {"agent": "a1", "model": ["gpt-4o", None]}, "granularity": "day"},
    {"by": ("status", "provider"), "where": {"user": ["u1", "u2", "u3"]}},
    {"by": (), "where": {"session": None}},
    {"by": ("session",), "where": {"session": [None, "s1", "s2"]}, "granularity": "month"},
    # Filters on another dimension, found among the events by the stores themselves: two
    # filters at once, one allowing events without the dimension, values not stored, more
    # values than SQLite looks for in an event's ids as text (three), and hours.
    {"by": ("tool", "agent"), "where": {"user": ["u1", "u2", "u1501"], "session": ["s1", "s1501", "s2"]}},
    {"by": ("user",), "where": {"agent": ["a1", "a2"], "tool": [None, "t1"]}, "since": _MIDNIGHT},
    {"by": ("agent",), "where": {"user": ["nobody", "u3"]}, "granularity": "hour"},
    {"by": ("agent",), "where": {"user": "nobody"}},
    {"by": ("agent", "model"), "where": {"session": [f"s{number}" for number in range(0, 200, 5)]}},
    {"by": ("agent",), "where": {"tool": None}},  # the model calls alone
    {"by": ("user", "tool"), "where": {"agent": [None, "a1"]}, "since": _MIDNIGHT},
    {"by": ("agent",), "where": {"feature": None}},  # a dimension no event has
]
"""Reports of every kind the ledgers plan differently (roll-ups by value, by day and month, events)."""
FOLDED_DAYS_REPORTS: Final[list[dict[str, Any]]] = [
    {"by": ("user",), "since": T0 + timedelta(days=2, hours=3)},
    {"by": ("agent",), "granularity": "day"},
    {"by": ("session",), "where": {"session": ["s1", "s2", None]}, "granularity": "day"},
]
"""Reports by one dimension of `product_events` over folded days outside whole months, or by day."""


MANY_VALUES_REPORTS: Final[list[dict[str, Any]]] = [
    {"by": ("session",), "since": T0 + timedelta(days=2, hours=3)},
    {"by": ("session",), "since": T0 + timedelta(days=1), "granularity": "day"},
    {"by": ("session",), "where": {"session": ["s1", "s2", None]}, "since": T0 + timedelta(days=2)},
    {"by": ("session", "model"), "since": T0 + timedelta(days=3, hours=5)},
    {"by": ("session",), "granularity": "month"},
    {"by": ("session",)},
    {"by": ("user",), "since": T0 + timedelta(days=2, hours=3)},
]
"""Reports by a dimension of far more values than a range has rows (`many_values_events`), and by others."""


def many_values_events(old: int = 6000) -> list[UsageEvent]:
    """`product_events` (1,200) after ``old`` events three weeks before, each of a session of its own."""
    at = T0 - timedelta(days=21)
    sessions = [
        make_event(100_000 + number, at, dims={"user": f"u{number % 1500}", "session": f"old-{number}"})
        for number in range(old)
    ]
    return [*sessions, *product_events(1200)]


def assert_reports(
    ledger: LedgerBackend, events: Sequence[UsageEvent], reports: Sequence[dict[str, Any]] = PRODUCT_REPORTS
) -> None:
    """Each report (`PRODUCT_REPORTS` by default) equals ``events`` added up in Python, to the last digit."""
    for report in reports:
        rows = ledger.totals(**report)
        got = {
            (row.key, row.period): (
                row.events,
                row.unmeasured,
                row.unpriced,
                row.usage,
                row.cost,
                pytest.approx(row.latency_ms),
            )
            for row in rows
        }
        assert len(got) == len(rows), report
        assert got == expected_rows(events, **report), report


def write_by_day(ledger: LedgerBackend, events: Sequence[UsageEvent], batch: int = 100) -> None:
    """Write ``events`` (in time order) in small batches, so that days are folded as they pass."""
    for start in range(0, len(events), batch):
        ledger.write(events[start : start + batch])


def assert_reports_through_a_prune_and_a_repricing(
    ledger: LedgerBackend, events: Sequence[UsageEvent], written: int
) -> None:
    """Write ``events`` past the first ``written``, prune, re-price: every report exact after each step."""
    ledger.write(events[written:])
    assert_reports(ledger, events)
    cut = T0 + timedelta(days=1, hours=7, minutes=30)
    kept = [event for event in events if event.time_ns >= int(cut.timestamp()) * 10**9]
    assert ledger.prune(cut) == len(events) - len(kept)
    assert_reports(ledger, kept)
    new = {event.id: Decimal("0.5") for event in kept[::5] if event.operation == "chat" and event.usage}
    assert ledger.reprice([(event_id, cost, "v9") for event_id, cost in new.items()]) == len(new)
    repriced = [
        dataclasses.replace(event, cost=new[event.id], price_version="v9") if event.id in new else event
        for event in kept
    ]
    assert_reports(ledger, repriced)


class LedgerConformance:
    """Tests every ledger backend passes; subclasses provide the ``ledger`` fixture."""

    schema_version = SCHEMA_VERSION
    """The schema version the backend reports (PostgreSQL numbers its own layouts)."""

    # -- writing and reading back -----------------------------------------------------

    def test_every_report_is_the_sum_of_its_events(self, ledger: LedgerBackend) -> None:
        """Thousands of users and sessions: each report equals its events added up, to the last digit."""
        events = product_events()
        ledger.write(events)
        assert_reports(ledger, events)

    def test_a_filter_on_hostile_values_of_another_dimension_is_exact(self, ledger: LedgerBackend) -> None:
        """Filtered on values holding NUL, quotes, commas or digits, by another dimension: the events' sum."""
        notes = (*HOSTILE, "1", ",1,", "")
        events = [
            make_event(
                number,
                T0 + timedelta(minutes=number),
                dims={"note": notes[number % 7], "user": f"{number % 3}"},
            )
            for number in range(70)
        ]
        events.append(make_event(70, T0, dims={"user": "1"}))
        ledger.write(events)
        reports: list[dict[str, Any]] = [{"by": ("user",), "where": {"note": value}} for value in notes]
        reports += [
            {"by": ("user",), "where": {"note": [HOSTILE[2], None]}},
            {"by": ("note",), "where": {"user": ["1", "2"]}},
            {"by": ("user", "note"), "where": {"note": list(notes[:4]), "user": "1"}},
        ]
        assert_reports(ledger, events, reports)

    def test_reports_by_a_dimension_of_many_past_values_are_the_sums_of_the_events(
        self, ledger: LedgerBackend
    ) -> None:
        """Sessions mostly of the past (a range holding few of them): every report exact, past a prune too."""
        events = many_values_events()
        write_by_day(ledger, events, batch=1000)
        assert_reports(ledger, events, [*PRODUCT_REPORTS, *MANY_VALUES_REPORTS])
        assert_reports_through_a_prune_and_a_repricing(ledger, events, len(events))

    def test_events_of_a_range_come_in_id_order_whatever_its_width(self, ledger: LedgerBackend) -> None:
        """An hour, a day (read through the time index) or two days: the range's events by id, resumable."""
        events = product_events(12_000)  # 2,400 a day: a day's events take pages of 1,000
        ledger.write(events)
        ordered = sorted(events, key=lambda event: event.id)
        start = events[len(events) // 3].time
        for width in (timedelta(hours=1), timedelta(days=1), timedelta(days=2)):
            expected = [event.id for event in ordered if start <= event.time < start + width]
            assert [event.id for event in ledger.events(since=start, until=start + width)] == expected, width
            middle = expected[len(expected) // 2]
            resumed = ledger.events(since=start, until=start + width, after_id=middle)
            assert [event.id for event in resumed] == [i for i in expected if i > middle], width

    def test_a_limited_report_is_the_first_rows_of_the_whole(self, ledger: LedgerBackend) -> None:
        """``limit=k`` gives the first k rows by cost of the same report, ties broken as without it."""
        events = product_events()
        ledger.write(events)
        for report in PRODUCT_REPORTS:
            whole = ledger.totals(**report)
            for limit in (1, 3, len(whole) // 2 or 1, len(whole) + 5):
                assert ledger.totals(**report, limit=limit) == whole[:limit], (report, limit)
        for bad in (0, -1, True, 2.0, "3"):
            with pytest.raises(ConfigurationError, match="limit"):
                ledger.totals(by=("user",), limit=bad)  # type: ignore[arg-type]

    def test_reports_of_late_events_are_the_sums_of_the_events(self, ledger: LedgerBackend) -> None:
        """Batches written newest first (each day's events arriving after later days'): every report exact."""
        events = product_events()
        for end in range(len(events), 0, -500):
            ledger.write(events[max(0, end - 500) : end])
        assert_reports(ledger, events)

    def test_reports_after_a_prune_and_repricing_are_the_sums_of_the_events_kept(
        self, ledger: LedgerBackend
    ) -> None:
        """A prune in the middle of an hour, day and month, then re-pricing: reports equal the events kept."""
        events = product_events()
        ledger.write(events)
        cut = T0 + timedelta(days=1, hours=7, minutes=30, seconds=15)
        kept = [event for event in events if event.time_ns >= int(cut.timestamp()) * 10**9]
        assert ledger.prune(cut) == len(events) - len(kept)
        new = {}
        for number, event in enumerate(kept):
            if event.operation == "execute_tool" or event.usage is None or number % 3:
                continue
            new[event.id] = None if number % 2 else (event.cost or Decimal("0.25")) * 3
        changes = [(event_id, cost, "v9") for event_id, cost in new.items()]
        assert ledger.reprice(changes) == len(new)
        repriced = [
            dataclasses.replace(event, cost=new[event.id], price_version="v9") if event.id in new else event
            for event in kept
        ]
        assert sorted(ledger.events(), key=lambda event: event.id) == sorted(repriced, key=lambda e: e.id)
        assert_reports(ledger, repriced)

    def test_json_lines_and_raw_rows_are_the_events(self, ledger: LedgerBackend, tmp_path: Path) -> None:
        """A ledger's fast paths from rows (JSON lines, Parquet) give exactly what its events give."""
        import json

        json_lines = getattr(ledger, "json_lines", None)
        if json_lines is None:
            pytest.skip("this ledger streams events only (no rows to export from)")
        _, events = metered_events()
        events += product_events(300)
        costs = ("0.0000001", "1234567.000000000001", None, "0")
        events += [
            make_event(1000 + i, T0 + timedelta(microseconds=i), model=value, dims={"note": value}, cost=cost)
            for i, (value, cost) in enumerate(zip(HOSTILE, costs, strict=True))
        ]
        events.append(make_event(2000, T0, latency_ms=None, cost=None, usage=None, dims={}))
        ledger.write(events)
        expected = [
            json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True) + "\n"
            for event in ledger.events()
        ]
        assert len(expected) == len(events)
        assert "".join(json_lines()).splitlines(keepends=True) == expected
        tenth = json.loads(expected[9])["id"]
        assert "".join(json_lines(after_id=tenth)).splitlines(keepends=True) == expected[10:]
        pq = pytest.importorskip("pyarrow.parquet")
        from meterline.ledger import export_ledger_parquet, export_parquet

        fast = export_ledger_parquet(ledger, tmp_path / "fast", rows_per_file=100)
        slow = export_parquet(ledger.events(), tmp_path / "slow", rows_per_file=100)
        assert (fast.events, fast.days) == (slow.events, slow.days)
        tables = [pq.read_table(tmp_path / name).sort_by("id") for name in ("fast", "slow")]
        assert tables[0].equals(tables[1])

    def test_is_a_ledger_backend(self, ledger: LedgerBackend) -> None:
        """The backend satisfies the `LedgerBackend` protocol and names where it is."""
        assert isinstance(ledger, LedgerBackend)
        assert isinstance(ledger.url, str)
        assert ledger.url

    def test_empty_ledger(self, ledger: LedgerBackend) -> None:
        """A fresh ledger has no events, no totals and empty stats."""
        assert list(ledger.events()) == []
        assert ledger.totals() == []
        assert ledger.totals(by=("model",), granularity="day") == []
        stats = ledger.stats()
        assert (stats.events, stats.rollup_rows, stats.first_time, stats.last_time) == (0, 0, None, None)
        assert stats.dimension_values == 0
        assert stats.schema_version == self.schema_version
        assert stats.url == ledger.url

    def test_write_nothing(self, ledger: LedgerBackend) -> None:
        """Writing an empty batch stores nothing and returns 0."""
        assert ledger.write([]) == 0
        assert ledger.stats().events == 0

    def test_round_trip_of_metered_events(self, ledger: LedgerBackend) -> None:
        """Every kind of event a real meter makes reads back equal to the original, in id order."""
        _, events = metered_events()
        assert ledger.write(events) == len(events)
        stored = list(ledger.events())
        assert stored == sorted(events, key=lambda event: event.id)
        for original, back in zip(sorted(events, key=lambda event: event.id), stored, strict=True):
            assert back.to_dict() == original.to_dict()
            assert type(back.cost) is type(original.cost)

    def test_round_trip_keeps_every_field(self, ledger: LedgerBackend) -> None:
        """A hand-built event with every optional field set reads back identical."""
        event = UsageEvent(
            id="0" * 31 + "1",
            time_ns=ns(T0) + 123_456_789,
            operation="chat",
            provider="openai",
            model="gpt-4o-2024-08-06",
            request_model="gpt-4o",
            usage=Usage(
                input_tokens=900,
                cache_read_tokens=100,
                cache_write_tokens=50,
                cache_write_1h_tokens=20,
                output_tokens=300,
                reasoning_tokens=120,
                audio_input_tokens=10,
                audio_output_tokens=5,
            ),
            cost=Decimal("0.000000000001"),
            price_version="v1;overrides=abc",
            latency_ms=0.1 + 0.2,
            status="ok",
            dimensions=Dimensions({"user": "alice", "session": "s"}),
            operation_id="op",
            attempt=3,
            response_id="resp_1",
            links=("a" * 32, "b" * 32),
            tokens_saved=0,
        )
        ledger.write([event])
        (back,) = ledger.events()
        assert back == event
        assert back.time_ns == event.time_ns
        assert back.latency_ms == event.latency_ms

    def test_write_is_idempotent(self, ledger: LedgerBackend) -> None:
        """Writing the same batch twice stores each event once and the roll-ups count it once."""
        meter, events = metered_events()
        assert ledger.write(events) == len(events)
        assert ledger.write(events) == 0
        assert ledger.write(list(reversed(events))) == 0
        assert ledger.stats().events == len(events)
        assert len(list(ledger.events())) == len(events)
        (row,) = ledger.totals()
        assert row.events == len(events)
        assert row.cost == meter.totals().cost
        assert_matches_meter(ledger, meter, events, ("model",))

    def test_overlapping_batches_count_only_new_events(self, ledger: LedgerBackend) -> None:
        """A batch that overlaps what is stored, or repeats an event, adds only the new events."""
        events = [make_event(i, T0 + timedelta(minutes=i)) for i in range(10)]
        assert ledger.write(events[:6]) == 6
        assert ledger.write([*events[4:], events[9], events[4]]) == 4
        (row,) = ledger.totals()
        assert row.events == 10
        assert row.cost == Decimal("0.01")
        assert [event.id for event in ledger.events()] == [event.id for event in events]

    # -- totals -----------------------------------------------------------------------

    @pytest.mark.parametrize(
        "by",
        [
            (),
            ("model",),
            ("provider", "model"),
            ("operation",),
            ("operation", "status"),
            ("user",),
            ("session",),
            ("user", "model"),
            ("tool",),
            ("feature", "team"),
        ],
    )
    def test_totals_equal_the_meters(self, ledger: LedgerBackend, by: tuple[str, ...]) -> None:
        """Totals grouped by event fields and scope dimensions equal `Meter.totals` for the same events."""
        meter, events = metered_events()
        ledger.write(events)
        if by:
            assert_matches_meter(ledger, meter, events, by)
        else:
            (row,) = ledger.totals()
            totals = meter.totals()
            assert (row.key, row.period, row.events, row.usage, row.cost) == (
                (),
                None,
                totals.events,
                totals.usage,
                totals.cost,
            )
            assert (row.unmeasured, row.unpriced, row.tokens_saved) == (1, 1, 1500)

    @pytest.mark.parametrize(
        "where",
        [
            {"user": "alice"},
            {"user": None},
            {"user": ["alice", "bob"]},
            {"model": "gpt-4o"},
            {"model": None},
            {"model": {"gpt-4o", None}},
            {"provider": "anthropic", "status": "timeout"},
            {"operation": ("execute_tool", "cache")},
            {"feature": "summary", "user": "bob"},
            {"user": "nobody"},
            {"model": "nothing"},
        ],
    )
    def test_totals_filtered_equal_the_meters(self, ledger: LedgerBackend, where: dict[str, object]) -> None:
        """``where`` filters on event fields and dimensions as `Meter.totals` does (None: missing)."""
        meter, events = metered_events()
        ledger.write(events)
        assert_matches_meter(ledger, meter, events, ("model",), where)
        assert_matches_meter(ledger, meter, events, ("user", "operation"), where)

    def test_a_provider_filter_finds_what_its_aliases_recorded(self, ledger: LedgerBackend) -> None:
        """A filter on a provider as a caller spells it ("OpenAI", "gemini") finds its canonical name's."""
        ledger.write([make_event(1, T0), make_event(2, T0, provider="gcp.gemini", model="gemini-2.5-flash")])
        assert [row.events for row in ledger.totals(where={"provider": "OpenAI"})] == [1]
        both = ledger.totals(by=("provider",), where={"provider": ["Gemini", "OpenAI"]})
        assert {row.key: row.events for row in both} == {("openai",): 1, ("gcp.gemini",): 1}
        assert sum(row.events for row in ledger.totals(where={"provider": "no such provider!"})) == 0

    def test_costs_are_exact_decimals(self, ledger: LedgerBackend) -> None:
        """Costs add up exactly (no float), tidy, down to one pico-dollar."""
        events = [
            make_event(1, T0, cost="0.0000015"),
            make_event(2, T0, cost="0.000002"),
            make_event(3, T0, cost="0.000000000001"),
            make_event(4, T0, cost="0.1"),
            make_event(5, T0, cost="0.2"),
        ]
        ledger.write(events)
        (row,) = ledger.totals()
        assert row.cost == Decimal("0.300003500001")
        assert str(row.cost) == "0.300003500001"
        ledger.write([make_event(6, T0, model="m2", cost="0.0003525")])
        rows = by_key(ledger.totals(by=("model",)))
        assert str(rows["m2",].cost) == "0.0003525"
        assert isinstance(rows["m2",].cost, Decimal)

    def test_cost_of_a_group_without_a_price_is_zero(self, ledger: LedgerBackend) -> None:
        """A group of unpriced events has cost 0 and counts them as unpriced, never as priced."""
        ledger.write([make_event(1, T0, model="mystery", cost=None, usage=Usage(input_tokens=5))])
        (row,) = ledger.totals(by=("model",))
        assert (row.key, row.cost, row.unpriced, row.unmeasured) == (("mystery",), Decimal(0), 1, 0)
        assert str(row.cost) == "0"
        assert row.usage == Usage(input_tokens=5)

    def test_totals_sorted_by_cost_then_events(self, ledger: LedgerBackend) -> None:
        """Rows come highest cost first, then most events, then by key."""
        ledger.write(
            [
                make_event(1, T0, model="cheap", cost="0.001"),
                make_event(2, T0, model="dear", cost="0.5"),
                make_event(3, T0, model="busy", cost="0.0005"),
                make_event(4, T0, model="busy", cost="0.0005"),
                make_event(5, T0, model="also-cheap", cost="0.001"),
                make_event(6, T0, model="free", cost=None),
            ]
        )
        keys = [row.key for row in ledger.totals(by=("model",))]
        assert keys == [("dear",), ("busy",), ("also-cheap",), ("cheap",), ("free",)]

    def test_since_and_until_round_down_to_the_hour(self, ledger: LedgerBackend) -> None:
        """``since`` is inclusive and ``until`` exclusive, both rounded down to the hour."""
        ledger.write([make_event(i, T0 + timedelta(minutes=20 * i)) for i in range(9)])  # 22:00 .. 00:40
        total = sum(row.events for row in ledger.totals(since=T0 + timedelta(minutes=30)))
        assert total == 9  # since 22:30 counts from 22:00
        total = sum(row.events for row in ledger.totals(since=T0 + timedelta(hours=1)))
        assert total == 6
        total = sum(row.events for row in ledger.totals(until=T0 + timedelta(hours=1, minutes=59)))
        assert total == 3  # until 23:59 stops at 23:00
        total = sum(
            row.events for row in ledger.totals(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
        )
        assert total == 3
        assert ledger.totals(since=T0 + timedelta(hours=3)) == []
        naive = (T0 + timedelta(hours=2)).replace(tzinfo=None)
        assert sum(row.events for row in ledger.totals(since=naive)) == 3
        tokyo = (T0 + timedelta(hours=2)).astimezone(timezone(timedelta(hours=9)))
        assert sum(row.events for row in ledger.totals(since=tokyo)) == 3

    def test_granularity(self, ledger: LedgerBackend) -> None:
        """Hour, day and month periods are UTC starts, and split the sums correctly across a month's end."""
        # 2025-01-30 22:00 .. 2025-02-02 21:00, one event every 3 hours, alternating two models.
        events = [
            make_event(i, T0 + timedelta(hours=3 * i, minutes=7), model=("a" if i % 2 else "b"), cost="0.25")
            for i in range(24)
        ]
        ledger.write(events)
        hours = ledger.totals(granularity="hour")
        assert len(hours) == 24
        assert {row.period for row in hours} == {T0 + timedelta(hours=3 * i) for i in range(24)}
        assert all(row.events == 1 and row.cost == Decimal("0.25") for row in hours)
        days = sorted(ledger.totals(granularity="day"), key=lambda row: row.period or T0)
        expected_days = {
            datetime(2025, 1, 30, tzinfo=UTC): 1,  # 22:00
            datetime(2025, 1, 31, tzinfo=UTC): 8,
            datetime(2025, 2, 1, tzinfo=UTC): 8,
            datetime(2025, 2, 2, tzinfo=UTC): 7,
        }
        assert {row.period: row.events for row in days} == expected_days
        assert all(row.period is not None and row.period.tzinfo is not None for row in days)
        assert {row.period: row.cost for row in days}[datetime(2025, 1, 31, tzinfo=UTC)] == Decimal(2)
        months = ledger.totals(by=("model",), granularity="month")
        assert {(row.key, row.period): row.events for row in months} == {
            (("b",), datetime(2025, 1, 1, tzinfo=UTC)): 5,
            (("a",), datetime(2025, 1, 1, tzinfo=UTC)): 4,
            (("b",), datetime(2025, 2, 1, tzinfo=UTC)): 7,
            (("a",), datetime(2025, 2, 1, tzinfo=UTC)): 8,
        }
        assert {(row.key, row.period): row.cost for row in months}[
            ("a",), datetime(2025, 2, 1, tzinfo=UTC)
        ] == 2
        by_day_model = ledger.totals(
            by=("model",), granularity="day", since=datetime(2025, 2, 1, 1, tzinfo=UTC)
        )
        assert sum(row.events for row in by_day_model) == 15  # from the 01:07 event of Feb 1st
        assert ledger.totals() == [
            LedgerRow(
                key=(),
                period=None,
                events=24,
                usage=Usage(input_tokens=2400, output_tokens=480),
                cost=Decimal(6),
                latency_ms=240.0,
            )
        ]

    def test_unknown_provider_and_model_group_as_none(self, ledger: LedgerBackend) -> None:
        """Events without a provider or model are grouped and filtered under ``None``."""
        ledger.write(
            [
                make_event(1, T0, model=None, provider=None, cost=None, operation="chat"),
                make_event(2, T0, model="m", provider=None),
                make_event(3, T0, operation="cache", status="hit", model=None, provider=None, cost=None),
            ]
        )
        rows = by_key(ledger.totals(by=("provider", "model")))
        assert set(rows) == {(None, None), (None, "m")}
        assert rows[None, None].events == 2
        assert rows[None, None].unmeasured == 1
        assert sum(row.events for row in ledger.totals(where={"provider": None})) == 3
        assert sum(row.events for row in ledger.totals(where={"model": None})) == 2

    def test_dimension_names_must_be_identifiers(self, ledger: LedgerBackend) -> None:
        """A name that is not a lower-case identifier is refused before any SQL runs."""
        ledger.write([make_event(1, T0)])
        bad_names: list[object] = ["User", "a-b", "x y", "1st", "", "a" * 64, "user;drop", "model'", 3, None]
        for name in bad_names:
            with pytest.raises(ConfigurationError):
                ledger.totals(by=(name,))  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError):
                ledger.totals(where={name: "x"})  # type: ignore[dict-item]
        with pytest.raises(ConfigurationError):
            ledger.totals(by="model")
        with pytest.raises(ConfigurationError):
            ledger.totals(granularity="week")  # type: ignore[arg-type]
        assert ledger.totals(by=("a" * 63,))[0].key == (None,)

    def test_hostile_values_are_stored_verbatim(self, ledger: LedgerBackend) -> None:
        """Quotes, SQL and odd characters in dimension values and names of models come back verbatim."""
        hostile = (*HOSTILE, "\\u0000 not a NUL", "\uffff")
        events = [
            make_event(i, T0, model=value, dims={"note": value, "user": f"u{i % 2}"})
            for i, value in enumerate(hostile)
        ]
        ledger.write(events)
        assert list(ledger.events()) == events
        rows = by_key(ledger.totals(by=("note", "model")))
        assert set(rows) == {(value, value) for value in hostile}
        # Two dimensions: from the events, each value read from their stored dimensions.
        rows = by_key(ledger.totals(by=("note", "user")))
        assert set(rows) == {(value, f"u{i % 2}") for i, value in enumerate(hostile)}
        for i, value in enumerate(hostile):
            (row,) = ledger.totals(by=("note",), where={"note": value})
            assert row.key == (value,)
            (row,) = ledger.totals(by=("model",), where={"model": value})
            assert row.key == (value,)
            (row,) = ledger.totals(by=("user",), where={"note": value})
            assert (row.key, row.events) == ((f"u{i % 2}",), 1)
        assert ledger.stats().events == len(hostile)

    # -- streaming ----------------------------------------------------------------------

    def test_events_resume_after_a_cursor(self, ledger: LedgerBackend) -> None:
        """``after_id`` resumes after the last id handled, across pages, and times bound the stream."""
        events = [make_event(i, T0 + timedelta(seconds=i)) for i in range(2500)]
        for start in range(0, 2500, 700):
            ledger.write(events[start : start + 700])
        ids = [event.id for event in events]
        assert [event.id for event in ledger.events()] == ids
        assert [event.id for event in ledger.events(after_id=ids[1499])] == ids[1500:]
        assert list(ledger.events(after_id=ids[-1])) == []
        assert [event.id for event in ledger.events(after_id="")] == ids
        stream = ledger.events()
        first = [next(stream).id for _ in range(1200)]
        assert first == ids[:1200]
        assert [event.id for event in ledger.events(after_id=first[-1])] == ids[1200:]
        window = ledger.events(since=T0 + timedelta(seconds=100), until=T0 + timedelta(seconds=1100))
        assert [event.id for event in window] == ids[100:1100]
        window = ledger.events(since=T0 + timedelta(seconds=100), after_id=ids[2000])
        assert [event.id for event in window] == ids[2001:]

    # -- maintenance --------------------------------------------------------------------

    def test_prune(self, ledger: LedgerBackend) -> None:
        """Pruning deletes the older events and their roll-ups; the rest is untouched."""
        events = [make_event(i, T0 + timedelta(hours=i, minutes=30)) for i in range(10)]
        ledger.write(events)
        cut = T0 + timedelta(hours=4)
        assert ledger.prune(cut) == 4
        assert list(ledger.events()) == events[4:]
        (row,) = ledger.totals()
        assert row.events == 6
        assert row.cost == Decimal("0.006")
        stats = ledger.stats()
        assert stats.events == 6
        assert stats.first_time == events[4].time
        assert ledger.prune(cut) == 0
        assert ledger.prune(T0 - timedelta(days=1)) == 0
        assert ledger.prune(T0 + timedelta(days=1)) == 6
        assert ledger.totals() == []

    def test_a_prune_deletes_the_dimension_values_no_kept_event_has(self, ledger: LedgerBackend) -> None:
        """After a prune the ledger keeps the values of its kept events only; a pruned value can come back."""
        dims = [
            (1, {"user": "u1", "session": "s-gone"}),
            (2, {"user": "u1", "session": "s-both"}),
            (3, {"org": "o-gone"}),
            (5, {"user": "u2", "session": "s-both"}),
            (40 * 24, {"user": "u2", "session": "s-late"}),  # another month: days folded before it
        ]
        events = [make_event(i, T0 + timedelta(hours=hours), dims=d) for i, (hours, d) in enumerate(dims)]
        ledger.write(events)
        assert ledger.stats().dimension_values == 6
        assert ledger.prune(T0 + timedelta(hours=4)) == 3  # in the middle of a day
        assert ledger.stats().dimension_values == 3  # u2, s-both, s-late
        sessions = {row.key: row.events for row in ledger.totals(by=("session",))}
        assert sessions == {("s-both",): 1, ("s-late",): 1}
        assert {row.key: row.events for row in ledger.totals(by=("user",))} == {("u2",): 2}
        again = make_event(9, T0 + timedelta(days=41), dims={"user": "u1", "session": "s-gone"})
        ledger.write([again])
        assert ledger.stats().dimension_values == 5
        assert {row.key: row.events for row in ledger.totals(by=("session",))} == {
            ("s-both",): 1,
            ("s-late",): 1,
            ("s-gone",): 1,
        }
        assert list(ledger.events(since=T0 + timedelta(days=41))) == [again]
        ledger.prune(T0 + timedelta(days=60))
        assert ledger.stats().dimension_values == 0

    def test_reprice_keeps_totals_in_step(self, ledger: LedgerBackend) -> None:
        """Re-pricing changes events' costs and corrects the roll-ups, unpriced counts included."""
        events = [
            make_event(1, T0, model="a", cost="0.001"),
            make_event(2, T0, model="a", cost="0.002"),
            make_event(3, T0 + timedelta(hours=5), model="b", cost=None, usage=Usage(input_tokens=9)),
            make_event(4, T0, model="c", cost=None, operation="chat", usage=None),  # unmeasured
        ]
        ledger.write(events)
        changed = ledger.reprice(
            [
                (events[0].id, Decimal("0.0015"), "v2"),
                (events[2].id, Decimal("0.000007"), "v2"),
                ("f" * 32, Decimal(1), "v2"),  # not stored
                (events[1].id, Decimal("0.002"), "test-prices"),  # unchanged
            ]
        )
        assert changed == 2
        stored = {event.id: event for event in ledger.events()}
        assert (stored[events[0].id].cost, stored[events[0].id].price_version) == (Decimal("0.0015"), "v2")
        assert (stored[events[2].id].cost, stored[events[2].id].price_version) == (Decimal("0.000007"), "v2")
        assert stored[events[1].id] == events[1]
        rows = by_key(ledger.totals(by=("model",)))
        assert (rows["a",].cost, rows["a",].unpriced) == (Decimal("0.0035"), 0)
        assert (rows["b",].cost, rows["b",].unpriced) == (Decimal("0.000007"), 0)
        assert (rows["c",].cost, rows["c",].unmeasured) == (Decimal(0), 1)
        assert ledger.reprice([(events[2].id, None, None)]) == 1
        rows = by_key(ledger.totals(by=("model",)))
        assert (rows["b",].cost, rows["b",].unpriced) == (Decimal(0), 1)
        assert ledger.reprice([]) == 0
        assert ledger.stats().events == 4

    def test_an_unmeasured_call_with_a_cost_adds_it_to_every_report(self, ledger: LedgerBackend) -> None:
        """A call without usage counts as unmeasured, and a cost it has (written, or re-priced) is added."""
        events = product_events(600)  # five days across a month's end: daily and monthly roll-ups
        calls = [at for at, event in enumerate(events) if event.operation == "chat"]
        for at in calls[::7]:  # written without usage but with their cost
            events[at] = UsageEvent.from_dict({**events[at].to_dict(), "usage": None})
        for at in calls[3::11]:  # written without usage or cost, given a cost below
            events[at] = UsageEvent.from_dict({**events[at].to_dict(), "usage": None, "cost": None})
        assert ledger.write(events) == len(events)
        assert_reports(ledger, events)
        assert any(event.usage is None and event.cost is not None for event in events)
        assert ledger.reprice([(events[at].id, Decimal("0.25"), "v2") for at in calls[3::11]]) == len(
            calls[3::11]
        )
        stored = list(ledger.events())
        assert sum(1 for event in stored if event.usage is None and event.cost == Decimal("0.25")) >= len(
            calls[3::11]
        )
        assert_reports(ledger, stored)

    def test_reprice_matches_a_fresh_write(self, ledger: LedgerBackend) -> None:
        """After re-pricing, totals equal those of a ledger written with the new costs from the start."""
        meter, events = metered_events()
        ledger.write(events)
        new = {
            event.id: (event.cost or Decimal("0.5")) * 2
            for event in events
            if event.usage is not None and event.operation not in ("execute_tool", "cache")
        }
        assert ledger.reprice([(event_id, cost, "v9") for event_id, cost in new.items()]) == len(new)
        for row in ledger.totals(by=("model", "operation")):
            group = [
                event
                for event in events
                if (event.model, event.operation) == row.key
                and event.operation not in ("execute_tool", "cache")
            ]
            assert row.cost == sum((new.get(event.id, Decimal(0)) for event in group), Decimal(0))
            assert row.unpriced == 0
        assert meter.totals().unpriced == 1  # the meter itself is untouched

    def test_stats(self, ledger: LedgerBackend) -> None:
        """Stats count events and roll-up rows and give the oldest and newest event times."""
        events = [make_event(i, T0 + timedelta(hours=i // 2), model=f"m{i % 3}") for i in range(8)]
        ledger.write(events)
        stats = ledger.stats()
        assert stats.events == 8
        assert stats.first_time == T0
        assert stats.last_time == T0 + timedelta(hours=3)
        assert stats.rollup_rows == 8  # (hour, model) pairs: 4 hours x 2 models each
        assert stats.schema_version == self.schema_version
        assert stats.url == ledger.url

    def test_close_is_idempotent(self, ledger: LedgerBackend) -> None:
        """Closing twice is fine; a closed ledger refuses to work with a `LedgerError`."""
        ledger.write([make_event(1, T0)])
        ledger.close()
        ledger.close()
        with pytest.raises(LedgerError):
            ledger.write([make_event(2, T0)])
        with pytest.raises(LedgerError):
            ledger.totals()
        with pytest.raises(LedgerError):
            list(ledger.events())
        with pytest.raises(LedgerError):
            ledger.stats()
