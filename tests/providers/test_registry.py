"""The provider registry: OpenTelemetry names, aliases, custom names and per-provider normalisers."""

from __future__ import annotations as _annotations

from typing import Any

import pytest

from meterline._providers import (
    KNOWN_PROVIDERS,
    PROVIDERS,
    canonical_provider,
    normalizer_for,
)
from meterline._usage import Usage
from meterline.exceptions import (
    ConfigurationError,
)


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


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("OpenAI", "openai"),
        ("anthropic", "anthropic"),
        ("google", "gcp.gemini"),
        ("Gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("bedrock", "aws.bedrock"),
        ("AWS", "aws.bedrock"),
        ("mistral", "mistral_ai"),
        ("mistralai", "mistral_ai"),
        ("xai", "x_ai"),
        ("x-ai", "x_ai"),
        ("grok", "x_ai"),
        ("azure", "azure.ai.openai"),
        (" groq ", "groq"),
        ("my-llm.internal_1", "my-llm.internal_1"),
        (None, None),
    ],
)
def test_canonical_provider(alias: str | None, canonical: str | None) -> None:
    """Aliases map to OTel provider names case-insensitively; custom names pass through lower-cased."""
    assert canonical_provider(alias) == canonical


@pytest.mark.parametrize("bad", ["", "  ", "has space", "ünïcode", "-leading", "x" * 65, 42])
def test_canonical_provider_rejects(bad: object) -> None:
    """An invalid provider name raises ConfigurationError listing the accepted names."""
    with pytest.raises(ConfigurationError, match="openai"):
        canonical_provider(bad)  # type: ignore[arg-type]


def test_provider_lists() -> None:
    """PROVIDERS are the ten OTel names meterline has rules for, all canonical."""
    assert len(PROVIDERS) == 10
    assert set(PROVIDERS) <= set(KNOWN_PROVIDERS)
    assert all(canonical_provider(name) == name for name in KNOWN_PROVIDERS)


def test_normalizer_for() -> None:
    """normalizer_for(provider) returns a function applying that provider's rules."""
    body = _chat(
        {
            "prompt_tokens": 32,
            "completion_tokens": 9,
            "total_tokens": 41,
            "completion_tokens_details": {"reasoning_tokens": 94},
        }
    )
    assert normalizer_for("xai")(body).usage == Usage(input_tokens=32, output_tokens=103, reasoning_tokens=94)
    assert normalizer_for(None)({"prompt_tokens": 1, "completion_tokens": 0}).usage == Usage(input_tokens=1)
    with pytest.raises(ConfigurationError):
        normalizer_for("bad name")
