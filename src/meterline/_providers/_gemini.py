"""Google's Gemini format (generateContent, on the Gemini API and Vertex AI; REST and google-genai).

The prompt includes cached tokens and excludes the tool-use prompt; candidates exclude
thoughts. Every field is optional, camelCase on the wire and snake_case from google-genai.
A stream repeats a cumulative ``usageMetadata`` snapshot: the last one wins. Google Search
groundings are counted from the candidates (`_server_tools`).
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import OBJECT, StreamState, opt, plain_dict
from meterline._providers._server_tools import gemini_searches, with_searches
from meterline._usage import MAX_COUNT, Usage, check_count, new_usage
from meterline.exceptions import MalformedUsageError

__all__ = ["gemini_chunk", "gemini_usage", "reduce_gemini_chunk"]


_GEMINI_CAMEL: Final = (
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
    "promptTokensDetails",
    "candidatesTokensDetails",
    "tokenCount",
)


_GEMINI_SNAKE: Final = (
    "prompt_token_count",
    "cached_content_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
    "total_token_count",
    "prompt_tokens_details",
    "candidates_tokens_details",
    "token_count",
)


def gemini_usage(u: dict[Any, Any]) -> Usage | None:
    """Gemini: prompt includes cached, excludes tool-use prompt; candidates exclude thoughts.

    Every field is optional. A block with no count at all is no usage (``None``).
    """
    k = _GEMINI_SNAKE if ("prompt_token_count" in u or "total_token_count" in u) else _GEMINI_CAMEL
    prompt_v, cached_v, cand_v, thoughts_v, tool_v = (
        u.get(k[0]),
        u.get(k[1]),
        u.get(k[2]),
        u.get(k[3]),
        u.get(k[4]),
    )
    if prompt_v is None and cand_v is None and thoughts_v is None and tool_v is None and u.get(k[5]) is None:
        return None
    # Each count is checked inline (no call unless it is bad, to name it): this is a hot path.
    if prompt_v is None:
        prompt = 0
    elif type(prompt_v) is int and 0 <= prompt_v <= MAX_COUNT:
        prompt = prompt_v
    else:
        prompt = check_count(k[0], prompt_v)
    cached = _gemini_count(k[1], cached_v)
    cand = _gemini_count(k[2], cand_v)
    thoughts = _gemini_count(k[3], thoughts_v)
    tool = 0 if tool_v is None else check_count(k[4], tool_v)
    if cached > prompt:
        raise MalformedUsageError(k[1], cached, f"at most {k[0]} ({prompt})")
    audio_in = _gemini_audio(u, k[6], k[8])
    if audio_in > prompt:
        raise MalformedUsageError(f"{k[6]}[AUDIO].{k[8]}", audio_in, f"at most {k[0]} ({prompt})")
    audio_out = _gemini_audio(u, k[7], k[8])
    if audio_out > cand:
        raise MalformedUsageError(f"{k[7]}[AUDIO].{k[8]}", audio_out, f"at most {k[2]} ({cand})")
    names = _GEMINI_SNAKE_NAMES if k is _GEMINI_SNAKE else _GEMINI_CAMEL_NAMES
    total_input = prompt + tool
    total_output = cand + thoughts
    if total_input > MAX_COUNT or total_output > MAX_COUNT:
        check_count(names[0], total_input)
        check_count(names[4], total_output)
    # Subsets: cached and audio input were checked against the prompt, audio output against
    # the candidates, and thoughts are part of the output by construction.
    return new_usage(total_input, cached, 0, 0, total_output, thoughts, audio_in, audio_out)


def _gemini_count(name: str, value: object) -> int:
    """An optional Gemini count: absent is 0."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    return check_count(name, value)


def _gemini_names(k: tuple[str, ...]) -> tuple[str, str, str, str, str, str, str, str]:
    """What to call each canonical field in errors, in one Gemini dialect."""
    return (
        f"{k[0]} + {k[4]}",
        k[1],
        "cache_write_tokens",
        "cache_write_1h_tokens",
        f"{k[2]} + {k[3]}",
        k[3],
        k[6],
        k[7],
    )


_GEMINI_CAMEL_NAMES: Final = _gemini_names(_GEMINI_CAMEL)


_GEMINI_SNAKE_NAMES: Final = _gemini_names(_GEMINI_SNAKE)


def _gemini_audio(u: dict[Any, Any], key: str, count_key: str) -> int:
    """Sum the AUDIO entries of a ``[{modality, tokenCount}]`` breakdown."""
    entries = u.get(key)
    if entries is None:
        return 0
    if type(entries) is not list:
        raise MalformedUsageError(key, entries, "a list of {modality, tokenCount} objects or null")
    total = 0
    for entry in entries:
        if type(entry) is not dict:
            raise MalformedUsageError(key, entry, "a {modality, tokenCount} object")
        if entry.get("modality") == "AUDIO":
            total += opt(entry, count_key, f"{key}[AUDIO].{count_key}")
    return total


# --------------------------------------------------------------------------------------------
# Streams


def gemini_chunk(acc: StreamState, d: dict[Any, Any]) -> None:
    """A generateContent stream chunk: the last ``usageMetadata`` snapshot wins (it is cumulative)."""
    acc.capture(d.get("modelVersion") or d.get("model_version"), d.get("responseId") or d.get("response_id"))
    um = d.get("usageMetadata")
    if um is None:
        um = d.get("usage_metadata")
        if um is None:
            return
    if type(um) is not dict:
        raise MalformedUsageError("usageMetadata", um, OBJECT)
    usage = gemini_usage(um)  # a cumulative snapshot: the last one wins
    acc.searches = max(acc.searches, gemini_searches(d.get("candidates"), acc.model))
    if usage is not None:
        acc.usage = usage
        acc.provisional = not _finished(d)
    if acc.usage is not None and acc.searches:
        acc.usage = with_searches(acc.usage, acc.searches)


def _finished(d: dict[Any, Any]) -> bool:
    """Whether a chunk ends the response: a candidate's finish reason, or a blocked prompt."""
    candidates = d.get("candidates")
    if type(candidates) is list:
        for candidate in candidates:
            if type(candidate) is dict and (candidate.get("finishReason") or candidate.get("finish_reason")):
                return True
    feedback = d.get("promptFeedback") or d.get("prompt_feedback")
    return type(feedback) is dict and bool(feedback.get("blockReason") or feedback.get("block_reason"))


def reduce_gemini_chunk(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """A chunk object as the dict `gemini_chunk` needs, or ``None`` when it carries no usage."""
    um = getattr(obj, "usage_metadata", None)
    if um is None:
        if acc.model is None:
            acc.capture(getattr(obj, "model_version", None), getattr(obj, "response_id", None))
        return None
    candidates = getattr(obj, "candidates", None) or ()
    finished = any(getattr(candidate, "finish_reason", None) for candidate in candidates)
    queries = [
        query
        for candidate in candidates
        for query in getattr(getattr(candidate, "grounding_metadata", None), "web_search_queries", None) or ()
    ]
    feedback = getattr(obj, "prompt_feedback", None)
    return {
        "usageMetadata": plain_dict(um),
        "modelVersion": getattr(obj, "model_version", None),
        "responseId": getattr(obj, "response_id", None),
        "candidates": [
            {"finishReason": "STOP" if finished else None, "groundingMetadata": {"webSearchQueries": queries}}
        ],
        "promptFeedback": {"blockReason": getattr(feedback, "block_reason", None)},
    }
