"""Google GenAI (``google.genai.Client``): generate_content, its stream, embed_content; sync and ``aio``.

Patched on the client's own ``models`` and ``aio.models`` objects. The public
``generate_content`` may send several requests (automatic function calling, continuations),
so meterline patches the per-request methods under it, ``_generate_content`` and
``_generate_content_stream``: each request is one event. ``embed_content`` is patched as is.
The sync ``generate_content_stream`` is a generator that sends its first request when first
read: it is run in the context of its call, so its events get the scopes in force there.

The Gemini API reports no usage for embeddings, so they are recorded as unmeasured; Vertex
AI reports each embedding's ``statistics.token_count``, which becomes the input tokens.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._instrument._endpoint import Endpoint, Request, given_int, given_str, plain
from meterline._instrument._streams import StreamState
from meterline._usage import Usage

__all__ = ["ENDPOINTS", "METERED_METHODS", "MIN_VERSION", "NOT_CALLS"]

MIN_VERSION: Final = (1, 8)
"""Before 1.8 the SDK's usage type dropped ``thoughtsTokenCount`` and
``toolUsePromptTokenCount``: thinking and tool-use tokens, billed, would go unrecorded."""


def _option(config: Any, name: str) -> Any:
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def _model(kw: dict[str, Any]) -> str | None:
    model = given_str(kw.get("model"))
    if model is not None and model.startswith("models/"):
        model = model[7:]
    return model


def _generate(kw: dict[str, Any]) -> Request:
    config = kw.get("config")
    content = plain(kw.get("contents"))
    system = _option(config, "system_instruction")
    if system is not None:
        content = {"system_instruction": plain(system), "contents": content}
    return Request(_model(kw), given_int(_option(config, "max_output_tokens")), content)


def _embed(kw: dict[str, Any]) -> Request:
    return Request(_model(kw), None, plain(kw.get("contents")))


def _embed_usage(response: Any) -> Usage | None:
    """Vertex AI's per-embedding token counts, summed; ``None`` when the API reported none."""
    embeddings = getattr(response, "embeddings", None) or ()
    total = 0
    for embedding in embeddings:
        count = getattr(getattr(embedding, "statistics", None), "token_count", None)
        if count is None:
            return None
        total += int(count)
    return Usage(input_tokens=total) if embeddings else None


def _observe(state: StreamState, chunk: Any) -> bool:
    state.add(chunk)
    for candidate in getattr(chunk, "candidates", None) or ():
        if getattr(candidate, "finish_reason", None) is not None:
            state.complete = True
    return False


def _observe_nothing(state: StreamState, chunk: Any) -> bool:
    return False


_API: Final = "gemini.generate_content"

ENDPOINTS: Final = (
    Endpoint(("models",), "_generate_content", "generate_content", _generate, _observe, api=_API),
    Endpoint(
        ("models",),
        "_generate_content_stream",
        "generate_content",
        _generate,
        _observe,
        kind="lazy",
        api=_API,
    ),
    Endpoint(
        ("models",),
        "generate_content_stream",
        "generate_content",
        _generate,
        _observe,
        kind="context",
        api=_API,
    ),
    Endpoint(("models",), "embed_content", "embeddings", _embed, _observe_nothing, usage=_embed_usage),
    Endpoint(("aio", "models"), "_generate_content", "generate_content", _generate, _observe, api=_API),
    Endpoint(
        ("aio", "models"),
        "_generate_content_stream",
        "generate_content",
        _generate,
        _observe,
        kind="iter",
        api=_API,
    ),
    Endpoint(("aio", "models"), "embed_content", "embeddings", _embed, _observe_nothing, usage=_embed_usage),
)


METERED_METHODS: Final = ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents")
"""Model methods the patched ``models`` calls send (a stream's request leaves its metered call's
context, so it is told by its method): never counted as unmetered."""

NOT_CALLS: Final = ("countTokens", "computeTokens", "cachedContents", "files", "upload", "batches")
"""Methods, and first path segments, of requests that are no billed model call (token counts;
cache, file and batch management: a batch's creation is ``models/…:batchGenerateContent``):
an unmetered request to anything else is logged and counted."""
