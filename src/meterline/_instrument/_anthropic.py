"""Anthropic (``anthropic.Anthropic``/``AsyncAnthropic``): Messages, and the beta Messages.

Patched on the client's own ``messages`` and ``beta.messages`` resources (the beta one is
what pydantic-ai's Anthropic model calls): ``create`` (with or without ``stream=True``),
``parse`` where the SDK has it, and ``stream()``. ``stream()`` does not go
through ``create``: it returns a manager that sends the request on ``__enter__``, so the
manager's request is wrapped instead, and the reservation and the clock start there.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._instrument._endpoint import Endpoint, Request, given_int, given_str
from meterline._instrument._streams import StreamState

__all__ = ["ENDPOINTS", "MIN_VERSION", "NOT_CALLS", "POSTS"]

MIN_VERSION: Final = (0, 43)
"""Before 0.43, ``messages.stream()`` built a second ``Stream`` over the HTTP response and
iterated that one, out of meterline's reach: the stream's usage was lost."""


def _messages(kw: dict[str, Any]) -> Request:
    system = kw.get("system")
    content: Any = kw.get("messages")
    if isinstance(system, str | list):
        content = {"system": system, "messages": content}
    return Request(given_str(kw.get("model")), given_int(kw.get("max_tokens")), content)


def _observe(state: StreamState, chunk: Any) -> bool:
    state.add(chunk)
    if getattr(chunk, "type", None) == "message_stop":
        state.complete = True
    return False


_API: Final = "anthropic.messages"

ENDPOINTS: Final = tuple(
    endpoint
    for path in (("messages",), ("beta", "messages"))
    for endpoint in (
        Endpoint(path, "create", "chat", _messages, _observe, api=_API),
        Endpoint(path, "parse", "chat", _messages, _observe, api=_API),
        Endpoint(path, "stream", "chat", _messages, _observe, kind="manager", api=_API),
    )
)

POSTS: Final = {"/v1/messages": (("messages",), "create")}
"""The paths a request made with the client's own ``post()`` is metered on (see `_openai.POSTS`)."""

NOT_CALLS: Final = (
    "/v1/messages/count_tokens",
    "/v1/messages/batches/{id}/cancel",
    "/v1/files",
    "/v1/skills",
    "/v1/models",
)
"""Paths of requests that are not billed model calls (see `_openai.NOT_CALLS`)."""
