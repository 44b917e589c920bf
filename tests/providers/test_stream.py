"""Specification of `meterline._stream`: the usage of a streamed response, per provider framing."""

from __future__ import annotations as _annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline._providers import PROVIDERS, StreamAccumulator, usage_from_stream
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import (
    ConfigurationError,
    MalformedUsageError,
    MeterlineError,
    UnrecognizedPayloadError,
)
from tests import fixture_cases
from tests.instrument.server import fixture

STREAMS = fixture_cases.cases("stream")
DETECTABLE = fixture_cases.cases("stream", detectable_only=True)
_ALL = fixture_cases.ALL
_STREAM_CASES = fixture_cases.valid("stream")
_ERRORS = fixture_cases.ERRORS
FIXTURE_APIS = fixture_cases.FIXTURE_APIS
_expected = fixture_cases.expected


# --------------------------------------------------------------------------------------------
# Fixture corpus


@pytest.mark.parametrize("case", STREAMS)
def test_fixture_stream_with_provider(case: dict[str, Any]) -> None:
    """Every recorded stream accumulates to its expected usage and stated cost under its provider's rules."""
    assert usage_from_stream(case["chunks"], case["provider"]) == _expected(case)
    acc = StreamAccumulator(case["provider"])
    for chunk in case["chunks"]:
        acc.add(chunk)
    stated = case.get("expected_reported_cost")
    assert acc.reported_cost == (None if stated is None else Decimal(stated))


def test_bedrock_invoke_streams_as_botocore_yields_them() -> None:
    """InvokeModelWithResponseStream chunks whose bytes are raw (botocore) or base64 (the wire) read alike."""
    case = dict(_ALL)["aws.bedrock/invoke_claude_stream.json"]
    raw = [{"chunk": {"bytes": base64.b64decode(chunk["chunk"]["bytes"])}} for chunk in case["chunks"]]
    assert usage_from_stream(raw, "aws.bedrock") == _expected(case)
    with pytest.raises(UnrecognizedPayloadError, match="base64 JSON"):
        usage_from_stream([{"chunk": {"bytes": "not base64!"}}], "aws.bedrock")
    with pytest.raises(UnrecognizedPayloadError, match="JSON list"):
        usage_from_stream([{"chunk": {"bytes": base64.b64encode(b"[1]").decode()}}], "aws.bedrock")


@pytest.mark.parametrize("case", DETECTABLE)
def test_fixture_stream_detected(case: dict[str, Any]) -> None:
    """A stream whose chunks reveal their provider accumulates correctly without provider=."""
    acc = StreamAccumulator()
    for chunk in case["chunks"]:
        acc.add(chunk)
    assert acc.usage == _expected(case)
    assert acc.provider == case["provider"]


@pytest.mark.parametrize("case", STREAMS)
def test_fixture_stream_incremental(case: dict[str, Any]) -> None:
    """Chunk by chunk, the accumulator reports model, chunk count and finally the expected usage."""
    acc = StreamAccumulator(case["provider"])
    for i, chunk in enumerate(case["chunks"], 1):
        acc.add(chunk)
        assert acc.chunks == i
        assert acc.usage is None or isinstance(acc.usage, Usage)
    assert acc.usage == _expected(case)
    assert acc.complete is (acc.usage is not None and case.get("complete", True))
    assert acc.model == case["model"]
    assert acc.provider == case["provider"]
    assert acc.api == FIXTURE_APIS[case["provider"], case["api"]]
    assert acc.unknown_fields == tuple(case.get("expected_unknown_fields", ()))


def test_a_gemini_snapshot_before_the_finish_reason_is_not_final() -> None:
    """Gemini repeats a cumulative snapshot: only the chunk with a finish reason is final."""
    case = fixture("gcp.gemini/stream_cumulative_snapshots")
    acc = StreamAccumulator(case["provider"])
    for chunk in case["chunks"][:-1]:
        acc.add(chunk)
    assert acc.usage is not None
    assert not acc.complete
    acc.add(case["chunks"][-1])
    assert acc.complete


@pytest.mark.parametrize("case", STREAMS)
def test_fixture_stream_as_text(case: dict[str, Any]) -> None:
    """The same stream as SSE data lines or NDJSON (str and bytes, with [DONE]) gives the same usage."""
    expected = _expected(case)
    acc = StreamAccumulator(case["provider"])
    for chunk in case["chunks"]:
        acc.add(f"data: {json.dumps(chunk)}")
        acc.add("")
    acc.add("data: [DONE]")
    assert acc.usage == expected
    assert acc.chunks == len(case["chunks"])
    lines = [json.dumps(chunk).encode() + b"\n" for chunk in case["chunks"]]
    assert usage_from_stream(lines, case["provider"]) == expected
    body = (
        "".join(f"event: x\ndata: {json.dumps(chunk)}\n\n" for chunk in case["chunks"]) + "data: [DONE]\n\n"
    )
    assert usage_from_stream(body, case["provider"]) == expected


@pytest.mark.parametrize("case", STREAMS)
def test_fixture_stream_generator(case: dict[str, Any]) -> None:
    """usage_from_stream consumes a one-shot iterator, not only a list."""

    def chunks() -> Iterator[Any]:
        yield from case["chunks"]

    assert usage_from_stream(chunks(), case["provider"]) == _expected(case)


def test_fixture_streams_are_loaded() -> None:
    """The fixture corpus has streams (the parametrized tests above are not silently empty)."""
    assert STREAMS


# --------------------------------------------------------------------------------------------
# SDK event objects built from the recorded chunks


_OPENAI_SDK = {
    "openai",
    "deepseek",
    "groq",
    "mistral_ai",
    "x_ai",
    "openrouter",
    "azure.ai.openai",
    "vllm",
    "llama.cpp",
    "lmstudio",
    "together",
    "fireworks",
}
"""Providers whose chat streams the OpenAI SDK reads (pointed at their base URL)."""


def _sdk_events(case: dict[str, Any]) -> list[Any] | None:
    """The provider SDK's event objects for a fixture stream, or None when there is no SDK type."""
    import pydantic

    provider, api, chunks = case["provider"], case["api"], case["chunks"]
    if api == "chat" and provider in _OPENAI_SDK:
        from openai.types.chat import ChatCompletionChunk

        if provider == "openai":
            return [ChatCompletionChunk.model_validate(c) for c in chunks]
        return [ChatCompletionChunk.construct(**c) for c in chunks]
    if provider == "openai" and api == "responses":
        from openai.types.responses import ResponseStreamEvent

        adapter: Any = pydantic.TypeAdapter(ResponseStreamEvent)
        return [adapter.validate_python(c) for c in chunks]
    if api == "messages" and provider in {"anthropic", "gcp.vertex_ai"}:  # the SDK's Vertex client too
        from anthropic.types import RawMessageStreamEvent

        # The SDK drops ping events before yielding (anthropic/_streaming.py), so do the same.
        adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
        return [adapter.validate_python(c) for c in chunks if c.get("type") != "ping"]
    if provider in {"gcp.gemini", "gcp.vertex_ai"} and api == "generate_content":
        from google.genai.types import GenerateContentResponse

        return [GenerateContentResponse.model_validate(c) for c in chunks]
    return None


_SDK_STREAM_PROVIDERS = {*_OPENAI_SDK, "anthropic", "gcp.gemini", "gcp.vertex_ai"}
SDK_STREAMS = [
    pytest.param(case, id=name)
    for name, case in _STREAM_CASES
    if case["provider"] in _SDK_STREAM_PROVIDERS
    and case["api"] in {"chat", "responses", "messages", "generate_content"}
]


@pytest.mark.parametrize("case", SDK_STREAMS)
def test_sdk_stream_events(case: dict[str, Any]) -> None:
    """The SDK's own stream event objects accumulate to the same usage and model as the dicts."""
    events = _sdk_events(case)
    assert events is not None
    acc = StreamAccumulator(case["provider"])
    for event in events:
        acc.add(event)
    assert acc.usage == _expected(case)
    assert acc.model == case["model"]
    assert acc.chunks == len(events)
    stated = case.get("expected_reported_cost")
    assert acc.reported_cost == (None if stated is None else Decimal(stated))
    if case["detectable"]:
        assert usage_from_stream(events) == _expected(case)


# --------------------------------------------------------------------------------------------
# Framing rules, inline


def _chat_chunk(usage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": usage,
        **extra,
    }


def test_chat_last_usage_wins() -> None:
    """OpenAI chat: null usage is ignored and the last non-null usage replaces earlier ones."""
    acc = StreamAccumulator()
    acc.add(_chat_chunk())
    before = acc.usage
    assert before is None
    acc.add(_chat_chunk({"prompt_tokens": 5, "completion_tokens": 1}))
    acc.add(_chat_chunk({"prompt_tokens": 5, "completion_tokens": 9}))
    acc.add(_chat_chunk())
    assert acc.usage == Usage(input_tokens=5, output_tokens=9)
    assert (acc.provider, acc.api, acc.model) == ("openai", "openai.chat", "gpt-4o-mini-2024-07-18")


def test_chat_without_usage_is_none() -> None:
    """A chat stream without include_usage (or cut before the usage chunk) has unknown usage."""
    assert usage_from_stream([_chat_chunk(), _chat_chunk()]) is None


def test_groq_x_groq_usage() -> None:
    """Groq: usage in x_groq.usage on the final chunk is read, and the provider detected."""
    chunks = [
        _chat_chunk(x_groq={"id": "req_1"}),
        _chat_chunk(
            x_groq={"id": "req_1", "usage": {"prompt_tokens": 7, "completion_tokens": 3, "queue_time": 0.1}}
        ),
    ]
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    assert acc.usage == Usage(input_tokens=7, output_tokens=3)
    assert (acc.provider, acc.api) == ("groq", "groq.chat")


def test_xai_stream_adds_reasoning() -> None:
    """Streams from xAI: reasoning tokens outside completion_tokens are added to output."""
    usage = {
        "prompt_tokens": 32,
        "completion_tokens": 9,
        "total_tokens": 135,
        "completion_tokens_details": {"reasoning_tokens": 94},
    }
    assert usage_from_stream([_chat_chunk(usage)], "xai") == Usage(
        input_tokens=32, output_tokens=103, reasoning_tokens=94
    )


def _message_start(**usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "model": "claude-sonnet-4-5-20250929", "usage": usage},
    }


def test_anthropic_overwrites_never_adds() -> None:
    """Anthropic: message_delta's cumulative counts overwrite message_start's, never add to them."""
    acc = StreamAccumulator()
    acc.add(_message_start(input_tokens=472, output_tokens=1, cache_read_input_tokens=100))
    assert acc.usage == Usage(input_tokens=572, cache_read_tokens=100, output_tokens=1)
    acc.add({"type": "ping"})
    acc.add({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})
    acc.add({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}})
    assert acc.usage == Usage(input_tokens=572, cache_read_tokens=100, output_tokens=15)
    acc.add(
        {
            "type": "message_delta",
            "delta": {},
            "usage": {"input_tokens": 480, "cache_read_input_tokens": None, "output_tokens": 20},
        }
    )
    acc.add({"type": "message_stop"})
    assert acc.usage == Usage(input_tokens=580, cache_read_tokens=100, output_tokens=20)
    assert (acc.provider, acc.model, acc.response_id) == ("anthropic", "claude-sonnet-4-5-20250929", "msg_1")


def _gemini_chunk(**meta: int) -> dict[str, Any]:
    return {"candidates": [], "modelVersion": "gemini-2.5-flash", "responseId": "r1", "usageMetadata": meta}


def test_gemini_last_snapshot() -> None:
    """Gemini: each chunk's usageMetadata is a cumulative snapshot; the last one wins, none is summed."""
    chunks = [
        _gemini_chunk(promptTokenCount=20, thoughtsTokenCount=382, totalTokenCount=402),
        _gemini_chunk(
            promptTokenCount=20, candidatesTokenCount=50, thoughtsTokenCount=382, totalTokenCount=452
        ),
        _gemini_chunk(
            promptTokenCount=20, candidatesTokenCount=151, thoughtsTokenCount=382, totalTokenCount=553
        ),
    ]
    assert usage_from_stream(chunks) == Usage(input_tokens=20, output_tokens=533, reasoning_tokens=382)


def _responses_event(kind: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": kind,
        "sequence_number": 0,
        "response": {"id": "resp_1", "object": "response", "model": "gpt-5-2025-08-07", "usage": usage},
    }


@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete", "response.failed"])
def test_responses_terminal_event(terminal: str) -> None:
    """OpenAI Responses: usage comes from the terminal event, whichever it is; null usage is ignored."""
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 130,
    }
    acc = StreamAccumulator()
    acc.add(_responses_event("response.created", None))
    acc.add(_responses_event("response.in_progress", None))
    acc.add({"type": "response.output_text.delta", "sequence_number": 2, "delta": "Hi"})
    before = acc.usage
    assert before is None
    acc.add(_responses_event(terminal, usage))
    assert acc.usage == Usage(input_tokens=100, cache_read_tokens=60, output_tokens=30, reasoning_tokens=20)
    assert (acc.api, acc.response_id) == ("openai.responses", "resp_1")


def test_bedrock_metadata_event() -> None:
    """Bedrock ConverseStream: usage is in the metadata event, cache tokens added back to input."""
    chunks: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 17, "cacheReadInputTokens": 10}
            }
        },
    ]
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    assert acc.usage == Usage(input_tokens=15, cache_read_tokens=10, output_tokens=2)
    assert (acc.provider, acc.model) == ("aws.bedrock", None)
    assert usage_from_stream(chunks[:3]) is None


def test_bedrock_unwrapped_payloads() -> None:
    """Bedrock event-stream payloads without their wrapper key are accepted for provider="bedrock"."""
    chunks = [
        {"role": "assistant"},
        {"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {}},
    ]
    assert usage_from_stream(chunks, "bedrock") == Usage(input_tokens=5, output_tokens=2)


def test_cohere_message_end() -> None:
    """Cohere v2: usage is message-end's delta.usage billed units; the id comes from message-start."""
    chunks = [
        {"id": "c1", "type": "message-start", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "COMPLETE",
                "usage": {
                    "billed_units": {"input_tokens": 5, "output_tokens": 9},
                    "tokens": {"input_tokens": 70},
                },
            },
        },
    ]
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    assert acc.usage == Usage(input_tokens=5, output_tokens=9)
    assert (acc.provider, acc.response_id) == ("cohere", "c1")


def test_ollama_final_line_and_unknown_prompt() -> None:
    """Ollama: counters come on the done line; a missing prompt_eval_count is flagged unknown."""
    lines = [
        b'{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":"H"},"done":false}\n',
        b'{"model":"llama3.2","created_at":"t","message":{"role":"assistant","content":""},"done":true,'
        b'"done_reason":"stop","eval_count":12}\n',
    ]
    acc = StreamAccumulator()
    for line in lines:
        acc.add(line)
    assert acc.usage == Usage(output_tokens=12)
    assert acc.unknown_fields == ("input_tokens",)
    assert (acc.provider, acc.api, acc.model) == ("ollama", "ollama.chat", "llama3.2")


def test_done_blank_and_comments_are_skipped() -> None:
    """[DONE], blank lines, SSE comments and event: lines are skipped and not counted."""
    acc = StreamAccumulator()
    for text in ["data: [DONE]", "[DONE]", "", "   ", ": keep-alive", "event: ping", b"data: [DONE]"]:
        acc.add(text)
    assert acc.chunks == 0
    assert acc.usage is None
    assert acc.provider is None


def test_unrecognised_first_chunk_raises() -> None:
    """A first chunk of no known framing raises UnrecognizedPayloadError naming keys, not values."""
    acc = StreamAccumulator()
    with pytest.raises(UnrecognizedPayloadError) as info:
        acc.add({"text": "secret prompt"})
    assert "secret prompt" not in str(info.value)
    with pytest.raises(UnrecognizedPayloadError):
        acc.add("not json at all")
    with pytest.raises(UnrecognizedPayloadError):
        acc.add("[1, 2]")
    with pytest.raises(UnrecognizedPayloadError):
        acc.add(42)


def test_unknown_later_chunk_is_ignored() -> None:
    """Once the framing is known, chunks of unknown event types are counted and ignored."""
    acc = StreamAccumulator()
    acc.add(_message_start(input_tokens=3, output_tokens=1))
    acc.add({"type": "some_future_event", "payload": 1})
    assert acc.chunks == 2
    assert acc.usage == Usage(input_tokens=3, output_tokens=1)


def test_provider_framing_mismatch_raises() -> None:
    """A chunk from another provider's framing raises UnrecognizedPayloadError."""
    with pytest.raises(UnrecognizedPayloadError, match="anthropic"):
        StreamAccumulator("anthropic").add(_chat_chunk())
    with pytest.raises(UnrecognizedPayloadError):
        StreamAccumulator("openai").add(_gemini_chunk(promptTokenCount=1))


def test_malformed_chunk_raises_and_keeps_state() -> None:
    """A malformed usage chunk raises MalformedUsageError and leaves the earlier usage in place."""
    acc = StreamAccumulator()
    acc.add(_chat_chunk({"prompt_tokens": 5, "completion_tokens": 1}))
    with pytest.raises(MalformedUsageError) as info:
        acc.add(_chat_chunk({"prompt_tokens": -5, "completion_tokens": 1}))
    assert info.value.field == "prompt_tokens"
    assert acc.usage == Usage(input_tokens=5, output_tokens=1)

    anthropic = StreamAccumulator()
    anthropic.add(_message_start(input_tokens=3, output_tokens=1))
    with pytest.raises(MalformedUsageError):
        anthropic.add({"type": "message_delta", "usage": {"output_tokens": "15"}})
    anthropic.add({"type": "message_delta", "usage": {"output_tokens": 15}})
    assert anthropic.usage == Usage(input_tokens=3, output_tokens=15)


MALFORMED_STREAMS = [
    pytest.param(case, id=name)
    for name, case in _ALL
    if "expected_error" in case and case.get("kind") == "stream"
] + [
    pytest.param(
        {"provider": None, "chunks": [_chat_chunk({"prompt_tokens": 1, "completion_tokens": True})],
         "expected_error": "MalformedUsageError"},
        id="inline-chat-bool",
    ),
    pytest.param(
        {"provider": "gemini", "chunks": [_gemini_chunk(promptTokenCount=4, cachedContentTokenCount=5)],
         "expected_error": "MalformedUsageError"},
        id="inline-gemini-cached-exceeds-prompt",
    ),
    pytest.param(
        {"provider": None, "chunks": [{"foo": 1}], "expected_error": "UnrecognizedPayloadError"},
        id="inline-unknown-chunk",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED_STREAMS)
def test_malformed_stream_raises(case: dict[str, Any]) -> None:
    """A stream with a malformed or unrecognisable chunk raises the named error."""
    with pytest.raises(_ERRORS[case["expected_error"]]):
        usage_from_stream(case["chunks"], case["provider"])


@pytest.mark.parametrize("bad", [{"usage": None}, 42, None])
def test_usage_from_stream_rejects_non_iterables(bad: object) -> None:
    """usage_from_stream wants an iterable of chunks: a dict or a number raises."""
    with pytest.raises(UnrecognizedPayloadError):
        usage_from_stream(bad)  # type: ignore[arg-type]


def test_bad_provider_name() -> None:
    """An invalid provider name raises ConfigurationError when the accumulator is created."""
    with pytest.raises(ConfigurationError):
        StreamAccumulator("not a provider!")


def test_repr_names_state() -> None:
    """repr() shows provider, model, chunk count and usage (no content)."""
    acc = StreamAccumulator("openai")
    acc.add(_chat_chunk({"prompt_tokens": 1, "completion_tokens": 1}))
    assert "chunks=1" in repr(acc)
    assert "provider='openai'" in repr(acc)


# --------------------------------------------------------------------------------------------
# Hostile streams


_VALUE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
)
_KEYS = st.sampled_from(
    [
        "usage", "prompt_tokens", "completion_tokens", "type", "object", "choices", "message", "delta",
        "response", "usageMetadata", "promptTokenCount", "cachedContentTokenCount", "metadata", "inputTokens",
        "outputTokens",
        "x_groq", "done", "model", "eval_count", "prompt_eval_count", "input_tokens", "output_tokens",
        "billed_units", "cache_creation", "cache_creation_input_tokens", "candidates", "messageStart",
    ]
)  # fmt: skip
_TYPES = st.sampled_from(
    ["message_start", "message_delta", "response.completed", "response.created", "message-end",
     "message-start", "chat.completion.chunk", "ping"]
)  # fmt: skip
_CHUNK = st.recursive(
    _VALUE | _TYPES,
    lambda children: st.dictionaries(_KEYS, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=15,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CHUNK, max_size=6), st.sampled_from([None, *PROVIDERS, "custom"]))
def test_hostile_chunks(chunks: list[Any], provider: str | None) -> None:
    """Arbitrary chunk sequences give a valid Usage or None, or raise a MeterlineError, nothing else."""
    acc = StreamAccumulator(provider)
    try:
        for chunk in chunks:
            acc.add(chunk)
            acc.add(json.dumps(chunk))
    except MeterlineError:
        return
    usage = acc.usage
    if usage is not None:
        Usage.from_dict(usage.to_dict())
        assert all(type(getattr(usage, name)) is int for name in USAGE_FIELDS)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=40) | st.text(max_size=40))
def test_hostile_text_chunks(text: bytes | str) -> None:
    """Arbitrary text or bytes chunks are skipped, read, or rejected with a MeterlineError."""
    with contextlib.suppress(MeterlineError):
        StreamAccumulator().add(text)
