"""The registry of providers: their names, aliases and price-data ids, and which APIs and formats they serve.

A provider name says which *format flavour* a payload follows (OpenTelemetry: the provider
name "acts as a discriminator that identifies the GenAI telemetry format flavor"), so it
selects the normalisation rules: the same field name ``input_tokens`` means "uncached only"
for Anthropic and "everything" for OpenAI Responses.

Custom names are allowed, for self-hosted models priced by an override table: they pass
through `canonical_provider` unchanged (lower-cased), and their payloads are read by shape.

Adding a provider: a module of its own with its usage rules and stream framing (a provider
whose API is OpenAI-compatible needs none: `_openai` reads it), and its lines here.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from meterline._providers._anthropic import messages_event, messages_usage, reduce_messages_event
from meterline._providers._bedrock import converse_event, converse_usage, reduce_converse_event
from meterline._providers._cohere import cohere_event, cohere_usage, reduce_cohere_event
from meterline._providers._frameworks import canonical_usage, langchain_usage, pydantic_ai_usage
from meterline._providers._gemini import gemini_chunk, gemini_usage, reduce_gemini_chunk
from meterline._providers._ollama import ollama_line, ollama_usage, reduce_ollama_line
from meterline._providers._openai import (
    chat_auto,
    chat_chunk,
    chat_deepseek,
    chat_openai,
    chat_xai,
    reduce_chat_chunk,
    reduce_responses_event,
    responses_event,
    responses_usage,
)
from meterline._providers._rules import (
    ANTHROPIC,
    BEDROCK,
    CANONICAL,
    COHERE,
    GEMINI,
    LANGCHAIN,
    NORMALISED,
    OAI,
    OLLAMA,
    PLAIN,
    PYDANTIC_AI,
    RESPONSES,
    Rules,
    StreamState,
    plain_usage,
)
from meterline.exceptions import ConfigurationError

__all__ = [
    "ACCEPTS",
    "ALL_FORMATS",
    "APIS",
    "API_FORMAT",
    "API_PROVIDER",
    "FORMAT_API",
    "FORMAT_PROVIDER",
    "FORMAT_RULES",
    "FRAMINGS",
    "FRAMING_API",
    "FRAMING_PROVIDER",
    "KNOWN_PROVIDERS",
    "PLAIN_API",
    "PRICE_DATA_IDS",
    "PROVIDERS",
    "PROVIDER_FRAMINGS",
    "SDK_PROVIDERS",
    "SELF_HOSTED",
    "Handler",
    "Reducer",
    "api_rules",
    "canonical_provider",
    "provider_of_price_data",
    "rules_for",
]

Handler = Callable[[StreamState, dict[Any, Any]], None]
"""Takes one parsed stream chunk of a known framing into the stream's state."""
Reducer = Callable[[StreamState, Any], "dict[Any, Any] | None"]
"""An SDK event object -> the dict its handler needs, or ``None`` when it carries nothing.

Dumping a pydantic event costs tens of microseconds; most chunks carry no usage, so each
reducer reads one or two attributes first and dumps only what matters."""


# --------------------------------------------------------------------------------------------
# Names


PROVIDERS: Final = (
    "openai",
    "anthropic",
    "gcp.gemini",
    "aws.bedrock",
    "mistral_ai",
    "cohere",
    "deepseek",
    "groq",
    "x_ai",
    "ollama",
)
"""The providers whose payloads meterline normalises with provider-specific rules (OTel values)."""


KNOWN_PROVIDERS: Final = (
    *PROVIDERS,
    "azure.ai.openai",
    "azure.ai.inference",
    "gcp.vertex_ai",
    "gcp.gen_ai",
)
"""`PROVIDERS` plus the other well-known OTel values that serve one of their formats."""


_ALIASES: Final[dict[str, str]] = {
    **{name: name for name in KNOWN_PROVIDERS},
    # OpenAI
    "open_ai": "openai",
    "open-ai": "openai",
    # Azure OpenAI stays its own provider (different prices, same format).
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure.openai": "azure.ai.openai",
    # Google
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google-genai": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google.genai": "gcp.gemini",
    "google-gla": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "google_vertex": "gcp.vertex_ai",
    # AWS
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "aws-bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock-runtime": "aws.bedrock",
    # Mistral
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral-ai": "mistral_ai",
    "mistral.ai": "mistral_ai",
    # Cohere, DeepSeek, Groq
    "cohere_ai": "cohere",
    "cohere-ai": "cohere",
    "deepseek-ai": "deepseek",
    "deepseek_ai": "deepseek",
    # xAI: the deprecated gen_ai.system value is "xai", the provider value "x_ai".
    "xai": "x_ai",
    "x-ai": "x_ai",
    "x.ai": "x_ai",
    "grok": "x_ai",
}


PRICE_DATA_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "together": "together",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
    "openrouter": "openrouter",
}
"""OpenTelemetry provider names -> genai-prices provider ids (where genai-prices has their prices)."""


_PROVIDER_OF_PRICE_DATA: Final[Mapping[str, str]] = {
    genai: canonical for canonical, genai in reversed(tuple(PRICE_DATA_IDS.items()))
}


SELF_HOSTED: Final = frozenset({"ollama", "vllm", "llama.cpp", "lmstudio"})
"""Providers whose models run on the user's own hardware: only a price override prices them."""


def provider_of_price_data(price_data_id: str | None) -> str | None:
    """The OpenTelemetry name of a genai-prices provider id (the first one listed for it), if any."""
    return _PROVIDER_OF_PRICE_DATA.get(price_data_id or "")


_CUSTOM_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")


_cache: dict[str, str] = {}
"""Names already resolved (raw spelling -> canonical); bounded by `_CACHE_MAX`."""


_CACHE_MAX: Final = 256


def canonical_provider(name: str | None) -> str | None:
    """Return the canonical provider name for ``name``.

    Known names and aliases map to their OpenTelemetry ``gen_ai.provider.name`` value,
    case-insensitively (``"Gemini"`` and ``"google"`` give ``"gcp.gemini"``, ``"xai"`` gives
    ``"x_ai"``). Any other name that looks like an identifier (lower-case letters, digits,
    ``_``, ``.``, ``-``, at most 64 characters, after stripping and lower-casing) is a custom
    provider and is returned stripped and lower-cased.

    Args:
        name: A provider name, or ``None``.

    Returns:
        The canonical name, or ``None`` when ``name`` is ``None``.

    Raises:
        ConfigurationError: when ``name`` is not a string or not a valid provider name.
    """
    if name is None:
        return None
    found = _cache.get(name) if type(name) is str else None
    if found is not None:
        return found
    if not isinstance(name, str):
        raise ConfigurationError(
            f"provider must be a str or None, not {type(name).__name__}; known providers: "
            + ", ".join(KNOWN_PROVIDERS)
        )
    key = name.strip().lower()
    found = _ALIASES.get(key)
    if found is None:
        if _CUSTOM_NAME.fullmatch(key) is None:
            raise ConfigurationError(
                f"invalid provider name {name[:80]!r}: use one of {', '.join(KNOWN_PROVIDERS)}, or a custom "
                "name of lower-case letters, digits, '_', '.' and '-' (at most 64 characters)"
            )
        found = key
    if len(_cache) < _CACHE_MAX:
        _cache[name] = found
    return found


def provider_as_stored(value: object) -> object:
    """A provider a filter allows, as events store it: a provider name made canonical.

    Events keep the canonical name (`canonical_provider`), so a filter on ``"OpenAI"`` or
    ``"gemini"`` finds what was recorded with it (``"openai"``, ``"gcp.gemini"``). ``None``
    (events without a provider) and anything that is no provider name stay as they are
    (matching nothing else).
    """
    if type(value) is str:
        try:
            return canonical_provider(value)
        except ConfigurationError:
            return value
    return value


# --------------------------------------------------------------------------------------------
# APIs and formats


APIS: Final = (
    "openai.chat",
    "openai.completions",
    "openai.embeddings",
    "openai.responses",
    "anthropic.messages",
    "gemini.generate_content",
    "bedrock.converse",
    "mistral.chat",
    "mistral.embeddings",
    "cohere.chat",
    "deepseek.chat",
    "groq.chat",
    "xai.chat",
    "ollama.chat",
    "ollama.generate",
    "ollama.embed",
)
"""The values of `Extracted.api` (besides ``"unknown"``), accepted by ``extract(api=...)``."""


API_FORMAT: Final[dict[str, str]] = {  # the usage format of each API
    "openai.chat": OAI,
    "openai.completions": OAI,
    "openai.embeddings": OAI,
    "openai.responses": RESPONSES,
    "anthropic.messages": ANTHROPIC,
    "gemini.generate_content": GEMINI,
    "bedrock.converse": BEDROCK,
    "mistral.chat": OAI,
    "mistral.embeddings": OAI,
    "cohere.chat": COHERE,
    "deepseek.chat": OAI,
    "groq.chat": OAI,
    "xai.chat": OAI,
    "ollama.chat": OLLAMA,
    "ollama.generate": OLLAMA,
    "ollama.embed": OLLAMA,
}


API_PROVIDER: Final[dict[str, str]] = {  # who serves each API, unless told otherwise
    "openai.chat": "openai",
    "openai.completions": "openai",
    "openai.embeddings": "openai",
    "openai.responses": "openai",
    "anthropic.messages": "anthropic",
    "gemini.generate_content": "gcp.gemini",
    "bedrock.converse": "aws.bedrock",
    "mistral.chat": "mistral_ai",
    "mistral.embeddings": "mistral_ai",
    "cohere.chat": "cohere",
    "deepseek.chat": "deepseek",
    "groq.chat": "groq",
    "xai.chat": "x_ai",
    "ollama.chat": "ollama",
    "ollama.generate": "ollama",
    "ollama.embed": "ollama",
}


ALL_FORMATS: Final = frozenset(
    {OAI, RESPONSES, ANTHROPIC, PLAIN, GEMINI, BEDROCK, COHERE, OLLAMA, *NORMALISED}
)
"""Every usage format: a custom provider's payloads may have any of them."""


ACCEPTS: Final[dict[str, frozenset[str]]] = {  # the formats each known provider serves
    "openai": frozenset({OAI, RESPONSES, PLAIN}),
    "azure.ai.openai": frozenset({OAI, RESPONSES, PLAIN}),
    "azure.ai.inference": frozenset({OAI, RESPONSES, PLAIN}),
    "anthropic": frozenset({ANTHROPIC, PLAIN}),
    "gcp.gemini": frozenset({GEMINI}),
    "gcp.gen_ai": frozenset({GEMINI}),
    # Vertex AI also serves Claude (Anthropic bodies) and an OpenAI-compatible endpoint.
    "gcp.vertex_ai": frozenset({GEMINI, ANTHROPIC, OAI}),
    # Bedrock InvokeModel returns the model vendor's body (Anthropic's for Claude).
    "aws.bedrock": frozenset({BEDROCK, ANTHROPIC, PLAIN, OAI}),
    "mistral_ai": frozenset({OAI}),
    "cohere": frozenset({COHERE, PLAIN}),
    "deepseek": frozenset({OAI}),
    "groq": frozenset({OAI, RESPONSES, PLAIN}),
    "x_ai": frozenset({OAI, RESPONSES, PLAIN}),
    "ollama": frozenset({OLLAMA, OAI}),
}


FORMAT_PROVIDER: Final[dict[str, str | None]] = {  # who a payload of this format is, when nothing else says
    RESPONSES: "openai",
    ANTHROPIC: "anthropic",
    PLAIN: None,
    GEMINI: "gcp.gemini",
    BEDROCK: "aws.bedrock",
    COHERE: "cohere",
    OLLAMA: "ollama",
    LANGCHAIN: None,
    PYDANTIC_AI: None,
    CANONICAL: None,
}


FORMAT_API: Final[dict[str, str]] = {  # the API of a format served by one API only
    RESPONSES: "openai.responses",
    ANTHROPIC: "anthropic.messages",
    GEMINI: "gemini.generate_content",
    BEDROCK: "bedrock.converse",
    COHERE: "cohere.chat",
}


PLAIN_API: Final[
    dict[str | None, str]
] = {  # the API a bare {input_tokens, output_tokens} block is, by provider
    "anthropic": "anthropic.messages",
    "aws.bedrock": "anthropic.messages",
    "cohere": "cohere.chat",
    "openai": "openai.responses",
    "azure.ai.openai": "openai.responses",
    "azure.ai.inference": "openai.responses",
    "groq": "openai.responses",
    "x_ai": "openai.responses",
}


SDK_PROVIDERS: Final[dict[str, str]] = {
    "anthropic": "anthropic",
    "groq": "groq",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "ollama": "ollama",
}
"""Top-level SDK package -> provider, for SDK objects (the OpenAI SDK serves many providers)."""


FORMAT_RULES: Final[dict[str, Rules]] = {  # the rules that read each format
    OAI: chat_auto,
    RESPONSES: responses_usage,
    ANTHROPIC: messages_usage,
    PLAIN: plain_usage,
    GEMINI: gemini_usage,
    BEDROCK: converse_usage,
    COHERE: cohere_usage,
    OLLAMA: ollama_usage,
    LANGCHAIN: langchain_usage,
    PYDANTIC_AI: pydantic_ai_usage,
    CANONICAL: canonical_usage,
}


def rules_for(family: str, provider: str | None) -> Rules:
    """The rules that read ``family``'s usage blocks as ``provider`` means them."""
    if family == OAI:
        if provider == "deepseek":
            return chat_deepseek
        if provider == "x_ai":
            return chat_xai
        if provider is None or provider not in ACCEPTS:
            return chat_auto
        return chat_openai
    return FORMAT_RULES[family]


def api_rules(api: str) -> Rules:
    """The rules of ``api`` (one of `APIS`)."""
    if api == "deepseek.chat":
        return chat_deepseek
    if api == "xai.chat":
        return chat_xai
    family = API_FORMAT[api]
    return chat_openai if family == OAI else FORMAT_RULES[family]


FRAMINGS: Final[dict[str, tuple[Handler, Reducer]]] = {  # each streaming framing's handler and reducer
    "chat": (chat_chunk, reduce_chat_chunk),
    "responses": (responses_event, reduce_responses_event),
    "anthropic": (messages_event, reduce_messages_event),
    "gemini": (gemini_chunk, reduce_gemini_chunk),
    "bedrock": (converse_event, reduce_converse_event),
    "cohere": (cohere_event, reduce_cohere_event),
    "ollama": (ollama_line, reduce_ollama_line),
}


FRAMING_PROVIDER: Final[dict[str, str]] = {  # who a stream of this framing is, when nothing else says
    "chat": "openai",
    "responses": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "ollama": "ollama",
}


FRAMING_API: Final[dict[str, str]] = {  # the API of a framing served by one API only
    "responses": "openai.responses",
    "anthropic": "anthropic.messages",
    "gemini": "gemini.generate_content",
    "bedrock": "bedrock.converse",
    "cohere": "cohere.chat",
}


PROVIDER_FRAMINGS: Final[dict[str | None, tuple[str, ...]]] = {
    "openai": ("chat", "responses"),
    "azure.ai.openai": ("chat", "responses"),
    "azure.ai.inference": ("chat", "responses"),
    "anthropic": ("anthropic",),
    "gcp.gemini": ("gemini",),
    "gcp.gen_ai": ("gemini",),
    "gcp.vertex_ai": ("gemini", "anthropic", "chat"),
    "aws.bedrock": ("bedrock", "anthropic", "chat"),
    "mistral_ai": ("chat",),
    "cohere": ("cohere",),
    "deepseek": ("chat",),
    "groq": ("chat", "responses"),
    "x_ai": ("chat", "responses"),
    "ollama": ("ollama", "chat"),
}
"""Framings each known provider streams; custom providers may stream any of them."""
