"""Provider names: the OpenTelemetry ``gen_ai.provider.name`` values meterline knows, and their aliases.

A provider name says which *format flavour* a payload follows (OpenTelemetry: the provider name
"acts as a discriminator that identifies the GenAI telemetry format flavor"), so it selects the
normalisation rules: the same field name ``input_tokens`` means "uncached only" for Anthropic
and "everything" for OpenAI Responses.

Custom names are allowed, for self-hosted models priced by an override table: they pass through
`canonical_provider` unchanged (lower-cased), and their payloads are normalised by shape.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from meterline.exceptions import ConfigurationError

if TYPE_CHECKING:
    from meterline._normalize import Extracted

__all__ = ["KNOWN_PROVIDERS", "PROVIDERS", "Normalizer", "canonical_provider", "normalizer_for"]

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


Normalizer = Callable[[Any], "Extracted"]
"""A function from a payload (dict, JSON text or SDK object) to an `Extracted`."""


def normalizer_for(provider: str | None) -> Normalizer:
    """Return the function that normalises payloads of ``provider``.

    Known providers get their own rules. A custom provider's payloads are normalised by
    their shape: an OpenAI-shaped payload with OpenAI rules, an Ollama-shaped one with
    Ollama rules, and so on; a payload of no known shape raises. ``None`` auto-detects.

    Args:
        provider: A provider name or alias (see `canonical_provider`), or ``None``.

    Returns:
        A callable taking one payload and returning an `Extracted`.

    Raises:
        ConfigurationError: when ``provider`` is not a valid provider name.
    """
    from meterline._normalize import extract  # noqa: PLC0415 (_normalize imports this module)

    canonical = canonical_provider(provider)

    def normalize(obj: Any) -> Extracted:
        return extract(obj, canonical)

    normalize.__name__ = f"normalize_{(canonical or 'auto').replace('.', '_').replace('-', '_')}"
    normalize.__qualname__ = normalize.__name__
    return normalize
