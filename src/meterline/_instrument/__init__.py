"""``meterline.instrument(client)``: meter every call an OpenAI, Anthropic or Google GenAI client makes.

One line, and every model call the client makes becomes one `UsageEvent` (served and
requested model, provider, operation, latency, status, the active scopes' dimensions),
budgets are reserved before the request is sent, and streams are settled however they end.

The patches are set on the given client's own resource objects, never on the SDK's classes:
other clients are untouched, and `uninstrument` puts back exactly what was there. Copies the
client makes (``with_options()``, ``copy()``) are instrumented too.
"""

from __future__ import annotations as _annotations

import functools
import sys
import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar

from meterline._extras import check_version, require
from meterline._instrument import _anthropic, _google, _openai
from meterline._instrument._endpoint import Endpoint, Target
from meterline._instrument._patch import Posts, patch_api_client, patch_endpoints, patch_method, patch_post
from meterline._instrument._status import status_of
from meterline.exceptions import ConfigurationError, UnsupportedSDKError

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = ["instrument", "status_of", "uninstrument"]

C = TypeVar("C")

_ATTRIBUTE: Final = "_meterline_instrumented"
_lock = threading.Lock()

_SDKS: Final = {
    "openai": ("openai", "openai", _openai.MIN_VERSION),
    "anthropic": ("anthropic", "anthropic", _anthropic.MIN_VERSION),
    "google": ("google-genai", "google", _google.MIN_VERSION),
}
"""SDK -> (distribution, meterline extra, minimum version)."""

_EXPECTED: Final = (
    "an openai.OpenAI or AsyncOpenAI, an anthropic.Anthropic or AsyncAnthropic, or a google.genai.Client"
)


def _check_version(sdk: str) -> None:
    dist, extra, minimum = _SDKS[sdk]
    check_version(dist, extra, minimum)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP libraries' errors that google-genai lets through unwrapped (those imported)."""
    found: list[type[BaseException]] = []
    for module, name in (
        ("httpx", "TransportError"),
        ("httpx2", "TransportError"),
        ("requests", "RequestException"),
        ("aiohttp", "ClientError"),
    ):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


_Integration = tuple[Target, tuple[Endpoint, ...], bool, Posts | None]
"""The target, its endpoints, whether the client's copies are instrumented, its ``post()`` routes."""


def _integration(client: object, meter: Meter | None) -> _Integration:
    """What instrumenting ``client`` takes (see `_Integration`)."""
    module = type(client).__module__
    root = module.split(".", 1)[0]
    if root == "openai":
        sdk = require("openai", "openai")
        if isinstance(client, sdk.OpenAI | sdk.AsyncOpenAI):
            _check_version("openai")
            provider = _openai.provider_of(client)
            target = Target(meter, provider, (sdk.APIError,), (sdk.Stream, sdk.AsyncStream))
            return (
                target,
                _openai.endpoints(provider),
                True,
                Posts("openai", _openai.POSTS, _openai.NOT_CALLS),
            )
    elif root == "anthropic":
        sdk = require("anthropic", "anthropic")
        if isinstance(client, sdk.Anthropic | sdk.AsyncAnthropic):
            _check_version("anthropic")
            target = Target(meter, "anthropic", (sdk.APIError,), (sdk.Stream, sdk.AsyncStream))
            return (
                target,
                _anthropic.ENDPOINTS,
                True,
                Posts("anthropic", _anthropic.POSTS, _anthropic.NOT_CALLS),
            )
    elif module.startswith("google.genai"):
        genai = require("google", "google.genai")
        errors = require("google", "google.genai.errors")
        if isinstance(client, genai.Client):
            _check_version("google")
            vertex = bool(getattr(client, "vertexai", False))
            provider = "gcp.vertex_ai" if vertex else "gcp.gemini"
            target = Target(meter, provider, (errors.APIError, *_transport_errors()), ())
            return target, _google.ENDPOINTS, False, None
        raise UnsupportedSDKError(
            f"cannot instrument a {module}.{type(client).__qualname__}: instrument the google.genai.Client "
            "(its .aio client is instrumented with it)"
        )
    raise UnsupportedSDKError(
        f"cannot instrument a {module}.{type(client).__qualname__}: expected {_EXPECTED}"
    )


def instrument(client: C, meter: Meter | None = None) -> C:
    """Meter every model call ``client`` makes; returns the client.

    Supported: ``openai.OpenAI``/``AsyncOpenAI`` (and Azure): chat completions (``create``,
    ``parse``, ``stream()``), the Responses API (``create``, ``parse``, ``stream()``) and
    embeddings; ``anthropic.Anthropic``/``AsyncAnthropic``: ``messages.create``, ``parse`` and
    ``stream()``; ``google.genai.Client``: ``models.generate_content``,
    ``generate_content_stream``, ``embed_content``, and their ``client.aio`` forms.

    Each call is recorded as one event, after the response arrives or, for a stream, when the
    stream ends, raises, is closed or is garbage-collected; a failed call is recorded with its
    error status. Before each call a reservation is made against the meter's budgets; a budget
    that would be exceeded raises `meterline.BudgetExceeded` and nothing is sent. Anything
    else that goes wrong in meterline is logged and counted, never raised into the call.

    Calling it again on the same client changes only the meter (nothing is counted twice).

    Args:
        client: The SDK client.
        meter: Where to record; ``None`` records to the process-wide default meter of the
            moment (`meterline.get_meter`).

    Returns:
        The same client, instrumented.

    Raises:
        UnsupportedSDKError: the client is not one of the above, or its SDK is older than the
            extra's minimum (``meterline[openai]``, ``[anthropic]``, ``[google]``).
        ConfigurationError: ``meter`` is not a `Meter`.
        MissingExtraError: never in practice (the client's own SDK is installed).
    """
    if meter is not None and not _is_meter(meter):
        raise ConfigurationError(f"meter={meter!r}: expected a meterline.Meter or None")
    with _lock:
        existing = getattr(client, "__dict__", {}).get(_ATTRIBUTE)
        if isinstance(existing, Target):
            existing.meter = meter
            return client
        target, endpoints, copies, posts = _integration(client, meter)
        patch_endpoints(target, client, endpoints)
        if posts is not None:
            patch_post(target, client, endpoints, posts)
        elif type(client).__module__.startswith("google.genai"):
            patch_api_client(target, client, _google.METERED_METHODS, _google.NOT_CALLS)
        if copies:
            for name in ("copy", "with_options"):
                original = getattr(client, name, None)
                if original is not None:
                    patch_method(target, client, name, _instrumenting_copies(target, original))
        setattr(client, _ATTRIBUTE, target)
    return client


def _is_meter(meter: object) -> bool:
    """Whether ``meter`` has what instrumentation uses of a `Meter`.

    Checked by duck type: integrations never import the meter (see ARCHITECTURE.md).
    """
    return (
        callable(getattr(meter, "record", None))
        and callable(getattr(meter, "reserve", None))
        and hasattr(meter, "budgets")
        and callable(getattr(getattr(meter, "guard", None), "failed", None))
    )


def _instrumenting_copies(target: Target, original: Any) -> Any:
    @functools.wraps(original)
    def _meterline_copy(*args: Any, **kwargs: Any) -> Any:
        copied = original(*args, **kwargs)
        try:
            instrument(copied, target.meter)
        except Exception:  # noqa: BLE001 - the copy is the caller's whatever happens
            target.resolve().guard.failed("instrumentation (a copied client)", type(copied).__name__)
        return copied

    return _meterline_copy


def uninstrument(client: object) -> bool:
    """Undo `instrument`: put back every method it replaced on ``client``.

    Streams already opened keep settling their events. Copies made while instrumented stay
    instrumented (uninstrument them too).

    Returns:
        Whether the client was instrumented.
    """
    with _lock:
        target = getattr(client, "__dict__", {}).get(_ATTRIBUTE)
        if not isinstance(target, Target):
            return False
        for undo in reversed(target.undo):
            undo()
        delattr(client, _ATTRIBUTE)
    return True
