"""The provider response bodies the simulation fabricates, shaped like the providers' own.

Each is what the provider's API returns for one call (trimmed of long content), with the
usage block exactly as that provider reports it: OpenAI chat completions, their stream and
embeddings, Anthropic Messages, Gemini ``generateContent``, DeepSeek's reasoner and Ollama's
``/api/chat``.
"""

from __future__ import annotations as _annotations

import json
import random
from datetime import UTC, datetime
from typing import Any, Protocol

from meterline._cli._demo._product import DAY_START

__all__ = [
    "Stamper",
    "anthropic_message",
    "deepseek_reasoner",
    "gemini",
    "ollama_chat",
    "openai_chat",
    "openai_embeddings",
    "openai_stream",
]


class Stamper(Protocol):
    """What a body needs from the simulation: random draws, ids and the simulated time."""

    rng: random.Random
    """The simulation's seeded random numbers."""
    clock: float
    """Seconds since `DAY_START`."""

    def ident(self, length: int) -> str:
        """A random identifier of ``length`` letters and digits."""
        ...

    def created(self) -> int:
        """The simulated Unix time."""
        ...


def _openai_usage(prompt: int, output: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_chat(
    sim: Stamper, model: str, prompt: int, output: int, cached: int, tool: str | None
) -> dict[str, Any]:
    """An OpenAI chat completion (``POST /v1/chat/completions``)."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if tool is None:
        message["content"] = "Here is the revised section, with the figures from the brief cited inline..."
    else:
        arguments = json.dumps(
            {"language": "python", "code": "import pandas as pd\nprint(pd.read_csv('q3.csv').describe())"}
        )
        message["tool_calls"] = [
            {
                "id": f"call_{sim.ident(24)}",
                "type": "function",
                "function": {"name": tool, "arguments": arguments},
            }
        ]
    return {
        "id": f"chatcmpl-{sim.ident(29)}",
        "object": "chat.completion",
        "created": sim.created(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop" if tool is None else "tool_calls",
            }
        ],
        "usage": _openai_usage(prompt, output, cached),
        "service_tier": "default",
        "system_fingerprint": "fp_f33640a400",
    }


def openai_stream(
    sim: Stamper, model: str, prompt: int, output: int, *, include_usage: bool
) -> list[dict[str, Any]]:
    """The chunks of a streamed OpenAI chat completion, with a usage chunk only when asked for."""
    stream_id = f"chatcmpl-{sim.ident(29)}"
    created = sim.created()
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        *(({"content": text}, None) for text in ("Here is", " your", " summary", ":", " ...")),
        ({}, "stop"),
    ]
    chunks: list[dict[str, Any]] = []
    for delta, finish in deltas:
        chunk: dict[str, Any] = {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_f33640a400",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            chunk["usage"] = None
        chunks.append(chunk)
    if include_usage:
        chunks.append({**chunks[-1], "choices": [], "usage": _openai_usage(prompt, output)})
    return chunks


def openai_embeddings(sim: Stamper, model: str, inputs: int, tokens: int) -> dict[str, Any]:
    """An OpenAI embeddings response (vectors trimmed to four dimensions)."""
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(sim.rng.uniform(-0.6, 0.6), 4) for _ in range(4)],
            }
            for i in range(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def anthropic_message(
    sim: Stamper, model: str, uncached: int, cache_write: int, cache_read: int, output: int
) -> dict[str, Any]:
    """An Anthropic Messages response; ``input_tokens`` excludes cache reads and writes."""
    return {
        "id": f"msg_01{sim.ident(22)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "Plan: 1. scope the question 2. research 3. draft", "citations": None}
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": uncached,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output,
            "service_tier": "standard",
        },
    }


def gemini(
    sim: Stamper,
    model: str,
    prompt: int,
    cached: int,
    thoughts: int,
    candidates: int,
    search: str | None = None,
) -> dict[str, Any]:
    """A Gemini ``generateContent`` response; ``candidatesTokenCount`` excludes the thoughts."""
    part: dict[str, Any] = (
        {"text": "Brief: three sources agree that..."}
        if search is None
        else {"functionCall": {"name": "web_search", "args": {"query": search}}}
    )
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "thoughtsTokenCount": thoughts,
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return {
        "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": sim.ident(23),
    }


def deepseek_reasoner(
    sim: Stamper, prompt: int, cache_hit: int, output: int, reasoning: int
) -> dict[str, Any]:
    """A DeepSeek reasoner response: reasoning tokens are part of ``completion_tokens``."""
    raw = f"{sim.rng.getrandbits(128):032x}"
    return {
        "id": f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}",
        "object": "chat.completion",
        "created": sim.created(),
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The draft's figures are consistent with the sources.",
                    "reasoning_content": "Check each figure against the brief...",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": cache_hit},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
            "prompt_cache_hit_tokens": cache_hit,
            "prompt_cache_miss_tokens": prompt - cache_hit,
        },
        "system_fingerprint": "fp_393bca965e_prod0425fp8",
    }


def ollama_chat(sim: Stamper, model: str, prompt: int, output: int, latency_ms: float) -> dict[str, Any]:
    """The final line of an Ollama ``/api/chat`` response (durations in nanoseconds)."""
    total = int(latency_ms * 1_000_000)
    prompt_ns = total // 8
    return {
        "model": model,
        "created_at": datetime.fromtimestamp(DAY_START + sim.clock, tz=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "message": {"role": "assistant", "content": "1. Clarify the report format. 2. Research. 3. Draft."},
        "done_reason": "stop",
        "done": True,
        "total_duration": total,
        "load_duration": 1_334_875,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prompt_ns,
        "eval_count": output,
        "eval_duration": total - prompt_ns - 1_334_875,
    }
