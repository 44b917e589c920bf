"""Tests for Meter: recording, tools, cache lookups, roll-ups, subscribers, snapshots and bounds."""

from __future__ import annotations

import json
import logging
import math
import re
from decimal import Decimal
from typing import TypedDict
from uuid import UUID

import pytest

import meterline
from meterline import ConfigurationError, MalformedUsageError, Meter, Snapshot, Usage, UsageEvent


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}
CHAT_BODY = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}


def test_record_a_usage_returns_a_priced_event(meter: Meter) -> None:
    """record() of a Usage returns a complete, priced, immutable event."""
    usage = Usage(input_tokens=1200, cache_read_tokens=100, output_tokens=300)
    event = meter.record(usage, latency_ms=812.0, tags={"feature": "search"}, **GPT)
    assert isinstance(event, UsageEvent)
    assert UUID(event.id).version == 7
    assert event.operation == "chat"
    assert event.usage == usage
    assert event.cost == Decimal("0.0003525")  # 1100 x 0.15 + 100 x 0.075 + 300 x 0.60 per 1M
    assert event.latency_ms == 812.0
    assert event.status == "ok"
    assert dict(event.dimensions) == {"feature": "search"}
    assert event.time.tzinfo is not None
    assert abs(event.time.timestamp() - event.time_ns / 1e9) < 1e-3
    with pytest.raises(AttributeError):
        event.cost = None  # type: ignore[misc]


def test_record_a_response_uses_the_served_model(meter: Meter) -> None:
    """A response body is normalised; its dated model becomes the model and the alias request_model."""
    event = meter.record(CHAT_BODY, model="gpt-4o-mini", latency_ms=420)
    assert event.provider == "openai"
    assert event.model == "gpt-4o-mini-2024-07-18"
    assert event.request_model == "gpt-4o-mini"
    assert event.response_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert event.usage == Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)
    assert event.cost == Decimal("0.000336900")
    assert event.latency_ms == 420.0
    same = meter.record(json.dumps(CHAT_BODY), model="gpt-4o-mini-2024-07-18")
    assert same.request_model is None
    assert same.usage == event.usage


def test_ids_are_unique_and_sort_by_time(meter: Meter) -> None:
    """Event ids never repeat and sort in recording order."""
    ids = [meter.record(Usage(input_tokens=1), **GPT).id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_unknown_usage_is_unmeasured_not_free(meter: Meter) -> None:
    """record(None) keeps the event, counts it unmeasured, and never prices it at zero."""
    event = meter.record(None, **GPT)
    assert event.usage is None
    assert event.cost is None
    assert event.unmeasured
    totals = meter.totals()
    assert totals.requests == 1
    assert totals.unmeasured == 1
    assert totals.usage == Usage()
    assert not totals.complete


def test_errors_and_retries_are_grouped(meter: Meter) -> None:
    """Failed attempts count as errors and share the operation id of the logical call."""
    first = meter.record(None, status="error", operation_id="op-1", attempt=1, **GPT)
    second = meter.record(Usage(input_tokens=5, output_tokens=1), operation_id="op-1", attempt=2, **GPT)
    assert (first.operation_id, first.attempt) == ("op-1", 1)
    assert (second.operation_id, second.attempt) == ("op-1", 2)
    totals = meter.totals()
    assert totals.errors == 1
    assert totals.requests == 2
    assert meter.totals(by=("status",))[("error",)].unmeasured == 1


def test_embeddings_are_an_operation(meter: Meter) -> None:
    """Embeddings are recorded as their own operation and split out in by_operation."""
    meter.record(
        Usage(input_tokens=50_000), model="text-embedding-3-small", provider="openai", operation="embeddings"
    )
    meter.record(Usage(input_tokens=100, output_tokens=10), **GPT)
    totals = meter.totals()
    assert totals.by_operation["embeddings"].usage.input_tokens == 50_000
    assert totals.by_operation["embeddings"].cost == Decimal("0.001")
    assert totals.by_operation["chat"].calls == 1
    assert totals.usage.input_tokens == 50_100


def test_tools_are_counted_with_links_and_never_priced(meter: Meter) -> None:
    """Tool calls keep per-tool and per-category stats, link LLM calls, and add no usage or cost."""
    llm = meter.record(Usage(input_tokens=10, output_tokens=5), **GPT)
    meter.record_tool("web_search", category="retrieval", duration_ms=120.0, llm_call_id=llm.id)
    meter.record_tool(
        "web_search",
        category="retrieval",
        status="failure",
        duration_ms=30.5,
        usage=Usage(input_tokens=7, output_tokens=3),
        llm_call_id=[llm.id, "other"],
    )
    meter.record_tool("calculator", status="completed")
    totals = meter.totals()
    search = totals.tools["web_search"]
    assert (search.calls, search.successes, search.failures) == (2, 1, 1)
    assert search.duration_ms == 150.5
    assert (search.input_tokens, search.output_tokens, search.total_tokens) == (7, 3, 10)
    assert search.llm_call_ids == tuple(sorted((llm.id, "other")))
    assert search.linked_calls == 3
    assert totals.tool_categories["retrieval"].calls == 2
    assert totals.tools["calculator"].successes == 1
    assert totals.tool_calls == 3
    assert totals.tool_failures == 1
    assert totals.usage == Usage(input_tokens=10, output_tokens=5)
    assert totals.requests == 1
    assert totals.events == 4
    assert meter.totals(by=("tool",))[("web_search",)].events == 2


def test_application_cache_hits_and_misses(meter: Meter) -> None:
    """The application's own cache lookups are counted with the tokens they saved."""
    meter.record_cache_hit(tokens_saved=1200)
    meter.record_cache_hit(tokens_saved=300)
    meter.record_cache_miss()
    totals = meter.totals()
    assert (totals.cache_hits, totals.cache_misses, totals.cache_tokens_saved) == (2, 1, 1500)
    assert totals.requests == 0
    with pytest.raises(MalformedUsageError):
        meter.record_cache_hit(tokens_saved=-1)


def test_totals_by_and_where(meter: Meter) -> None:
    """totals() groups by any event field or dimension and filters with where=."""
    for user, model, tokens in [("u1", "gpt-4o", 100), ("u1", "gpt-4o-mini", 10), ("u2", "gpt-4o", 1000)]:
        with meter.scope(user=user):
            meter.record(Usage(input_tokens=tokens), model=model, provider="openai")
    meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    by_user = meter.totals(by=("user",))
    assert {key: t.usage.input_tokens for key, t in by_user.items()} == {
        ("u1",): 110,
        ("u2",): 1000,
        (None,): 1,
    }
    by_both = meter.totals(by=["model", "user"], where={"user": "u1"})
    assert set(by_both) == {("gpt-4o", "u1"), ("gpt-4o-mini", "u1")}
    assert meter.totals(where={"user": {"u1", "u2"}}).usage.input_tokens == 1110
    assert meter.totals(where={"user": None}).usage.input_tokens == 1
    assert meter.totals(where={"provider": "anthropic"}).events == 0
    assert meter.totals().cost == sum((t.cost for t in by_user.values()), Decimal(0))
    with pytest.raises(ConfigurationError):
        meter.totals(by=("bad-name",))
    with pytest.raises(ConfigurationError, match="by='user'"):
        meter.totals(by="user")
    assert meter.totals(by=()) == {(): meter.totals()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": 5}, "model=5"),
        ({"provider": "no such provider!"}, "no such provider!"),
        ({"operation": ""}, "operation=''"),
        ({"status": None}, "status=None"),
        ({"latency_ms": -1.0}, "latency_ms=-1.0"),
        ({"latency_ms": math.nan}, "latency_ms=nan"),
        ({"latency_ms": math.inf}, "latency_ms=inf"),
        ({"latency_ms": True}, "latency_ms=True"),
        ({"latency_ms": "12"}, "latency_ms='12'"),
        ({"attempt": 0}, "attempt=0"),
        ({"operation_id": 3}, "operation_id=3"),
        ({"operation_id": 0}, "operation_id=0"),
        ({"request_model": b""}, "request_model=b''"),
        ({"response_id": b"x"}, "response_id=b'x'"),
        ({"tags": {"Bad": "x"}}, "'Bad'"),
        ({"tags": {"model": "x"}}, "event field"),
        ({"tags": {"feature": 1.5}}, "feature=1.5"),
    ],
)
def test_bad_arguments_raise_and_change_nothing(
    meter: Meter, kwargs: dict[str, object], message: str
) -> None:
    """A bad argument raises ConfigurationError naming the value, and records nothing."""
    meter.record(Usage(input_tokens=3), **GPT)
    before = meter.totals()
    args: dict[str, object] = {**GPT, **kwargs}
    with pytest.raises(ConfigurationError) as info:
        meter.record(Usage(input_tokens=5), **args)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert meter.totals() == before
    assert meter.stats().events == 1


def test_malformed_payloads_raise_and_change_nothing(meter: Meter) -> None:
    """A malformed payload raises a UsageError subclass and leaves the totals as they were."""
    meter.record(Usage(input_tokens=3), **GPT)
    before = meter.totals()
    bad = json.loads(json.dumps(CHAT_BODY))
    bad["usage"]["prompt_tokens"] = -5
    with pytest.raises(MalformedUsageError, match="prompt_tokens"):
        meter.record(bad)
    with pytest.raises(meterline.UnrecognizedPayloadError):
        meter.record({"hello": "world"})
    assert meter.totals() == before


def test_failing_subscriber_is_logged_and_counted(meter: Meter, caplog: pytest.LogCaptureFixture) -> None:
    """A subscriber that raises never affects record(); the failure is logged and counted."""
    seen: list[UsageEvent] = []

    def broken(event: UsageEvent) -> None:
        raise RuntimeError("boom")

    meter.subscribe(broken)
    unsubscribe = meter.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        event = meter.record(Usage(input_tokens=1), **GPT)
    assert seen == [event]
    assert meter.stats().subscriber_errors == 1
    assert "boom" in caplog.text
    unsubscribe()
    unsubscribe()
    meter.record(Usage(input_tokens=1), **GPT)
    assert len(seen) == 1
    with pytest.raises(ConfigurationError):
        meter.subscribe("not callable")  # type: ignore[arg-type]


def test_snapshots_merge_exactly_across_processes() -> None:
    """Merging the JSON snapshots of several meters gives exactly the totals of one meter that saw all."""
    everything = Meter()
    parts = [Meter() for _ in range(3)]
    for index in range(60):
        part = parts[index % 3]
        usage = Usage(
            input_tokens=index * 7, cache_read_tokens=index, output_tokens=index * 3, reasoning_tokens=index
        )
        for target in (part, everything):
            with target.scope(user=f"u{index % 4}", session=f"s{index % 5}"):
                target.record(
                    usage, model=("gpt-4o", "o3-mini")[index % 2], provider="openai", latency_ms=1.5
                )
                target.record_tool("search", duration_ms=2.0, llm_call_id=f"id{index}")
            if index % 7 == 0:
                target.record(None, **GPT)
    merged = Meter()
    for part in parts:
        merged.merge(Snapshot.from_json(part.snapshot().to_json()))
    assert merged.totals() == everything.totals()
    assert merged.totals(by=("user", "model")) == everything.totals(by=("user", "model"))
    assert merged.totals().cost == sum((p.totals().cost for p in parts), Decimal(0))


def test_snapshot_and_reset_is_atomic(meter: Meter) -> None:
    """snapshot_and_reset() hands over everything once; the meter then starts from zero."""
    with meter.scope(session="s1") as scope:
        meter.record(Usage(input_tokens=5), **GPT)
        snap = meter.snapshot_and_reset()
        meter.record(Usage(input_tokens=7), **GPT)
        assert scope.totals.usage.input_tokens == 12  # the scope keeps its own totals
    restored = Meter()
    restored.merge(snap)
    assert restored.totals().usage.input_tokens == 5
    assert meter.totals().usage.input_tokens == 7
    meter.reset()
    assert meter.totals().events == 0


def test_snapshot_from_bad_json_raises() -> None:
    """A document that is not a meterline snapshot raises MalformedUsageError."""
    for text in ("{}", "[]", "not json", '{"format": "meterline.snapshot/1", "rows": [{"x": 1}]}'):
        with pytest.raises(MalformedUsageError):
            Snapshot.from_json(text)


def test_forget_drops_a_finished_session(meter: Meter) -> None:
    """forget() drops the rows of a pruned session so memory does not grow with sessions."""
    for session in ("s1", "s2"):
        with meter.scope(session=session):
            meter.record(Usage(input_tokens=1), **GPT)
    live = meter.stats().live_keys
    assert meter.forget(session="s1") == 1
    assert meter.stats().live_keys == live - 1
    assert set(meter.totals(by=("session",))) == {("s2",)}
    with pytest.raises(ConfigurationError):
        meter.forget()


def test_live_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Past max_live_keys, new combinations fold into the overflow row and totals stay exact."""
    meter = Meter(max_live_keys=5)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        for index in range(50):
            with meter.scope(session=f"s{index}"):
                meter.record(Usage(input_tokens=1), **GPT)
    stats = meter.stats()
    assert stats.live_keys <= 6
    assert stats.overflowed_events == 45
    assert meter.totals().usage.input_tokens == 50
    assert meter.totals(by=("meterline_overflow",))[("true",)].events == 45
    assert "live keys reached" in caplog.text


def test_default_meter_and_module_functions() -> None:
    """meterline.record/scope/record_tool use the process-wide meter; configure() replaces it."""
    with meterline.scope(user="u1"):
        meterline.record(Usage(input_tokens=3), **GPT)
        meterline.record_tool("search")
    assert meterline.get_meter().totals().usage.input_tokens == 3
    assert meterline.get_meter() is meterline.get_meter()
    fresh = meterline.configure(max_live_keys=10)
    assert meterline.get_meter() is fresh
    assert fresh.totals().events == 0
    mine = Meter()
    assert meterline.configure(meter=mine) is mine


def test_meter_options_are_validated(tmp_path: object) -> None:
    """Meter() refuses a bad bound."""
    with pytest.raises(ConfigurationError, match="max_live_keys=0"):
        Meter(max_live_keys=0)


def test_id_counter_wraps_without_breaking_ids(meter: Meter) -> None:
    """When the 32-bit id counter wraps, ids stay unique and well-formed."""
    import itertools

    meter._ids.counter = itertools.count(2**32 - 2)
    ids = [meter.record(Usage(input_tokens=1), **GPT).id for _ in range(4)]
    assert len(set(ids)) == 4
    assert all(UUID(i).version == 7 for i in ids)
    assert meter.stats().events >= 4


def test_events_from_the_record_path_are_ordinary_values(meter: Meter) -> None:
    """An event whose id and cost are written out on first read behaves as one built eagerly."""
    import copy
    import dataclasses
    import pickle

    usage = Usage(input_tokens=1200, cache_read_tokens=100, output_tokens=300)
    event = meter.record(usage, **GPT)
    twin = meter.record(usage, **GPT)
    eager = UsageEvent(**{f.name: getattr(event, f.name) for f in dataclasses.fields(UsageEvent)})
    assert eager == event
    assert repr(eager) == repr(event)
    assert pickle.loads(pickle.dumps(twin)) == twin
    assert copy.copy(twin) == twin
    assert dataclasses.asdict(twin)["cost"] == meter.pricer.cost(usage, "openai", "gpt-4o-mini")
    assert str(twin.cost) == "0.0003525"
    assert not hasattr(twin, "no_such_field")
    assert twin.id != event.id
    with pytest.raises(AttributeError):
        twin.id = "x"  # type: ignore[misc]


def test_derived_fields_are_stable_across_threads(meter: Meter) -> None:
    """Threads reading a fresh event's id and cost at once all see the same values."""
    import threading

    event = meter.record(Usage(input_tokens=10, output_tokens=5), **GPT)
    seen: list[tuple[str, object]] = []
    threads = [threading.Thread(target=lambda: seen.append((event.id, event.cost))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1


def test_dimensions_are_read_only_json_ready_values(meter: Meter) -> None:
    """An event's dimensions cannot be changed, serialise with json, hash, copy and pickle."""
    import copy
    import pickle

    with meter.scope(user="u1"):
        event = meter.record(Usage(input_tokens=1), tags={"feature": "search"}, **GPT)
    dims = event.dimensions
    assert dims == {"user": "u1", "feature": "search"}
    assert json.loads(json.dumps(dims)) == {"user": "u1", "feature": "search"}
    for mutate in (
        lambda: dims.__setitem__("user", "u2"),  # type: ignore[index]
        lambda: dims.update(user="u2"),  # type: ignore[attr-defined]
        lambda: dims.pop("user"),  # type: ignore[attr-defined]
        dims.clear,  # type: ignore[attr-defined]
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert dims["user"] == "u1"
    assert hash(dims) == hash(copy.deepcopy(dims))
    assert pickle.loads(pickle.dumps(event)) == event


def test_per_request_charges_add_up_in_totals() -> None:
    """A per-request price is charged once per call, in events and in every total."""
    from meterline import Price, PriceOverride, PriceTable

    table = PriceTable(
        [
            PriceOverride(
                provider="vllm", model="m", price=Price(input_mtok=Decimal(1), per_request=Decimal("0.001"))
            )
        ]
    )
    meter = Meter(prices=table)
    with meter.scope(user="u1") as scope:
        events = [meter.record(Usage(input_tokens=1000), model="m", provider="vllm") for _ in range(300)]
    assert {event.cost for event in events} == {Decimal("0.002")}
    assert scope.totals.cost == Decimal("0.6")
    assert meter.totals().cost == Decimal("0.6")


def test_a_pricing_failure_never_breaks_record(
    meter: Meter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the price engine is logged and counted; the call is recorded, unpriced, not raised."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("price engine bug")

    monkeypatch.setattr(meter.pricer, "resolve", broken)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        event = meter.record(Usage(input_tokens=10, output_tokens=2), **GPT)
    assert event.cost is None
    assert event.usage == Usage(input_tokens=10, output_tokens=2)
    totals = meter.totals()
    assert (totals.requests, totals.unpriced, totals.usage.input_tokens) == (1, 1, 10)
    assert meter.stats().machinery_errors >= 1
    assert "price engine bug" in caplog.text
