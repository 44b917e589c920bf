"""What every provider module shares: the format names, count helpers and the state of a stream.

A provider module reads its API's usage blocks and stream chunks with these helpers and
nothing else of the package, so that each module can be read (and a new one written) on its
own. The names of the usage *formats* (the shape a usage block has, whichever provider served
it) live here too: `meterline._providers._shape` tells them apart, the registry says which
provider serves which.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from meterline._usage import TOKEN_FIELDS, Usage, check_count, checked_usage
from meterline.exceptions import MalformedUsageError, UnrecognizedPayloadError

__all__ = [
    "ANTHROPIC",
    "BEDROCK",
    "CANONICAL",
    "COHERE",
    "GEMINI",
    "LANGCHAIN",
    "NORMALISED",
    "OAI",
    "OBJECT",
    "OLLAMA",
    "PLAIN",
    "PYDANTIC_AI",
    "RESPONSES",
    "Rules",
    "StreamState",
    "describe",
    "details",
    "dump",
    "opt",
    "parse_json",
    "plain_dict",
    "plain_usage",
]

# The usage formats: what a usage block looks like, independent of the endpoint.
OAI: Final = "oai"
"""``prompt_tokens`` / ``completion_tokens``: OpenAI chat, Mistral, DeepSeek, Groq, xAI."""
RESPONSES: Final = "responses"
"""``input_tokens`` + ``input_tokens_details``: OpenAI Responses."""
ANTHROPIC: Final = "anthropic"
"""``input_tokens`` + ``cache_*_input_tokens``: Anthropic Messages (input excludes the cache)."""
PLAIN: Final = "plain"
"""Only ``input_tokens`` / ``output_tokens``: Anthropic and Responses agree on it."""
GEMINI: Final = "gemini"
"""``promptTokenCount``…: camelCase on the wire, snake_case from google-genai."""
BEDROCK: Final = "bedrock"
"""``inputTokens`` / ``outputTokens``: Bedrock Converse."""
COHERE: Final = "cohere"
"""``billed_units``: Cohere v2."""
OLLAMA: Final = "ollama"
"""``prompt_eval_count`` / ``eval_count`` at the top level."""
LANGCHAIN: Final = "langchain"
"""``input_tokens`` + ``input_token_details``: LangChain's ``UsageMetadata`` (an ``AIMessage``'s)."""
PYDANTIC_AI: Final = "pydantic_ai"
"""``cache_read_tokens`` + ``cache_audio_read_tokens``…: pydantic-ai's ``RequestUsage``/``RunUsage``."""
CANONICAL: Final = "canonical"
"""meterline's own `Usage.to_dict` form."""
NORMALISED: Final = frozenset({LANGCHAIN, PYDANTIC_AI, CANONICAL})
"""Formats already in meterline's convention, whichever provider served the call: every
provider's payloads may have them, and no API's rules apply to them."""

Rules = Callable[[Any], "Usage | None"]
"""A provider's rules: its usage block (or body) in, the canonical inclusive `Usage` out."""


OBJECT: Final = "an object or null"


def opt(block: dict[Any, Any], key: str, name: str) -> int:
    """An optional count: absent or null is 0."""
    value = block.get(key)
    return 0 if value is None else check_count(name, value)


def details(block: dict[Any, Any], key: str) -> dict[Any, Any] | None:
    """An optional sub-object: absent or null is ``None``."""
    value = block.get(key)
    if value is None or type(value) is dict:
        return value
    raise MalformedUsageError(key, value, OBJECT)


def describe(obj: object) -> str:
    """Describe a payload by type and top-level keys, never by values (no prompt text in errors)."""
    if type(obj) is dict:
        keys = [str(key)[:40] for key in list(obj)[:16]]
        more = ", ..." if len(obj) > 16 else ""
        return f"dict with keys [{', '.join(keys)}{more}]"
    return type(obj).__qualname__


def dump(obj: Any) -> dict[Any, Any]:
    """Dump a pydantic v2 model to a dict with wire (alias) names: google-genai's are camelCase."""
    try:
        data = obj.model_dump(by_alias=True, warnings=False)
    except Exception as exc:
        raise UnrecognizedPayloadError(f"cannot dump {type(obj).__qualname__} with model_dump()") from exc
    if type(data) is not dict:
        raise UnrecognizedPayloadError(f"{type(obj).__qualname__}.model_dump() did not return a dict")
    return data


def parse_json(text: str | bytes | bytearray) -> dict[Any, Any]:
    """Parse one JSON object; errors never quote the text (it may hold prompt content)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnrecognizedPayloadError(
            f"{type(text).__name__} payload of length {len(text)} is not valid JSON ({type(exc).__name__})"
        ) from None
    if type(data) is not dict:
        raise UnrecognizedPayloadError(f"JSON payload is a {type(data).__name__}, not an object")
    return data


def plain_usage(u: dict[Any, Any]) -> Usage:
    """A bare ``{input_tokens, output_tokens}`` block: with no cache fields every reading agrees."""
    return checked_usage(TOKEN_FIELDS, u.get("input_tokens", 0), 0, 0, 0, u.get("output_tokens", 0), 0, 0, 0)


def plain_dict(value: Any) -> Any:
    """A usage sub-object as a dict (SDK objects are dumped; dicts and odd values pass through)."""
    if type(value) is dict or not callable(getattr(type(value), "model_dump", None)):
        return value
    return dump(value)


class StreamState:
    """What a stream's chunks have said so far; each provider's stream handler updates it.

    `meterline.StreamAccumulator` owns one and reads it back; handlers replace ``usage`` (a
    stream's usage is never summed: see each handler), and capture the first model and
    response id seen.
    """

    __slots__ = (
        "api",
        "given",
        "model",
        "partial",
        "provider",
        "provisional",
        "reported_cost",
        "response_id",
        "rules",
        "searches",
        "service_tier",
        "unknown",
        "usage",
    )

    def __init__(self, provider: str | None, rules: Rules) -> None:
        self.provider = provider
        """The canonical provider: the one given, else the one detected (``None`` before)."""
        self.given = provider is not None
        """Whether the provider was given (else it is detected from the chunks)."""
        self.rules = rules
        """The OpenAI-shaped rules for ``provider`` (chat streams)."""
        self.usage: Usage | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.api: str | None = None
        self.unknown: tuple[str, ...] = ()
        self.partial: dict[Any, Any] | None = None
        """A stream whose usage arrives field by field (Anthropic's): the fields so far."""
        self.searches = 0
        """Google Search groundings a Gemini stream's chunks listed (billed per search)."""
        self.service_tier: str | None = None
        """The service tier a chat stream's chunks reported."""
        self.reported_cost: Decimal | None = None
        """The cost a chat stream's usage chunk stated (OpenRouter's ``usage.cost``)."""
        self.provisional = False
        """Whether ``usage`` is a count the stream reports before its end (Anthropic's
        ``message_start``, a Gemini snapshot before the finish reason), not its final one."""

    def capture(self, model: object, rid: object) -> None:
        """Keep the first model id and response id the stream reports."""
        if self.model is None and type(model) is str and model:
            self.model = model
        if self.response_id is None and type(rid) is str and rid:
            self.response_id = rid
