"""The shape detection, in one place: which usage format a payload (or a stream chunk) has.

A payload is recognised by its *shape*: a few cheap key checks, no regex, no pydantic. The
order of the checks matters (an OpenAI Responses block and an Anthropic one share
``input_tokens``), so every format's signature is here, and nowhere else. A provider module
reads a format; the registry says which providers serve it.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._frameworks import CANONICAL_KEYS, LANGCHAIN_MESSAGES, PYDANTIC_AI_KEYS
from meterline._providers._rules import (
    ANTHROPIC,
    BEDROCK,
    CANONICAL,
    COHERE,
    GEMINI,
    LANGCHAIN,
    OAI,
    OBJECT,
    OLLAMA,
    PLAIN,
    PYDANTIC_AI,
    RESPONSES,
    describe,
)
from meterline.exceptions import MalformedUsageError, UnrecognizedPayloadError

__all__ = ["BODY_OBJECTS", "framing_of", "locate"]

BODY_OBJECTS: Final = frozenset({"chat.completion", "chat.completion.chunk", "text_completion", "list"})
"""Values of an OpenAI-shaped body's ``object`` field."""

_PLAIN_KEYS: Final = frozenset({"input_tokens", "output_tokens", "total_tokens"})
"""The counts of a bare block, which every reading agrees on."""


def locate(d: dict[Any, Any]) -> tuple[str, Any, dict[Any, Any]]:
    """Find the shape family, the usage block (``None`` when absent) and the body holding them.

    The body differs from ``d`` when ``d`` wraps a response (an OpenAI Responses stream event,
    an Anthropic ``message_start`` event).

    Raises:
        UnrecognizedPayloadError: when ``d`` has no known shape.
        MalformedUsageError: when ``usage`` is neither an object nor null.
    """
    if "usage" in d:
        u = d["usage"]
        if type(u) is dict:
            family = _usage_family(u, d)
            if family is not None:
                return family, u, d
            raise UnrecognizedPayloadError(f"unrecognised usage payload: {describe(d)}, usage {describe(u)}")
        if u is not None:
            raise MalformedUsageError("usage", u, OBJECT)
        for key in ("usageMetadata", "usage_metadata"):  # a Gemini body with a stray "usage": null
            if type(d.get(key)) is dict:
                return GEMINI, d[key], d
        xg = d.get("x_groq")
        if type(xg) is dict and xg.get("usage") is not None:
            # Groq streams report usage in x_groq.usage on the final chunk.
            xu = xg["usage"]
            if type(xu) is not dict:
                raise MalformedUsageError("x_groq.usage", xu, OBJECT)
            return OAI, xu, d
        family = _body_family(d)
        if family is None:
            raise UnrecognizedPayloadError(f"unrecognised usage payload: {describe(d)}")
        return family, None, d
    kind = d.get("type")
    if "usage_metadata" in d and type(kind) is str and kind in LANGCHAIN_MESSAGES:  # a LangChain AIMessage
        um = d["usage_metadata"]
        if um is not None and type(um) is not dict:
            raise MalformedUsageError("usage_metadata", um, OBJECT)
        return LANGCHAIN, um, d
    for key in ("usageMetadata", "usage_metadata"):
        if key in d:
            um = d[key]
            if um is not None and type(um) is not dict:
                raise MalformedUsageError(key, um, OBJECT)
            return GEMINI, um, d
    if "prompt_eval_count" in d or "eval_count" in d or ("done" in d and "model" in d):
        return OLLAMA, d, d
    if "prompt_tokens" in d:
        return OAI, d, d
    if "input_tokens" in d or "output_tokens" in d:
        return _io_family(d, d), d, d
    if "inputTokens" in d or "outputTokens" in d:
        return BEDROCK, d, d
    if (
        "promptTokenCount" in d
        or "prompt_token_count" in d
        or "totalTokenCount" in d
        or "total_token_count" in d
    ):
        return GEMINI, d, d
    if "billed_units" in d:
        return COHERE, d, d
    return _wrapped(d)


def _wrapped(d: dict[Any, Any]) -> tuple[str, Any, dict[Any, Any]]:
    """Locate usage in an event that wraps a response, or in a body with no usage at all."""
    t = d.get("type")
    if type(t) is str:
        inner = (
            d.get("response")
            if t.startswith("response.")
            else d.get("message")
            if t == "message_start"
            else None
        )
        if type(inner) is dict:
            return locate(inner)
        if t == "message-end":
            delta = d.get("delta")
            if type(delta) is not dict:
                raise MalformedUsageError("delta", delta, "an object")
            u = delta.get("usage")
            if u is not None and type(u) is not dict:
                raise MalformedUsageError("delta.usage", u, OBJECT)
            return COHERE, u, d
    md = d.get("metadata")
    if type(md) is dict and "usage" in md:
        # A Bedrock ConverseStream metadata event.
        u = md["usage"]
        if u is not None and type(u) is not dict:
            raise MalformedUsageError("metadata.usage", u, OBJECT)
        return BEDROCK, u, d
    family = _body_family(d)
    if family is None:
        raise UnrecognizedPayloadError(f"unrecognised usage payload: {describe(d)}")
    return family, None, d


def _usage_family(u: dict[Any, Any], d: dict[Any, Any]) -> str | None:
    if "prompt_tokens" in u:
        return OAI
    if "input_tokens" in u or "output_tokens" in u:
        return _io_family(u, d)
    if "inputTokens" in u or "outputTokens" in u:
        return BEDROCK
    if "billed_units" in u or "tokens" in u:
        return COHERE
    return None


def _io_family(u: dict[Any, Any], d: dict[Any, Any]) -> str:
    """Tell Anthropic (exclusive input) from OpenAI Responses (inclusive input) by their extra keys.

    Also the frameworks' and meterline's own forms, which share ``input_tokens``; a block with
    other counts than a bare one's, of no known form, is refused rather than read without them.
    """
    if "input_tokens_details" in u:
        return RESPONSES
    if "input_token_details" in u or "output_token_details" in u:
        return LANGCHAIN
    if not PYDANTIC_AI_KEYS.isdisjoint(u):
        return PYDANTIC_AI
    if (
        "cache_creation_input_tokens" in u
        or "cache_read_input_tokens" in u
        or "cache_creation" in u
        or "server_tool_use" in u
    ):
        return ANTHROPIC
    details = u.get("output_tokens_details")
    if type(details) is dict:
        if "thinking_tokens" in details:
            return ANTHROPIC
        if "reasoning_tokens" in details:
            return RESPONSES
    if d.get("type") == "message":
        return ANTHROPIC
    if d.get("object") == "response":
        return RESPONSES
    if u.keys() <= _PLAIN_KEYS:
        return PLAIN
    if u.keys() <= CANONICAL_KEYS:
        return CANONICAL
    unknown = sorted(str(key) for key in u if key not in _PLAIN_KEYS and "token" in str(key))
    if unknown:
        raise UnrecognizedPayloadError(
            f"unrecognised usage fields {', '.join(unknown[:8])} beside input_tokens and output_tokens:"
            " read as a bare block they would be dropped"
        )
    return PLAIN


def _body_family(d: dict[Any, Any]) -> str | None:
    """The family of a body that carries no usage block, from its other keys."""
    obj = d.get("object")
    if obj == "response":
        return RESPONSES
    if (type(obj) is str and obj in BODY_OBJECTS) or "choices" in d:
        return OAI
    if d.get("type") == "message":
        return ANTHROPIC
    if "candidates" in d or "promptFeedback" in d or "prompt_feedback" in d or "modelVersion" in d:
        return GEMINI
    if "stopReason" in d and "output" in d:
        return BEDROCK
    if "finish_reason" in d and "message" in d:
        return COHERE
    if "done_reason" in d or "done" in d:
        return OLLAMA
    return None


# --------------------------------------------------------------------------------------------
# Stream framings


MESSAGES_EVENTS: Final = frozenset(
    {"message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta",
     "content_block_stop", "ping"}
)  # fmt: skip


COHERE_EVENTS: Final = frozenset(
    {"message-start", "message-end", "content-start", "content-delta", "content-end", "tool-plan-delta",
     "tool-call-start", "tool-call-delta", "tool-call-end", "citation-start", "citation-end", "debug"}
)  # fmt: skip


CONVERSE_EVENTS: Final = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}
)


CHAT_OBJECTS: Final = frozenset({"chat.completion.chunk", "chat.completion", "text_completion"})


def framing_of(d: dict[Any, Any]) -> str | None:
    """The streaming framing a chunk belongs to (``chat``, ``responses``, ``anthropic``…), or ``None``."""
    t = d.get("type")
    if type(t) is str:
        if t.startswith("response."):
            return "responses"
        if t in MESSAGES_EVENTS:
            return "anthropic"
        if t in COHERE_EVENTS:
            return "cohere"
    obj = d.get("object")
    if (type(obj) is str and obj in CHAT_OBJECTS) or "choices" in d:
        return "chat"
    u = d.get("usage")
    if type(u) is dict and "prompt_tokens" in u:
        return "chat"
    if "usageMetadata" in d or "usage_metadata" in d or "candidates" in d or "modelVersion" in d:
        return "gemini"
    if "done" in d and ("model" in d or "created_at" in d):
        return "ollama"
    for key in d:
        if key in CONVERSE_EVENTS:
            return "bedrock"
    if "contentBlockIndex" in d or "stopReason" in d or (type(u) is dict and "inputTokens" in u):
        return "bedrock"  # an event-stream payload without its wrapper key
    if "x_groq" in d:
        return "chat"
    return None
