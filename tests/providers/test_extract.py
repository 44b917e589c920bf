"""Specification of `meterline._normalize` and `meterline._providers`: provider payloads -> `Usage`."""

from __future__ import annotations as _annotations

import json
import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline._providers import (
    APIS,
    PROVIDERS,
    Extracted,
    extract,
    model_from,
    usage_from,
)
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import (
    ConfigurationError,
    MalformedUsageError,
    MeterlineError,
    UnrecognizedPayloadError,
)
from tests import fixture_cases

RESPONSES = fixture_cases.cases("response")

DETECTABLE = fixture_cases.cases("response", detectable_only=True)

MALFORMED = fixture_cases.malformed("response")

_RESPONSE_CASES = fixture_cases.valid("response")

_ERRORS = fixture_cases.ERRORS

FIXTURE_APIS = fixture_cases.FIXTURE_APIS

_expected = fixture_cases.expected


@pytest.mark.parametrize("case", RESPONSES)
def test_fixture_usage_with_provider(case: dict[str, Any]) -> None:
    """Every recorded response normalises to its expected usage under its provider's rules."""
    assert usage_from(case["payload"], case["provider"]) == _expected(case)


@pytest.mark.parametrize("case", DETECTABLE)
def test_fixture_usage_detected(case: dict[str, Any]) -> None:
    """A response whose body reveals its provider normalises correctly without provider=."""
    assert usage_from(case["payload"]) == _expected(case)


@pytest.mark.parametrize("case", DETECTABLE)
def test_fixture_provider_detected(case: dict[str, Any]) -> None:
    """Auto-detection labels a detectable response with the fixture's provider."""
    assert extract(case["payload"]).provider == case["provider"]


@pytest.mark.parametrize("case", RESPONSES)
def test_fixture_extract(case: dict[str, Any]) -> None:
    """extract() reports the served model from the body, the usage and the unknown fields."""
    found = extract(case["payload"], case["provider"])
    assert found.model == case["model"]
    assert model_from(case["payload"]) == case["model"]
    assert found.usage == _expected(case)
    assert found.provider == case["provider"]
    assert found.api == FIXTURE_APIS[case["provider"], case["api"]]
    assert found.api in APIS
    assert found.unknown_fields == tuple(case.get("expected_unknown_fields", ()))
    stated = case.get("expected_reported_cost")
    assert found.reported_cost == (None if stated is None else Decimal(stated))


@pytest.mark.parametrize("case", RESPONSES)
def test_fixture_json_text(case: dict[str, Any]) -> None:
    """The JSON text of a response, as str, bytes or bytearray, normalises like the parsed dict."""
    text = json.dumps(case["payload"])
    expected = _expected(case)
    assert usage_from(text, case["provider"]) == expected
    assert usage_from(text.encode(), case["provider"]) == expected
    assert usage_from(bytearray(text.encode()), case["provider"]) == expected


@pytest.mark.parametrize("case", MALFORMED)
def test_fixture_malformed_raises(case: dict[str, Any]) -> None:
    """A malformed response raises the error its fixture names, with or without provider=."""
    error = _ERRORS[case["expected_error"]]
    with pytest.raises(error):
        usage_from(case["payload"], case["provider"])
    with pytest.raises(error):
        extract(case["payload"], case["provider"])
    if case["provider"] is not None and case["detectable"]:
        with pytest.raises(error):
            usage_from(case["payload"])


def test_fixture_corpus_is_loaded() -> None:
    """The fixture corpus is found (the parametrized tests above are not silently empty)."""
    assert RESPONSES
    assert MALFORMED


_OPENAI_COMPATIBLE = {
    "mistral_ai",
    "deepseek",
    "groq",
    "x_ai",
    "openrouter",
    "azure.ai.openai",
    "vllm",
    "llama.cpp",
    "lmstudio",
    "together",
    "fireworks",
}


def _sdk_response(case: dict[str, Any]) -> Any:
    """Build the provider SDK's response object from a fixture body, or None if there is none."""
    provider, api, payload = case["provider"], case["api"], case["payload"]
    if api == "chat" and provider == "openai":
        from openai.types.chat import ChatCompletion

        return ChatCompletion.model_validate(payload)
    if api == "chat" and provider in _OPENAI_COMPATIBLE:
        # The OpenAI SDK pointed at another provider: it builds responses leniently (construct),
        # so provider-specific values (Groq's service_tier "on_demand") and extra keys survive.
        from openai.types.chat import ChatCompletion

        return ChatCompletion.construct(**payload)
    if provider == "openai" and api == "responses":
        from openai.types.responses import Response

        return Response.model_validate(payload)
    if provider == "openai" and api == "embeddings":
        from openai.types import CreateEmbeddingResponse

        return CreateEmbeddingResponse.model_validate(payload)
    if provider == "anthropic":
        from anthropic.types import Message

        return Message.model_validate(payload)
    if provider == "gcp.gemini":
        from google.genai.types import GenerateContentResponse

        return GenerateContentResponse.model_validate(payload)
    return None


def _has_sdk(case: dict[str, Any]) -> bool:
    provider, api = case["provider"], case["api"]
    return (
        provider in {"anthropic", "gcp.gemini"}
        or (provider == "openai" and api in {"chat", "responses", "embeddings"})
        or (provider in _OPENAI_COMPATIBLE and api == "chat")
    )


SDK_RESPONSES = [pytest.param(case, id=name) for name, case in _RESPONSE_CASES if _has_sdk(case)]


@pytest.mark.parametrize("case", SDK_RESPONSES)
def test_sdk_response_object(case: dict[str, Any]) -> None:
    """The SDK's response object (openai, anthropic, google-genai) gives the same usage and model."""
    obj = _sdk_response(case)
    found = extract(obj, case["provider"])
    assert found.usage == _expected(case)
    assert found.model == case["model"]
    if case["detectable"]:
        assert usage_from(obj) == _expected(case)


@pytest.mark.parametrize("case", SDK_RESPONSES)
def test_sdk_usage_object(case: dict[str, Any]) -> None:
    """The SDK's usage object alone gives the same usage, but for tool calls the body lists outside it."""
    obj = _sdk_response(case)
    usage_obj = getattr(obj, "usage", None) or getattr(obj, "usage_metadata", None)
    if usage_obj is None:
        assert case["expected"] is None
        return
    expected = _expected(case)
    if expected is not None and (case["provider"] == "gcp.gemini" or case["api"] == "responses"):
        # Gemini's groundings and the Responses API's tool calls are listed outside the block.
        expected = replace(expected, web_search_requests=0, file_search_requests=0, code_execution_requests=0)
    assert usage_from(usage_obj, case["provider"]) == expected


def _chat(usage: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [],
        "usage": usage,
        **extra,
    }


def _u(**counts: int) -> Usage:
    return Usage(**counts)


INLINE = [
    pytest.param(
        _chat(
            {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920},
            }
        ),
        None,
        _u(input_tokens=2006, cache_read_tokens=1920, output_tokens=300),
        id="openai-cached-subset",
    ),
    pytest.param(
        _chat(
            {
                "prompt_tokens": 9657,
                "completion_tokens": 78,
                "total_tokens": 9735,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 9654},
            }
        ),
        "openai",
        _u(input_tokens=9657, cache_write_tokens=9654, output_tokens=78),
        id="openai-cache-write-subset",
    ),
    pytest.param(
        _chat(
            {
                "prompt_tokens": 50,
                "completion_tokens": 900,
                "total_tokens": 950,
                "prompt_tokens_details": None,
                "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": None},
            }
        ),
        None,
        _u(input_tokens=50, output_tokens=900, reasoning_tokens=640),
        id="openai-reasoning-subset-null-details",
    ),
    pytest.param(
        _chat(
            {
                "prompt_tokens": 32,
                "completion_tokens": 9,
                "total_tokens": 135,
                "completion_tokens_details": {"reasoning_tokens": 94},
            },
            model="grok-3-mini",
        ),
        "xai",
        _u(input_tokens=32, output_tokens=103, reasoning_tokens=94),
        id="xai-reasoning-additive",
    ),
    pytest.param(
        _chat(
            {
                "prompt_tokens": 32,
                "completion_tokens": 9,
                "total_tokens": 135,
                "completion_tokens_details": {"reasoning_tokens": 94},
            },
            model="grok-3-mini",
        ),
        None,
        _u(input_tokens=32, output_tokens=103, reasoning_tokens=94),
        id="xai-detected-by-total",
    ),
    pytest.param(
        _chat(
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "total_tokens": 105,
                "prompt_cache_hit_tokens": 64,
                "prompt_cache_miss_tokens": 36,
                "prompt_tokens_details": {"cached_tokens": 64},
            },
            model="deepseek-chat",
        ),
        None,
        _u(input_tokens=100, cache_read_tokens=64, output_tokens=5),
        id="deepseek-hit-not-double-counted",
    ),
    pytest.param(
        {
            "object": "list",
            "data": [],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        },
        None,
        _u(input_tokens=8),
        id="openai-embeddings",
    ),
    pytest.param(
        {
            "id": "resp_1",
            "object": "response",
            "model": "gpt-5-2025-08-07",
            "output": [],
            "usage": {
                "input_tokens": 3438,
                "input_tokens_details": {"cached_tokens": 3423, "cache_write_tokens": 12},
                "output_tokens": 40,
                "output_tokens_details": {"reasoning_tokens": 32},
                "total_tokens": 3478,
            },
        },
        None,
        _u(
            input_tokens=3438,
            cache_read_tokens=3423,
            cache_write_tokens=12,
            output_tokens=40,
            reasoning_tokens=32,
        ),
        id="responses-inclusive",
    ),
    pytest.param(
        {
            "id": "msg_1",
            "type": "message",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 1000,
                "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
                "output_tokens": 50,
                "output_tokens_details": {"thinking_tokens": 30},
            },
        },
        None,
        _u(
            input_tokens=1110,
            cache_read_tokens=1000,
            cache_write_tokens=100,
            cache_write_1h_tokens=40,
            output_tokens=50,
            reasoning_tokens=30,
        ),
        id="anthropic-cache-added-back",
    ),
    pytest.param(
        {
            "candidates": [],
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc",
            "usageMetadata": {
                "promptTokenCount": 20,
                "cachedContentTokenCount": 8,
                "candidatesTokenCount": 151,
                "thoughtsTokenCount": 382,
                "toolUsePromptTokenCount": 7,
                "totalTokenCount": 560,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 15},
                    {"modality": "AUDIO", "tokenCount": 5},
                ],
            },
        },
        None,
        _u(
            input_tokens=27,
            cache_read_tokens=8,
            output_tokens=533,
            reasoning_tokens=382,
            audio_input_tokens=5,
        ),
        id="gemini-thoughts-and-tool-use",
    ),
    pytest.param(
        {"usage_metadata": {"prompt_token_count": 20, "candidates_token_count": 3, "total_token_count": 23}},
        None,
        _u(input_tokens=20, output_tokens=3),
        id="gemini-snake-case",
    ),
    pytest.param(
        {
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": 12,
                "outputTokens": 7,
                "totalTokens": 2019,
                "cacheReadInputTokens": 1000,
                "cacheWriteInputTokens": 1000,
                "cacheDetails": [{"ttl": "1h", "inputTokens": 600}, {"ttl": "5m", "inputTokens": 400}],
            },
            "metrics": {"latencyMs": 100},
        },
        None,
        _u(
            input_tokens=2012,
            cache_read_tokens=1000,
            cache_write_tokens=1000,
            cache_write_1h_tokens=600,
            output_tokens=7,
        ),
        id="bedrock-cache-added-back",
    ),
    pytest.param(
        {
            "id": "c1",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": []},
            "usage": {
                "billed_units": {"input_tokens": 5, "output_tokens": 418},
                "tokens": {"input_tokens": 71, "output_tokens": 418},
            },
        },
        None,
        _u(input_tokens=5, output_tokens=418),
        id="cohere-billed-units",
    ),
    pytest.param(
        {
            "model": "llama3.2",
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "hi"},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 26,
            "eval_count": 290,
        },
        None,
        _u(input_tokens=26, output_tokens=290),
        id="ollama-final",
    ),
    pytest.param(
        _chat(
            {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "queue_time": 0.01},
            x_groq={"id": "req_1"},
        ),
        None,
        _u(input_tokens=10, output_tokens=2),
        id="groq-openai-semantics",
    ),
    pytest.param(
        {"prompt_tokens": 3, "completion_tokens": 4}, None, _u(input_tokens=3, output_tokens=4), id="bare-oai"
    ),
    pytest.param(
        {"input_tokens": 3, "output_tokens": 4}, None, _u(input_tokens=3, output_tokens=4), id="bare-plain"
    ),
    pytest.param(
        {
            "input_tokens": 3,
            "output_tokens": 4,
            "cache_read_input_tokens": 10,
            "cache_creation_input_tokens": None,
        },
        None,
        _u(input_tokens=13, cache_read_tokens=10, output_tokens=4),
        id="bare-anthropic",
    ),
    pytest.param(
        {"promptTokenCount": 3, "candidatesTokenCount": 4},
        None,
        _u(input_tokens=3, output_tokens=4),
        id="bare-gemini",
    ),
    pytest.param(
        {"inputTokens": 3, "outputTokens": 4}, None, _u(input_tokens=3, output_tokens=4), id="bare-bedrock"
    ),
    pytest.param(
        {
            "type": "response.completed",
            "sequence_number": 9,
            "response": {
                "object": "response",
                "model": "gpt-5",
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": 6,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            },
        },
        None,
        _u(input_tokens=5, output_tokens=6),
        id="responses-terminal-event",
    ),
    pytest.param(
        {
            "metadata": {
                "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
                "metrics": {"latencyMs": 1},
            }
        },
        None,
        _u(input_tokens=3, output_tokens=4),
        id="bedrock-stream-metadata-event",
    ),
]


@pytest.mark.parametrize(("payload", "provider", "expected"), INLINE)
def test_inline_case(payload: dict[str, Any], provider: str | None, expected: Usage) -> None:
    """Each provider's inclusivity rule turns its own counts into the inclusive canonical usage."""
    assert usage_from(payload, provider) == expected
    assert extract(payload, provider).usage == expected


def test_usage_null_is_none() -> None:
    """A response whose usage is null carries no usage: None, never a zero Usage."""
    assert usage_from(_chat(None)) is None
    assert extract(_chat(None)).usage is None


@pytest.mark.parametrize("reason", ["load", "unload"])
def test_ollama_load_is_a_measured_zero(reason: str) -> None:
    """An Ollama model load or unload (no counters) processed no token: a zero Usage, nothing unknown."""
    payload = {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "done": True, "done_reason": reason}
    assert usage_from(payload) == Usage()
    found = extract(payload)
    assert (found.api, found.usage, found.unknown_fields) == ("ollama.chat", Usage(), ())


def test_ollama_final_line_without_counters_is_unmeasured() -> None:
    """A final Ollama object without counters for another reason carries no usage."""
    payload = {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z", "done": True, "done_reason": "stop"}
    assert usage_from(payload) is None


def test_ollama_cached_prompt_is_flagged() -> None:
    """Ollama without prompt_eval_count reports input 0 and flags input_tokens as unknown."""
    payload = {"model": "llama3.2", "created_at": "x", "response": "hi", "done": True, "eval_count": 12}
    found = extract(payload)
    assert found.usage == Usage(output_tokens=12)
    assert found.unknown_fields == ("input_tokens",)
    assert found.api == "ollama.generate"


def test_extract_metadata() -> None:
    """extract() reports provider, served model, response id and API of a body."""
    found = extract(_chat({"prompt_tokens": 1, "completion_tokens": 1}))
    assert found == Extracted(
        provider="openai",
        model="gpt-4o-2024-08-06",
        usage=Usage(input_tokens=1, output_tokens=1),
        response_id="chatcmpl-1",
        api="openai.chat",
    )
    assert hash(found) == hash(found)


def test_extracted_is_frozen() -> None:
    """Extracted is immutable."""
    found = extract({"prompt_tokens": 1, "completion_tokens": 1})
    with pytest.raises(AttributeError):
        found.model = "x"  # type: ignore[misc]


def test_provider_label_follows_given_provider() -> None:
    """An OpenAI-shaped body given provider="mistral" is labelled mistral_ai / mistral.chat."""
    found = extract(
        _chat({"prompt_tokens": 1, "completion_tokens": 1}, model="mistral-small-2503"), "mistral"
    )
    assert (found.provider, found.api) == ("mistral_ai", "mistral.chat")


def test_custom_provider_uses_shape() -> None:
    """A custom provider name keeps its label and is normalised by the payload's shape."""
    found = extract(_chat({"prompt_tokens": 4, "completion_tokens": 2}), "SelfHosted")
    assert found.provider == "selfhosted"
    assert found.usage == Usage(input_tokens=4, output_tokens=2)
    ollama = {"model": "m", "created_at": "x", "done": True, "prompt_eval_count": 3, "eval_count": 1}
    assert usage_from(ollama, "my-box") == Usage(input_tokens=3, output_tokens=1)


def test_provider_must_fit_shape() -> None:
    """A payload that does not fit the given provider's formats raises UnrecognizedPayloadError."""
    anthropic_body = {"type": "message", "model": "claude", "usage": {"input_tokens": 1, "output_tokens": 1}}
    with pytest.raises(UnrecognizedPayloadError, match="does not fit provider 'openai'"):
        usage_from(anthropic_body, "openai")
    with pytest.raises(UnrecognizedPayloadError):
        usage_from(_chat({"prompt_tokens": 1, "completion_tokens": 1}), "gemini")


def test_provider_rules_override_detection() -> None:
    """provider="openai" applies OpenAI rules even when the totals look like xAI's."""
    body = _chat(
        {
            "prompt_tokens": 5,
            "completion_tokens": 10,
            "total_tokens": 19,
            "completion_tokens_details": {"reasoning_tokens": 4},
        }
    )
    assert usage_from(body, "openai") == Usage(input_tokens=5, output_tokens=10, reasoning_tokens=4)
    assert usage_from(body) == Usage(input_tokens=5, output_tokens=14, reasoning_tokens=4)


def test_api_forces_rules() -> None:
    """api= selects the rules for an ambiguous bare block and must fit the payload."""
    block = {"input_tokens": 3, "output_tokens": 4}
    assert extract(block).api == "unknown"
    assert extract(block, api="anthropic.messages").api == "anthropic.messages"
    assert extract(block, api="openai.responses").provider == "openai"
    with pytest.raises(UnrecognizedPayloadError):
        extract(block, api="gemini.generate_content")
    with pytest.raises(ConfigurationError):
        extract(block, api="nope.chat")


def test_unrecognised_payload_names_keys_not_values() -> None:
    """An unknown payload raises UnrecognizedPayloadError naming its keys but never its values."""
    secret = "my secret prompt text"
    with pytest.raises(UnrecognizedPayloadError) as info:
        usage_from({"prompt": secret, "answer": secret})
    assert "prompt" in str(info.value)
    assert secret not in str(info.value)
    with pytest.raises(UnrecognizedPayloadError) as info:
        usage_from('{"prompt": "' + secret + '"')  # truncated JSON
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [[1, 2], 42, None, 3.5, "[1, 2]", b"\xff\xfe", "", object(), Usage, {"usage": {}}],
    ids=["list", "int", "none", "float", "json-array", "not-utf8", "empty", "object", "class", "empty-usage"],
)
def test_unrecognised_inputs(payload: object) -> None:
    """Values that are no provider payload raise UnrecognizedPayloadError."""
    with pytest.raises(UnrecognizedPayloadError):
        usage_from(payload)


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"prompt_tokens": -1, "completion_tokens": 1}, "prompt_tokens"),
        ({"prompt_tokens": 1.0, "completion_tokens": 1}, "prompt_tokens"),
        ({"prompt_tokens": True, "completion_tokens": 1}, "prompt_tokens"),
        ({"prompt_tokens": "1", "completion_tokens": 1}, "prompt_tokens"),
        ({"prompt_tokens": None, "completion_tokens": 1}, "prompt_tokens"),
        ({"prompt_tokens": 1, "completion_tokens": math.nan}, "completion_tokens"),
        ({"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": []}, "prompt_tokens_details"),
        (
            {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 6}},
            "prompt_tokens_details.cached_tokens",
        ),
        (
            {
                "prompt_tokens": 5,
                "completion_tokens": 1,
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
            "completion_tokens_details.reasoning_tokens",
        ),
    ],
)
def test_malformed_openai_counts(usage: dict[str, Any], field: str) -> None:
    """A bad OpenAI count raises MalformedUsageError naming the provider's field and value."""
    with pytest.raises(MalformedUsageError) as info:
        usage_from(_chat(usage))
    assert info.value.field == field


def test_malformed_anthropic_split() -> None:
    """ephemeral_1h larger than cache_creation_input_tokens raises, naming the provider field."""
    usage = {
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_creation_input_tokens": 10,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 11},
    }
    with pytest.raises(MalformedUsageError) as info:
        usage_from(usage)
    assert info.value.field == "cache_creation.ephemeral_1h_input_tokens"
    assert info.value.value == 11


def test_malformed_usage_container() -> None:
    """A usage block that is neither an object nor null raises MalformedUsageError."""
    with pytest.raises(MalformedUsageError):
        usage_from(_chat([1, 2]))  # type: ignore[arg-type]


def test_usage_passes_through() -> None:
    """A canonical Usage is returned as is (not re-read as a bare block, which would drop cache fields)."""
    usage = Usage(input_tokens=10, cache_read_tokens=4, output_tokens=2)
    assert usage_from(usage) is usage
    assert extract(usage, "openai").usage is usage


def test_mapping_and_dataclass_inputs() -> None:
    """A non-dict Mapping and a dataclass instance are read like dicts."""
    from dataclasses import dataclass
    from types import MappingProxyType

    assert usage_from(MappingProxyType({"prompt_tokens": 1, "completion_tokens": 2})) == Usage(
        input_tokens=1, output_tokens=2
    )

    @dataclass
    class Block:
        input_tokens: int
        output_tokens: int

    assert usage_from(Block(3, 4)) == Usage(input_tokens=3, output_tokens=4)


def test_sdk_object_hint_labels_provider() -> None:
    """An anthropic SDK usage object is labelled anthropic even without cache fields."""
    from anthropic.types import Usage as AnthropicUsage

    found = extract(AnthropicUsage(input_tokens=5, output_tokens=6))
    assert found.provider == "anthropic"
    assert found.usage == Usage(input_tokens=5, output_tokens=6)


def test_gemini_sdk_usage_metadata() -> None:
    """A google-genai usage object (snake_case attributes) normalises with Gemini's rules."""
    from google.genai import types

    meta = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=20, candidates_token_count=151, thoughts_token_count=382, total_token_count=553
    )
    assert usage_from(meta) == Usage(input_tokens=20, output_tokens=533, reasoning_tokens=382)
    assert usage_from(meta.model_dump()) == Usage(input_tokens=20, output_tokens=533, reasoning_tokens=382)


_HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

_KEYS = st.sampled_from(
    [
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "cached_tokens",
        "reasoning_tokens",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "ephemeral_1h_input_tokens",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "promptTokensDetails",
        "inputTokens",
        "outputTokens",
        "cacheDetails",
        "billed_units",
        "prompt_eval_count",
        "eval_count",
        "done",
        "type",
        "object",
        "model",
        "response",
        "message",
        "x_groq",
        "metadata",
        "delta",
        "modality",
        "tokenCount",
        "prompt_cache_hit_tokens",
        "input_tokens_details",
        "output_tokens_details",
        "thinking_tokens",
    ]
)

_USAGE_LIKE = st.recursive(
    _HOSTILE,
    lambda children: st.dictionaries(_KEYS, children, max_size=6) | st.lists(children, max_size=3),
    max_leaves=20,
)


def _check_outcome(payload: object, provider: str | None = None) -> None:
    try:
        usage = usage_from(payload, provider)
        found = extract(payload, provider)
    except MeterlineError:
        return
    assert found.usage == usage
    if usage is not None:
        Usage.from_dict(usage.to_dict())  # every invariant holds
        assert all(type(getattr(usage, name)) is int for name in USAGE_FIELDS)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_hostile_random_json(payload: object) -> None:
    """Arbitrary JSON values normalise to a valid Usage or None, or raise a MeterlineError."""
    _check_outcome(payload)
    _check_outcome(json.dumps(payload))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _USAGE_LIKE, max_size=6), st.sampled_from([None, *PROVIDERS, "custom"]))
def test_hostile_usage_shaped(payload: dict[str, Any], provider: str | None) -> None:
    """Usage-shaped dicts with hostile values never raise anything but a MeterlineError."""
    _check_outcome(payload, provider)


_LEAF_PATHS = [
    (case, path)
    for _name, case in _RESPONSE_CASES
    for path in (
        ("usage",),
        ("usageMetadata",),
        ("usage", "prompt_tokens"),
        ("usage", "completion_tokens"),
        ("usage", "input_tokens"),
        ("usage", "output_tokens"),
        ("usage", "prompt_tokens_details"),
        ("usage", "completion_tokens_details"),
        ("usage", "cache_creation"),
        ("usage", "cache_read_input_tokens"),
        ("usage", "inputTokens"),
        ("usage", "billed_units"),
        ("usageMetadata", "promptTokenCount"),
        ("usageMetadata", "promptTokensDetails"),
        ("prompt_eval_count",),
    )
]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_LEAF_PATHS or [({"payload": {}, "provider": None}, ("usage",))]),
    _USAGE_LIKE,
    st.booleans(),
)
def test_hostile_mutated_fixtures(
    case_path: tuple[dict[str, Any], tuple[str, ...]], value: object, drop: bool
) -> None:
    """Real bodies with one field replaced or deleted never raise anything but a MeterlineError."""
    case, path = case_path
    payload = json.loads(json.dumps(case["payload"]))
    target = payload
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):
        if drop:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    _check_outcome(payload, case["provider"])
    _check_outcome(payload)


@pytest.mark.parametrize("bad", [False, True, 0.0, 1.0, "", "3", [], {}])
@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("prompt_tokens_details", "cached_tokens"),
        ("prompt_tokens_details", "cache_write_tokens"),
        ("prompt_tokens_details", "audio_tokens"),
        ("completion_tokens_details", "reasoning_tokens"),
        ("completion_tokens_details", "audio_tokens"),
    ],
)
def test_falsy_wrong_types_in_details_are_refused(where: str, key: str, bad: object) -> None:
    """A detail count that is a bool, float, str or container is refused, even when falsy."""
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, where: {key: bad}}
    with pytest.raises(MalformedUsageError, match=key):
        usage_from({"object": "chat.completion", "model": "gpt-4o", "usage": usage})


def test_a_gemini_body_with_a_stray_null_usage_is_read_as_gemini() -> None:
    """usage_from and extract agree on a Gemini body that also carries "usage": null (found by hypothesis)."""
    body = {
        "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
        "usage": None,
    }
    expected = Usage(input_tokens=12, output_tokens=3)
    assert usage_from(body) == expected
    assert extract(body).usage == expected
    assert extract(body, "gcp.gemini").usage == expected
