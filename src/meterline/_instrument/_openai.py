"""OpenAI (``openai.OpenAI``/``AsyncOpenAI``, Azure too): chat completions, Responses, embeddings.

Patched on the client's own resource objects (never the classes): ``chat.completions.create``
and ``parse`` (``beta.chat.completions.parse`` too: old SDKs post from it directly),
``responses.create`` and ``parse``, ``embeddings.create``. The stream helpers
(``chat.completions.stream()``, ``responses.stream()``, the old ``beta.chat.completions``
ones) call ``create``, so they are metered through it, once.

Chat streams report usage only when asked (``stream_options.include_usage``), on one extra
chunk whose ``choices`` is empty. meterline asks for it unless the caller passed
``stream_options`` (as an argument or in ``extra_body``) or asked for the raw response, and
then hides that chunk, so the caller sees the stream it asked for.
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final
from urllib.parse import urlsplit

from meterline._instrument._endpoint import MISSING, Endpoint, Request, given_int, given_str, unset
from meterline._instrument._streams import StreamState

__all__ = ["ENDPOINTS", "MIN_VERSION", "NOT_CALLS", "POSTS", "endpoints", "provider_of"]

MIN_VERSION: Final = (1, 55, 3)
"""The oldest openai that runs on httpx 0.28, which the google extra's floor requires (older
releases pass httpx the ``proxies=`` argument it removed)."""

_HOSTS: Final = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
}
"""OpenAI-compatible APIs whose usage blocks follow their own rules."""


def provider_of(client: Any) -> str:
    """The provider of an OpenAI client: Azure, a known compatible host, else ``openai``."""
    if "Azure" in type(client).__name__:
        return "azure.ai.openai"
    host = urlsplit(str(getattr(client, "base_url", ""))).hostname or ""
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return _HOSTS.get(host, "openai")


def _chat(kw: dict[str, Any]) -> Request:
    limit = given_int(kw.get("max_completion_tokens"))
    if limit is None:
        limit = given_int(kw.get("max_tokens"))
    return Request(given_str(kw.get("model")), limit, kw.get("messages"), given_str(kw.get("service_tier")))


def _responses(kw: dict[str, Any]) -> Request:
    instructions = kw.get("instructions")
    content = kw.get("input")
    if type(instructions) is str:
        content = [{"role": "system", "content": instructions}, content]
    return Request(
        given_str(kw.get("model")),
        given_int(kw.get("max_output_tokens")),
        content,
        given_str(kw.get("service_tier")),
    )


def _embeddings(kw: dict[str, Any]) -> Request:
    return Request(given_str(kw.get("model")), None, kw.get("input"))


_RAW_HEADER: Final = "x-stainless-raw-response"
"""Set by ``with_raw_response``/``with_streaming_response``: the caller gets the raw response."""


def _ask_usage(kw: dict[str, Any]) -> bool:
    """Ask a chat stream for its usage chunk, unless the caller chose ``stream_options``.

    The caller chose it when passing ``stream_options``, also in ``extra_body``; and a raw
    response (``with_raw_response``, ``with_streaming_response``) is the caller's to parse,
    so the chunk could not be hidden from it: nothing is asked then either.
    """
    if kw.get("stream") is not True or not unset(kw.get("stream_options", MISSING)):
        return False
    extra_body = kw.get("extra_body")
    if isinstance(extra_body, Mapping) and "stream_options" in extra_body:
        return False
    headers = kw.get("extra_headers")
    if isinstance(headers, Mapping) and any(
        isinstance(name, str) and name.lower() == _RAW_HEADER for name in headers
    ):
        return False
    kw["stream_options"] = {"include_usage": True}
    return True


def _observe_chat(state: StreamState, chunk: Any) -> bool:
    state.add(chunk)
    choices = getattr(chunk, "choices", None)
    if getattr(chunk, "usage", None) is not None:
        state.complete = True
        return state.hide and not choices
    if choices and any(getattr(choice, "finish_reason", None) for choice in choices):
        state.complete = True
    return False


_TERMINAL: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _observe_responses(state: StreamState, chunk: Any) -> bool:
    state.add(chunk)
    kind = getattr(chunk, "type", None)
    if kind in _TERMINAL:
        state.complete = True
        if kind == "response.failed":
            state.outcome = "failed"
    return False


def _observe_nothing(state: StreamState, chunk: Any) -> bool:
    return False


ENDPOINTS: Final = (
    Endpoint(
        ("chat", "completions"), "create", "chat", _chat, _observe_chat, prepare=_ask_usage, api="openai.chat"
    ),
    Endpoint(("chat", "completions"), "parse", "chat", _chat, _observe_chat, api="openai.chat"),
    Endpoint(("beta", "chat", "completions"), "parse", "chat", _chat, _observe_chat, api="openai.chat"),
    Endpoint(("responses",), "create", "chat", _responses, _observe_responses, api="openai.responses"),
    Endpoint(("responses",), "parse", "chat", _responses, _observe_responses, api="openai.responses"),
    Endpoint(("embeddings",), "create", "embeddings", _embeddings, _observe_nothing, api="openai.embeddings"),
)
"""OpenAI's own endpoints, each with the API it speaks."""

POSTS: Final = {
    "/chat/completions": (("chat", "completions"), "create"),
    "/responses": (("responses",), "create"),
    "/embeddings": (("embeddings",), "create"),
}
"""The paths a request made with the client's own ``post()`` is metered on, as the endpoint of
that path (whose request it sends, unchanged)."""

NOT_CALLS: Final = (
    "/chat/completions/{id}",
    "/responses/{id}",
    "/responses/input_tokens",
    "/batches/{id}/cancel",
    "/files",
    "/uploads",
    "/vector_stores",
    "/moderations",
    "/assistants",
    "/containers",
    "/conversations",
    "/chatkit",
    "/evals",
    "/fine_tuning",
)
"""Routes (ids as ``{id}``) of requests that are not billed model calls (storage, updates,
cancellations, free counts and moderation): a ``post()`` to any other route that meterline
does not meter is logged and counted."""

_COMPATIBLE_APIS: Final = {
    "deepseek": {"openai.chat": "deepseek.chat"},
    "groq": {"openai.chat": "groq.chat"},
    "x_ai": {"openai.chat": "xai.chat"},
    "mistral_ai": {"openai.chat": "mistral.chat", "openai.embeddings": "mistral.embeddings"},
}
"""What an OpenAI-compatible provider's answers to OpenAI's methods are read as: its own API
where its usage block follows its own rules (DeepSeek's cache hits, xAI's reasoning…)."""


def endpoints(provider: str) -> tuple[Endpoint, ...]:
    """The endpoints of a client talking to ``provider``, each with the API it speaks there."""
    apis = _COMPATIBLE_APIS.get(provider)
    if apis is None:
        return ENDPOINTS
    return tuple(replace(endpoint, api=apis.get(endpoint.api or "", endpoint.api)) for endpoint in ENDPOINTS)
