"""Usage objects of LangChain, pydantic-ai, the OpenAI Agents SDK and LiteLLM are read as what they are."""

from __future__ import annotations as _annotations

import contextlib
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import meterline
from meterline import Usage, extract, usage_from
from meterline.exceptions import MalformedUsageError, MeterlineError, UnrecognizedPayloadError

GPT_4O = {
    "input_tokens": 2000,
    "output_tokens": 300,
    "total_tokens": 2300,
    "input_token_details": {"cache_read": 1500, "audio": 0},
    "output_token_details": {"reasoning": 0, "audio": 0},
}
"""LangChain's usage_metadata of a gpt-4o call that read 1,500 of its 2,000 input tokens from cache."""


def _ai_message(usage: dict[str, Any], **metadata: Any) -> Any:
    messages = pytest.importorskip("langchain_core.messages")
    return messages.AIMessage(content="hello", usage_metadata=usage, response_metadata=metadata, id="run-1")


def test_langchain_ai_message_is_read_with_its_cache_and_reasoning() -> None:
    """An AIMessage gives its usage_metadata's every detail, its model and provider: not a Gemini body."""
    message = _ai_message(
        {
            "input_tokens": 350,
            "output_tokens": 240,
            "total_tokens": 590,
            "input_token_details": {"cache_read": 100, "cache_creation": 200, "audio": 10},
            "output_token_details": {"reasoning": 200, "audio": 5},
        },
        model_name="claude-sonnet-4-5-20250929",
        model_provider="anthropic",
    )
    found = extract(message)
    assert found.usage == Usage(
        input_tokens=350,
        cache_read_tokens=100,
        cache_write_tokens=200,
        output_tokens=240,
        reasoning_tokens=200,
        audio_input_tokens=10,
        audio_output_tokens=5,
    )
    assert (found.provider, found.model, found.response_id, found.api) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "run-1",
        "unknown",
    )


def test_langchain_usage_metadata_alone_keeps_its_details() -> None:
    """The UsageMetadata dict on its own is read by LangChain's rules, not as a bare block."""
    message = _ai_message(GPT_4O)
    assert usage_from(message.usage_metadata) == Usage(
        input_tokens=2000, cache_read_tokens=1500, output_tokens=300
    )


def test_langchain_message_without_usage_is_unmeasured() -> None:
    """An AIMessage with no usage_metadata carries no usage (and is not taken for another shape)."""
    messages = pytest.importorskip("langchain_core.messages")
    assert usage_from(messages.AIMessage(content="hi")) is None


@pytest.mark.parametrize(
    ("details", "writes", "one_hour"),
    [
        ({"cache_creation": 0, "ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50}, 200, 50),
        ({"cache_creation": 200, "ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50}, 200, 50),
        ({"cache_creation": 200}, 200, 0),
    ],
)
def test_langchain_anthropic_cache_write_lifetimes(
    details: dict[str, int], writes: int, one_hour: int
) -> None:
    """langchain-anthropic's 5 m / 1 h split is summed when cache_creation is zeroed, never twice."""
    usage = usage_from(
        {"input_tokens": 400, "output_tokens": 10, "total_tokens": 410, "input_token_details": details}
    )
    assert usage is not None
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (writes, one_hour)


def test_langchain_split_that_disagrees_is_refused() -> None:
    """A cache_creation that is neither 0 nor the sum of its split names the field and what was expected."""
    with pytest.raises(MalformedUsageError, match=r"input_token_details\.cache_creation.*sum of its"):
        usage_from(
            {
                "input_tokens": 400,
                "output_tokens": 10,
                "input_token_details": {"cache_creation": 90, "ephemeral_5m_input_tokens": 150},
            }
        )


def test_recording_a_langchain_message_prices_cache_reads_as_reads() -> None:
    """A gpt-4o AIMessage costs what its exact Usage costs: cache reads are not priced as fresh input."""
    meter = meterline.Meter()
    message = _ai_message(GPT_4O, model_name="gpt-4o-2024-08-06", model_provider="openai")
    recorded = meter.record(message)
    exact = meter.record(
        Usage(input_tokens=2000, cache_read_tokens=1500, output_tokens=300),
        model="gpt-4o-2024-08-06",
        provider="openai",
    )
    loose = meter.record(
        Usage(input_tokens=2000, output_tokens=300), model="gpt-4o-2024-08-06", provider="openai"
    )
    assert (recorded.provider, recorded.model) == ("openai", "gpt-4o-2024-08-06")
    assert recorded.cost == exact.cost
    assert recorded.cost is not None
    assert loose.cost is not None
    assert recorded.cost < loose.cost


def test_pydantic_ai_request_usage_is_exact() -> None:
    """pydantic-ai's RequestUsage maps field for field: cache reads, writes (1 h too), reasoning, audio."""
    usage_module = pytest.importorskip("pydantic_ai.usage")
    request = usage_module.RequestUsage(
        input_tokens=300,
        cache_write_tokens=100,
        cache_write_1h_tokens=40,
        cache_read_tokens=50,
        output_tokens=40,
        output_reasoning_tokens=10,
        input_audio_tokens=20,
        output_audio_tokens=5,
    )
    assert usage_from(request) == Usage(
        input_tokens=300,
        cache_read_tokens=50,
        cache_write_tokens=100,
        cache_write_1h_tokens=40,
        output_tokens=40,
        reasoning_tokens=10,
        audio_input_tokens=20,
        audio_output_tokens=5,
    )


def test_pydantic_ai_run_usage_sums_a_run() -> None:
    """A RunUsage (a whole run's requests) is read the same way."""
    usage_module = pytest.importorskip("pydantic_ai.usage")
    run = usage_module.RunUsage(requests=3, input_tokens=900, cache_read_tokens=600, output_tokens=120)
    assert usage_from(run) == Usage(input_tokens=900, cache_read_tokens=600, output_tokens=120)


def test_pydantic_ai_older_reasoning_in_details() -> None:
    """Releases that keep reasoning in details["reasoning_tokens"] are read too."""
    older = {
        "input_tokens": 100,
        "cache_write_tokens": 0,
        "cache_read_tokens": 20,
        "output_tokens": 30,
        "input_audio_tokens": 0,
        "cache_audio_read_tokens": 0,
        "output_audio_tokens": 0,
        "details": {"reasoning_tokens": 12},
    }
    assert usage_from(older) == Usage(
        input_tokens=100, cache_read_tokens=20, output_tokens=30, reasoning_tokens=12
    )


def test_pydantic_ai_unmeasured_requests_are_not_claimed_exact() -> None:
    """A usage with unmeasured requests (lower bounds only) is not measured usage."""
    usage_module = pytest.importorskip("pydantic_ai.usage")
    assert usage_from(usage_module.RunUsage(requests=2, input_tokens=300, unmeasured_requests=1)) is None


def test_agents_sdk_usage_is_read_as_responses_usage() -> None:
    """The OpenAI Agents SDK's Usage (SDK objects inside a dataclass) gives cached and reasoning tokens."""
    agents_usage = pytest.importorskip("agents.usage")
    responses_usage = pytest.importorskip("openai.types.responses.response_usage")
    usage = agents_usage.Usage(
        requests=2,
        input_tokens=1000,
        input_tokens_details=responses_usage.InputTokensDetails(cached_tokens=400, cache_write_tokens=0),
        output_tokens=200,
        output_tokens_details=responses_usage.OutputTokensDetails(reasoning_tokens=50),
        total_tokens=1200,
    )
    found = extract(usage)
    assert found.usage == Usage(
        input_tokens=1000, cache_read_tokens=400, output_tokens=200, reasoning_tokens=50
    )
    assert found.api == "openai.responses"


LITELLM_IMPORT = pytest.mark.filterwarnings("ignore:Item.*using the `ReadOnly` qualifier:UserWarning")
"""Importing litellm warns about a TypedDict of its own."""


def _litellm_claude() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    utils = pytest.importorskip("litellm.types.utils")
    usage = utils.Usage(
        prompt_tokens=1200,
        completion_tokens=30,
        total_tokens=1230,
        prompt_tokens_details={
            "cached_tokens": 100,
            "cache_write_tokens": 1000,
            "cache_creation_token_details": {
                "ephemeral_5m_input_tokens": 400,
                "ephemeral_1h_input_tokens": 600,
            },
        },
    )
    return utils.ModelResponse(model="claude-sonnet-4-5", usage=usage)


@LITELLM_IMPORT
def test_litellm_one_hour_cache_writes_are_kept() -> None:
    """LiteLLM's cache_creation_token_details gives the 1 h share of the cache writes."""
    assert usage_from(_litellm_claude()) == Usage(
        input_tokens=1200,
        cache_read_tokens=100,
        cache_write_tokens=1000,
        cache_write_1h_tokens=600,
        output_tokens=30,
    )


@LITELLM_IMPORT
def test_an_openai_shaped_body_served_by_claude_is_billed_as_claude() -> None:
    """record(provider="anthropic", api="openai.chat") reads the gateway's body and prices Claude."""
    meter = meterline.Meter()
    recorded = meter.record(_litellm_claude(), provider="anthropic", api="openai.chat")
    exact = meter.record(
        Usage(
            input_tokens=1200,
            cache_read_tokens=100,
            cache_write_tokens=1000,
            cache_write_1h_tokens=600,
            output_tokens=30,
        ),
        model="claude-sonnet-4-5",
        provider="anthropic",
    )
    assert (recorded.provider, recorded.model) == ("anthropic", "claude-sonnet-4-5")
    assert recorded.usage == exact.usage
    assert recorded.cost is not None
    assert recorded.cost == exact.cost


def test_litellm_one_hour_past_the_writes_is_refused() -> None:
    """More 1 h writes than writes names the field and the bound."""
    body = {
        "prompt_tokens": 100,
        "completion_tokens": 1,
        "prompt_tokens_details": {
            "cache_write_tokens": 10,
            "cache_creation_token_details": {"ephemeral_1h_input_tokens": 11},
        },
    }
    with pytest.raises(MalformedUsageError, match="ephemeral_1h_input_tokens=11: expected at most"):
        usage_from({"usage": body})


LITELLM_1_76 = {
    "completion_tokens": 210,
    "prompt_tokens": 1508,
    "total_tokens": 1718,
    "completion_tokens_details": None,
    "prompt_tokens_details": {
        "audio_tokens": None,
        "cache_write_tokens": None,
        "cached_tokens": 1500,
        "text_tokens": None,
        "image_tokens": None,
    },
    "cache_creation_input_tokens": 4300,
    "cache_read_input_tokens": 1500,
}
"""LiteLLM 1.76's usage of tests/fixtures/anthropic/message_cache_write_1h_5m_split (dumped from
its ModelResponse): the cache writes sit beside prompt_tokens, not in it."""

LITELLM_1_90 = {
    "completion_tokens": 210,
    "prompt_tokens": 5808,
    "total_tokens": 6018,
    "prompt_tokens_details": {
        "audio_tokens": None,
        "cache_write_tokens": None,
        "cached_tokens": 1500,
        "text_tokens": 8,
        "image_tokens": None,
        "video_tokens": None,
        "cache_creation_tokens": 4300,
        "cache_creation_token_details": {
            "ephemeral_5m_input_tokens": 1100,
            "ephemeral_1h_input_tokens": 3200,
        },
    },
    "cache_creation_input_tokens": 4300,
    "cache_read_input_tokens": 1500,
}
"""LiteLLM 1.80-1.90's usage of the same response: writes in prompt_tokens, named cache_creation_tokens."""


@pytest.mark.parametrize(
    ("block", "one_hour"), [(LITELLM_1_76, 0), (LITELLM_1_90, 3200)], ids=["litellm-1.76", "litellm-1.90"]
)
def test_older_litellm_usage_shapes_keep_the_cache_writes(block: dict[str, Any], one_hour: int) -> None:
    """Both older LiteLLM shapes give Anthropic's input (5,808) with its 4,300 cache writes."""
    assert usage_from({"usage": block}) == Usage(
        input_tokens=5808,
        cache_read_tokens=1500,
        cache_write_tokens=4300,
        cache_write_1h_tokens=one_hour,
        output_tokens=210,
    )


def test_meterline_own_dict_round_trips() -> None:
    """Usage.to_dict() output is read back exactly, never as a bare block."""
    usage = Usage(
        input_tokens=10, cache_read_tokens=4, cache_write_tokens=2, output_tokens=3, reasoning_tokens=1
    )
    assert usage_from(usage.to_dict()) == usage


def test_unknown_counts_beside_a_bare_block_are_refused() -> None:
    """A block with counts of no known form raises, naming them, instead of being read without them."""
    with pytest.raises(UnrecognizedPayloadError, match="cached_input_tokens, thinking_tokens"):
        usage_from({"input_tokens": 5, "output_tokens": 2, "thinking_tokens": 1, "cached_input_tokens": 3})
    assert usage_from({"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}) == Usage(
        input_tokens=5, output_tokens=2
    )


@given(
    field=st.sampled_from(["cache_read", "cache_creation", "audio", "ephemeral_1h_input_tokens"]),
    value=st.one_of(
        st.booleans(), st.floats(allow_nan=True), st.integers(min_value=-(2**70), max_value=2**70), st.text()
    ),
)
def test_hostile_langchain_details_raise_meterline_errors(field: str, value: object) -> None:
    """Any value in a LangChain detail is counted or refused with a MeterlineError, nothing else."""
    payload = {"input_tokens": 1000, "output_tokens": 10, "input_token_details": {field: value}}
    try:
        usage = usage_from(payload)
    except MeterlineError:
        return
    assert usage is not None
    assert type(value) is int


def test_unhashable_markers_are_data() -> None:
    """A list or dict where a marker string is expected is read or refused, never a TypeError."""
    with contextlib.suppress(MeterlineError):
        usage_from({"type": ["ai"], "usage_metadata": {"input_tokens": 1, "output_tokens": 1}})
    assert usage_from({"model": "llama3.2", "done": True, "done_reason": ["load"]}) is None
    found = extract({"model": "llama3.2", "done": True, "done_reason": {"load": 1}, "eval_count": 3})
    assert found.usage == Usage(output_tokens=3)
    assert found.unknown_fields == ("input_tokens",)
