"""What instrumentation knows about an SDK: its endpoints, the requests they take, the client.

The per-SDK modules (`_openai`, `_anthropic`, `_google`) declare their endpoints with these
values; `_call`, `_streams` and `_patch` act on them.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from meterline._default import get_meter
from meterline._usage import Usage

if TYPE_CHECKING:
    from meterline._instrument._streams import StreamState
    from meterline._meter import Meter

__all__ = [
    "MISSING",
    "Endpoint",
    "Observer",
    "Request",
    "Target",
    "given_int",
    "given_str",
    "plain",
    "unset",
]

MISSING: Final = object()
"""Default for ``kwargs.get`` that `unset` recognises (and a patch's "nothing was there")."""


@dataclass(frozen=True, slots=True)
class Request:
    """What a budget reservation needs to know about a request, read from its arguments."""

    model: str | None
    """The model asked for."""
    max_output_tokens: int | None
    """The request's bound on generated tokens (``max_tokens``, ``max_output_tokens``…)."""
    content: Any
    """The request's input (messages, ``input``, contents), for the input estimate."""
    service_tier: str | None = None
    """The service tier asked for (OpenAI's ``service_tier``): the event's tier when the
    response does not report the one that served it (a stream's chunks may not)."""


Observer = Callable[["StreamState", Any], bool]
"""Takes one stream chunk into account; returns True when the chunk is to be hidden."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One SDK method that meterline meters."""

    path: tuple[str, ...]
    """Attributes leading from the client to the resource (``("chat", "completions")``)."""
    method: str
    """The resource's method patched (``create``)."""
    operation: str
    """The event's operation (``chat``, ``embeddings``, ``generate_content``)."""
    read: Callable[[dict[str, Any]], Request]
    """Reads the request from the call's keyword arguments."""
    observe: Observer
    """Takes each chunk of a streamed response into account."""
    kind: str = "call"
    """``call``: returns a response or an SDK stream; ``iter``: a coroutine function returning an
    async iterator; ``lazy``: a generator function (the request goes out on the first ``next``);
    ``manager``: returns a stream manager that makes the request on ``__enter__``; ``context``:
    a generator function not metered itself, run in the context of its call (so the lazy
    request it makes inside is metered in the caller's scopes, wherever it is read)."""
    prepare: Callable[[dict[str, Any]], bool] | None = None
    """Adjusts the keyword arguments before the call; True when a chunk it asked for is to be hidden."""
    usage: Callable[[Any], Usage | None] | None = None
    """Reads the usage of a response that `meterline.extract` does not know (Gemini embeddings)."""
    api: str | None = None
    """The API the method speaks (one of `meterline.APIS`): the response is read with that
    API's rules, never guessed from its shape; ``None`` when ``usage`` reads it instead."""


@dataclass(slots=True, eq=False)
class Target:
    """An instrumented client: where its calls are recorded, and how to undo the patches."""

    meter: Meter | None
    """The meter, or ``None`` for the process-wide default (looked up at each call)."""
    provider: str | None
    """The provider name events get."""
    api_errors: tuple[type[BaseException], ...]
    """Exceptions that mean the request reached (or tried to reach) the API: recorded as failed calls."""
    stream_types: tuple[type[Any], ...]
    """The SDK's stream classes (sync first, then async), whose iterator is wrapped."""
    undo: list[Callable[[], None]] = field(default_factory=list)
    """Restores what each patch replaced, in order."""

    def resolve(self) -> Meter:
        """The meter to record to now."""
        meter = self.meter
        return meter if meter is not None else get_meter()


def plain(value: Any) -> Any:
    """SDK objects in request content as JSON-able values (pydantic models dumped)."""
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    dump = getattr(type(value), "model_dump", None)
    if dump is not None:
        return value.model_dump(mode="json", exclude_none=True)
    return value


def given_int(value: object) -> int | None:
    """An int argument, or ``None`` when it was not given (``NotGiven``/``Omit``/``None``)."""
    return value if type(value) is int else None


def given_str(value: object) -> str | None:
    """A str argument, or ``None``."""
    return value if type(value) is str else None


def unset(value: object) -> bool:
    """Whether an SDK argument was left out (absent, ``NOT_GIVEN`` or ``omit``)."""
    return value is MISSING or type(value).__name__ in ("NotGiven", "Omit")
