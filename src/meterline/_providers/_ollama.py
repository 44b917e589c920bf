"""Ollama's native format (``/api/chat``, ``/api/generate``, ``/api/embed``).

The counters sit on the final object; ``prompt_eval_count`` is absent after a KV-cache hit
(the input is unknown, not zero). A stream is NDJSON lines; the ``done: true`` one counts.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import StreamState, dump
from meterline._usage import Usage, checked_usage

__all__ = ["ollama_line", "ollama_usage", "reduce_ollama_line", "unknown_fields"]


_OLLAMA_NAMES: Final = (
    "prompt_eval_count",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "eval_count",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


_NO_TOKENS: Final = frozenset({"load", "unload"})
"""``done_reason`` of a request that only (un)loads the model: it processes no token."""
_ZERO: Final = Usage()


def _only_loads(d: dict[Any, Any]) -> bool:
    """Whether ``d`` answers a request that only (un)loaded the model."""
    reason = d.get("done_reason")
    return type(reason) is str and reason in _NO_TOKENS


def ollama_usage(d: dict[Any, Any]) -> Usage | None:
    """Ollama: counters on the final object; ``prompt_eval_count`` is absent after a KV-cache hit.

    A model load or unload (``done_reason`` ``"load"``/``"unload"``, no counters) is a measured
    zero: no token was processed, which is known, not unknown.
    """
    if d.get("done") is False:
        return None  # a streamed line before the final one
    pe = d.get("prompt_eval_count")
    ev = d.get("eval_count")
    if pe is None and ev is None:
        return _ZERO if _only_loads(d) else None
    return checked_usage(_OLLAMA_NAMES, 0 if pe is None else pe, 0, 0, 0, 0 if ev is None else ev, 0, 0, 0)


def unknown_fields(body: dict[Any, Any], api: str) -> tuple[str, ...]:
    """Canonical fields reported as 0 because Ollama omitted them."""
    # Ollama drops prompt_eval_count when the prompt came from its KV cache (ollama/ollama#2068):
    # the input is unknown, not zero. Embeddings have no output to report.
    if _only_loads(body):
        return ()
    missing_in = body.get("prompt_eval_count") is None
    missing_out = body.get("eval_count") is None and api != "ollama.embed"
    if missing_in:
        return ("input_tokens", "output_tokens") if missing_out else ("input_tokens",)
    return ("output_tokens",) if missing_out else ()


# --------------------------------------------------------------------------------------------
# Streams


def ollama_line(acc: StreamState, d: dict[Any, Any]) -> None:
    """An NDJSON line of a stream: the final ``done: true`` line's counters."""
    if acc.model is None:
        acc.capture(d.get("model"), None)
    if d.get("done") is not True:
        return
    usage = ollama_usage(d)
    if usage is not None:
        acc.usage = usage
        acc.unknown = unknown_fields(d, acc.api or "ollama.chat")


def reduce_ollama_line(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """A response object as the dict `ollama_line` needs, or ``None`` before the final one."""
    if getattr(obj, "done", None) is True:
        return dump(obj)
    if acc.model is None:
        acc.capture(getattr(obj, "model", None), None)
    return None
