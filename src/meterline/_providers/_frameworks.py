"""Usage as agent frameworks report it: LangChain's ``UsageMetadata``, pydantic-ai's usage objects.

A framework that has already read the provider's usage block hands it on in its own words.
Both frameworks here use meterline's convention (input counts every input token, cache reads
and writes included; output counts reasoning), so their counts map one to one, detail fields
included; read as a bare ``{input_tokens, output_tokens}`` block they would lose the cache and
reasoning counts (cache reads priced as fresh input). meterline's own `Usage.to_dict` form is
read here too. None of these packages is imported: their objects arrive as dicts (a pydantic
model's dump, a dataclass's fields).
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import details, opt
from meterline._usage import USAGE_FIELDS, Usage, check_count, checked_usage
from meterline.exceptions import MalformedUsageError

__all__ = [
    "CANONICAL_KEYS",
    "LANGCHAIN_MESSAGES",
    "PYDANTIC_AI_KEYS",
    "canonical_usage",
    "langchain_model",
    "langchain_provider",
    "langchain_usage",
    "pydantic_ai_usage",
]

LANGCHAIN_MESSAGES: Final = frozenset({"ai", "AIMessageChunk"})
"""The ``type`` of a LangChain ``AIMessage`` / ``AIMessageChunk`` dump (its usage is ``usage_metadata``)."""

CANONICAL_KEYS: Final = frozenset(USAGE_FIELDS)
"""The fields of meterline's own `Usage.to_dict` form."""

PYDANTIC_AI_KEYS: Final = frozenset(
    {"cache_audio_read_tokens", "output_reasoning_tokens", "unmeasured_requests"}
)
"""Fields only pydantic-ai's ``RequestUsage`` and ``RunUsage`` have (every 1.x release has the first)."""

_LANGCHAIN_NAMES: Final = (
    "input_tokens",
    "input_token_details.cache_read",
    "input_token_details.cache_creation",
    "input_token_details.ephemeral_1h_input_tokens",
    "output_tokens",
    "output_token_details.reasoning",
    "input_token_details.audio",
    "output_token_details.audio",
)
_PYDANTIC_AI_NAMES: Final = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "output_reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
)


def langchain_usage(u: dict[Any, Any]) -> Usage:
    """LangChain's ``UsageMetadata``: ``input_tokens`` is the sum of every input type.

    Cache writes are ``input_token_details.cache_creation``; langchain-anthropic splits them
    by lifetime into ``ephemeral_5m_input_tokens`` and ``ephemeral_1h_input_tokens`` and then
    sets ``cache_creation`` to 0 (so as not to count them twice): the split is summed then.
    """
    i = check_count("input_tokens", u.get("input_tokens"))
    o = check_count("output_tokens", u.get("output_tokens"))
    cache_read = cache_write = one_hour = audio_in = reasoning = audio_out = 0
    itd = details(u, "input_token_details")
    if itd is not None:
        cache_read = opt(itd, "cache_read", _LANGCHAIN_NAMES[1])
        cache_write = opt(itd, "cache_creation", _LANGCHAIN_NAMES[2])
        five_minutes = opt(itd, "ephemeral_5m_input_tokens", "input_token_details.ephemeral_5m_input_tokens")
        one_hour = opt(itd, "ephemeral_1h_input_tokens", _LANGCHAIN_NAMES[3])
        split = five_minutes + one_hour
        if split and cache_write and split != cache_write:
            raise MalformedUsageError(
                "input_token_details.cache_creation",
                cache_write,
                f"0, or the sum of its ephemeral_5m and ephemeral_1h split ({split})",
            )
        cache_write = cache_write or split
        audio_in = opt(itd, "audio", _LANGCHAIN_NAMES[6])
    otd = details(u, "output_token_details")
    if otd is not None:
        reasoning = opt(otd, "reasoning", _LANGCHAIN_NAMES[5])
        audio_out = opt(otd, "audio", _LANGCHAIN_NAMES[7])
    return checked_usage(
        _LANGCHAIN_NAMES, i, cache_read, cache_write, one_hour, o, reasoning, audio_in, audio_out
    )


def langchain_model(body: dict[Any, Any]) -> str | None:
    """The model an ``AIMessage`` reports in its ``response_metadata`` (``model_name`` or ``model``)."""
    metadata = body.get("response_metadata")
    if type(metadata) is not dict:
        return None
    model = metadata.get("model_name") or metadata.get("model")
    return model if type(model) is str and model else None


def langchain_provider(body: dict[Any, Any]) -> str | None:
    """The provider name an ``AIMessage`` reports (``response_metadata.model_provider``), unchecked."""
    metadata = body.get("response_metadata")
    provider = metadata.get("model_provider") if type(metadata) is dict else None
    return provider if type(provider) is str and provider else None


def pydantic_ai_usage(u: dict[Any, Any]) -> Usage | None:
    """pydantic-ai's ``RequestUsage`` or ``RunUsage``; ``None`` when some request went unmeasured.

    Its counts are meterline's, field for field; reasoning is ``output_reasoning_tokens``
    (older releases keep it in ``details["reasoning_tokens"]``). A non-zero
    ``unmeasured_requests`` makes every count a lower bound, so nothing is claimed as exact.
    """
    if opt(u, "unmeasured_requests", "unmeasured_requests"):
        return None
    reasoning = opt(u, "output_reasoning_tokens", _PYDANTIC_AI_NAMES[5])
    extra = details(u, "details")
    if not reasoning and extra is not None:
        reasoning = opt(extra, "reasoning_tokens", "details.reasoning_tokens")
    return checked_usage(
        _PYDANTIC_AI_NAMES,
        u.get("input_tokens", 0),
        u.get("cache_read_tokens", 0),
        u.get("cache_write_tokens", 0),
        u.get("cache_write_1h_tokens", 0),
        u.get("output_tokens", 0),
        reasoning,
        u.get("input_audio_tokens", 0),
        u.get("output_audio_tokens", 0),
    )


def canonical_usage(u: dict[Any, Any]) -> Usage:
    """The `Usage.to_dict` form of meterline itself."""
    return Usage.from_dict(u)
