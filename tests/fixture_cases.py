"""The fixture corpus (``tests/fixtures/<provider>/<case>.json``), loaded once for every test module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterline import MalformedUsageError, UnrecognizedPayloadError, Usage

FIXTURES = Path(__file__).parent / "fixtures"

ALL: list[tuple[str, dict[str, Any]]] = [
    (path.relative_to(FIXTURES).as_posix(), json.loads(path.read_text(encoding="utf-8")))
    for path in sorted(FIXTURES.glob("*/*.json"))
]
"""(relative path, case) for every fixture file."""

ERRORS = {"MalformedUsageError": MalformedUsageError, "UnrecognizedPayloadError": UnrecognizedPayloadError}
"""The error classes a malformed fixture may name."""

FIXTURE_APIS = {
    ("openai", "chat"): "openai.chat",
    ("openai", "responses"): "openai.responses",
    ("openai", "embeddings"): "openai.embeddings",
    ("mistral_ai", "chat"): "mistral.chat",
    ("deepseek", "chat"): "deepseek.chat",
    ("groq", "chat"): "groq.chat",
    ("x_ai", "chat"): "xai.chat",
    ("anthropic", "messages"): "anthropic.messages",
    ("gcp.gemini", "generate_content"): "gemini.generate_content",
    ("aws.bedrock", "converse"): "bedrock.converse",
    ("cohere", "chat_v2"): "cohere.chat",
    ("ollama", "chat"): "ollama.chat",
    ("ollama", "generate"): "ollama.generate",
    ("openrouter", "chat"): "openai.chat",
    ("azure.ai.openai", "chat"): "openai.chat",
    ("gcp.vertex_ai", "generate_content"): "gemini.generate_content",
    ("gcp.vertex_ai", "messages"): "anthropic.messages",
    ("aws.bedrock", "messages"): "anthropic.messages",
    ("vllm", "chat"): "openai.chat",
    ("llama.cpp", "chat"): "openai.chat",
    ("lmstudio", "chat"): "openai.chat",
    ("together", "chat"): "openai.chat",
    ("fireworks", "chat"): "openai.chat",
}
"""Fixture (provider, api) -> the `Extracted.api` / `StreamAccumulator.api` it must report."""


def valid(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, case) for the valid cases of one kind (``response`` or ``stream``)."""
    return [(name, case) for name, case in ALL if case.get("kind") == kind and "expected_error" not in case]


def cases(kind: str, *, detectable_only: bool = False) -> list[Any]:
    """Parametrised valid cases of one kind, named by their file."""
    return [
        pytest.param(case, id=name) for name, case in valid(kind) if case["detectable"] or not detectable_only
    ]


def malformed(kind: str) -> list[Any]:
    """Parametrised cases of one kind that must raise their ``expected_error``."""
    return [
        pytest.param(case, id=name)
        for name, case in ALL
        if "expected_error" in case and case.get("kind") == kind
    ]


def expected(case: dict[str, Any]) -> Usage | None:
    """The usage a case must normalise to."""
    return None if case["expected"] is None else Usage.from_dict(case["expected"])
