"""Tests for Meter: recording, tools, cache lookups, roll-ups, subscribers, snapshots and bounds."""

from __future__ import annotations

import json
import logging
import math
import pickle
from decimal import Decimal
from typing import TypedDict
from uuid import UUID

import pytest

import meterline
from meterline import Budget, ConfigurationError, MalformedUsageError, Meter, Usage, UsageEvent


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


def test_meter_options_are_validated(tmp_path: object) -> None:
    """Meter() refuses a bad bound."""
    with pytest.raises(ConfigurationError, match="max_live_keys=0"):
        Meter(max_live_keys=0)


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


def test_a_row_keeps_a_common_usages_counts_not_the_usage_until_it_is_added_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live row is one object for the collector; its pending shares keep no `Usage` of theirs."""
    import gc
    import sys

    monkeypatch.delenv("METERLINE_LEDGER", raising=False)  # a ledger's events would hold the usages
    meter = Meter()
    common = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=64)
    rare = Usage(input_tokens=50, output_tokens=30, reasoning_tokens=20)
    meter.record(Usage(input_tokens=1), **GPT, tags={"session": "warm"})  # loads the prices
    before = sys.getrefcount(common), sys.getrefcount(rare)
    gc.collect()
    tracked = len(gc.get_objects())
    for session in range(400):  # fewer calls a row than a tally holds: each share waits in its row
        for _ in range(3):
            meter.record(common, **GPT, tags={"session": f"s{session}"})
    gc.collect()
    gc.collect()  # a tuple of keys is untracked once those it holds are: in a later collection
    kept = len(gc.get_objects()) - tracked
    meter.record(rare, **GPT, tags={"session": "s0"})
    assert sys.getrefcount(common) == before[0]  # its counts are in 1,200 shares, the usage nowhere
    assert sys.getrefcount(rare) == before[1] + 1  # a usage with other counts waits whole
    assert kept < 400 * 1.5  # a row each: 450 (and its list before: 811; and its shares: 2,011)
    total = meter.totals()
    assert (total.events, total.usage.input_tokens, total.usage.cache_read_tokens) == (1202, 144_051, 76_800)
    assert total.usage.reasoning_tokens == 20
    assert sys.getrefcount(rare) == before[1]  # added up when read


def test_a_flood_of_new_names_holds_constant_memory_and_reset_gives_it_back() -> None:
    """Ever new model names: memory stops growing once the bounded memos are full; reset() frees it."""
    import gc
    import tracemalloc
    import warnings

    from meterline._pricing._pricer import MAX_NAMES

    meter = Meter(max_live_keys=1000)
    usage = Usage(input_tokens=10, output_tokens=5)

    def names(first: int, last: int) -> None:
        for index in range(first, last):
            meter.record(usage, model=f"llama-{index}", provider="ollama")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names(0, 1)
        meter.reset()
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            names(1, MAX_NAMES + 2000)
            full = tracemalloc.get_traced_memory()[0]
            names(MAX_NAMES + 2000, 100_000)
            more = tracemalloc.get_traced_memory()[0]
            meter.reset()
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert more - full < 200_000  # 94,000 more names: nothing kept for them (20,000 kept 23 MB before)
    assert after - base < 200_000  # reset gives back what the names took (15 MB stayed before)
    assert meter.stats().live_keys == 0
    assert len(meter.stats().unpriced_models) == 0


def test_an_incomplete_usage_is_kept_as_a_lower_bound_never_as_usage() -> None:
    """record(complete=False): unmeasured, the known part in partial_usage, budgets charged by policy."""
    meter = Meter()
    meter.add_budget(Budget(max_tokens=10_000, on_unmeasured="fail_closed"))
    known = Usage(input_tokens=30, output_tokens=1)
    with meter.reserve(model="gpt-4o", input_tokens=100, max_output_tokens=400):
        event = meter.record(known, model="gpt-4o", provider="openai", complete=False)
    assert (event.usage, event.partial_usage, event.cost, event.unmeasured) == (None, known, None, True)
    assert meter.totals().unmeasured == 1
    (status,) = meter.budget_status()
    assert status.used == 500  # the whole reservation (fail_closed), not the 31 tokens seen
    assert UsageEvent.from_dict(event.to_dict()) == event
    assert pickle.loads(pickle.dumps(event)) == event


def test_complete_must_be_a_bool() -> None:
    """complete= other than True or False is refused and nothing is recorded."""
    meter = Meter()
    with pytest.raises(ConfigurationError, match="complete='no'"):
        meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai", complete="no")  # type: ignore[arg-type]
    assert meter.stats().events == 0


# -- billing beyond tokens: tiers, batch mode, stated costs -------------------------------------


def test_a_tier_or_batch_call_is_priced_at_its_rate_and_kept_on_the_event() -> None:
    """``service_tier`` and ``batch`` select the price; the event carries both; totals add them up."""
    meter = Meter()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    standard = meter.record(usage, model="o3", provider="openai")
    flex = meter.record(usage, model="o3", provider="openai", service_tier="flex")
    batch = meter.record(usage, model="gpt-4o", provider="openai", batch=True)
    assert (standard.cost, flex.cost, batch.cost) == (Decimal(10), Decimal(5), Decimal("6.25"))
    assert (flex.service_tier, flex.batch, batch.batch, standard.service_tier) == ("flex", False, True, None)
    assert meter.totals().cost == Decimal("21.25")
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "o3-2025-04-16",
        "choices": [],
        "service_tier": "flex",
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000},
    }
    served = meter.record(body, service_tier="priority")  # the response's tier wins over the asked one
    assert (served.service_tier, served.cost) == ("flex", Decimal(5))


@pytest.mark.parametrize(
    ("argument", "value"),
    [("service_tier", 3), ("service_tier", ""), ("service_tier", "x" * 65), ("service_tier", "\udcff"),
     ("batch", 1), ("batch", "yes"), ("batch", None)],
)  # fmt: skip
def test_bad_tiers_and_batch_flags_record_nothing(argument: str, value: object) -> None:
    """A tier that is no short name, or a batch flag that is no bool, raises and changes no total."""
    meter = Meter()
    meter.record(Usage(input_tokens=5), model="gpt-4o", provider="openai")
    before = meter.totals()
    with pytest.raises(ConfigurationError, match=argument):
        meter.record(Usage(input_tokens=5), model="gpt-4o", provider="openai", **{argument: value})  # type: ignore[arg-type]
    assert meter.totals() == before
    assert meter.stats().events == 1


def test_a_stated_cost_far_from_meterlines_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenRouter's ``usage.cost`` is kept; beyond 1 % it counts as a disagreement, logged once per model."""
    from tests.ledger.conformance import OPENROUTER_BODY

    meter = Meter()
    agreed = meter.record(OPENROUTER_BODY, provider="openrouter")
    assert agreed.reported_cost == Decimal("0.00036")
    assert agreed.cost == Decimal("0.00036")  # 1,200 in and 300 out at $0.15/$0.60
    assert meter.stats().cost_disagreements == 0
    wrong = {**OPENROUTER_BODY, "usage": {**OPENROUTER_BODY["usage"], "cost": 0.00072}}  # type: ignore[dict-item]
    with caplog.at_level(logging.WARNING, logger="meterline"):
        for _ in range(3):
            event = meter.record(wrong, provider="openrouter")
    assert event.reported_cost == Decimal("0.00072")
    assert meter.stats().cost_disagreements == 3
    assert len([r for r in caplog.records if "stated a cost" in r.getMessage()]) == 1
    assert meter.totals().cost == Decimal("0.00036") * 4  # meterline's own price is what counts


def test_snapshots_without_tool_call_counters_still_merge() -> None:
    """A snapshot written before tool calls were counted reads them as zero."""
    meter = Meter()
    meter.record(Usage(input_tokens=10, output_tokens=2, web_search_requests=3), model="m", provider="openai")
    document = json.loads(meter.snapshot().to_json())
    for row in document["rows"]:
        for name in (
            "web_search_requests",
            "web_fetch_requests",
            "file_search_requests",
            "code_execution_requests",
        ):
            del row["counters"][name]
    other = Meter()
    other.merge(meterline.Snapshot.from_json(json.dumps(document)))
    assert other.totals().usage == Usage(input_tokens=10, output_tokens=2)
    again = Meter()
    again.merge(meter.snapshot())
    assert again.totals().usage.web_search_requests == 3


def test_azure_deployment_names_map_to_the_models_they_serve() -> None:
    """``deployments`` prices a call recorded by deployment name as its model, keeping the name."""
    meter = Meter(deployments={"prod-4o": "gpt-4o-2024-11-20"})
    event = meter.record(Usage(input_tokens=1000, output_tokens=100), model="prod-4o", provider="azure")
    assert (event.model, event.request_model, event.provider) == (
        "gpt-4o-2024-11-20",
        "prod-4o",
        "azure.ai.openai",
    )
    assert event.cost == Decimal("0.0035")  # gpt-4o's price: $2.50 in, $10 out per 1M
    unknown = Meter().record(Usage(input_tokens=1000), model="prod-4o", provider="azure")
    assert unknown.cost is None
    for bad in ({"prod-4o": 4}, {"": "gpt-4o"}, ["prod-4o"]):
        with pytest.raises(ConfigurationError, match="deployments"):
            Meter(deployments=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fixture", "provider"),
    [
        ("gcp.vertex_ai/messages_claude.json", "gcp.vertex_ai"),
        ("gcp.vertex_ai/generate_traffic_type.json", "gcp.vertex_ai"),
        ("aws.bedrock/invoke_claude.json", "aws.bedrock"),
        ("azure.ai.openai/chat_content_filter.json", "azure.ai.openai"),
        ("openrouter/chat_cost.json", "openrouter"),
        ("fireworks/chat_cached.json", "fireworks"),
        ("together/chat_plain.json", "together"),
    ],
)
def test_the_shapes_users_meet_are_priced(fixture: str, provider: str) -> None:
    """Vertex, Bedrock InvokeModel, Azure, OpenRouter and hosted OpenAI-compatible bodies get a cost."""
    from tests.ledger.conformance import load_fixture

    event = Meter().record(load_fixture(fixture), provider=provider)
    assert event.provider == provider
    assert event.cost is not None
    assert event.cost > 0


def test_self_hosted_servers_are_priced_only_by_an_override() -> None:
    """vLLM, llama.cpp and LM Studio calls are unpriced (never $0) until a price table names them."""
    from tests.ledger.conformance import load_fixture

    body = load_fixture("vllm/chat_plain.json")
    with pytest.warns(meterline.UnpricedModelWarning):
        assert Meter().record(body, provider="vllm").cost is None
    own = meterline.Price(input_mtok=Decimal("0.10"), output_mtok=Decimal("0.10"))
    table = meterline.PriceTable(
        [meterline.PriceOverride(provider="vllm", model="meta-llama/Llama-3.1-8B-Instruct", price=own)]
    )
    assert Meter(prices=table).record(body, provider="vllm").cost == Decimal("0.0000045")
