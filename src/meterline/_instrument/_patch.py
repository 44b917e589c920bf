"""Patching a client: each endpoint's method replaced on the client's own objects, undoably.

Patches go on instances, never on the SDK's classes, so other clients are untouched; each
patch remembers how to restore what it replaced, and the SDKs' cached
``with_raw_response``/``with_streaming_response`` wrappers are rebuilt around the patches.
"""

from __future__ import annotations as _annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from meterline._instrument._call import in_metered_call, response_arrived, run_async, run_lazy, run_sync
from meterline._instrument._endpoint import MISSING, Endpoint, Target

__all__ = ["Posts", "patch_api_client", "patch_endpoints", "patch_method", "patch_post"]

logger = logging.getLogger("meterline")


class _DeferredRequest:
    """Stands for a stream manager's request coroutine: awaited, it is metered."""

    __slots__ = ("_coro", "_endpoint", "_kwargs", "_target")

    def __init__(
        self, target: Target, endpoint: Endpoint, kwargs: dict[str, Any], coro: Awaitable[Any]
    ) -> None:
        self._target, self._endpoint, self._kwargs, self._coro = target, endpoint, kwargs, coro

    def __await__(self) -> Any:
        return self._run().__await__()

    async def _run(self) -> Any:
        coro = self._coro

        async def invoke(kwargs: dict[str, Any]) -> Any:
            return await coro

        try:
            return await run_async(self._target, self._endpoint, self._kwargs, invoke)
        finally:
            if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()  # refused by a budget: never sent, and never "never awaited"


def _manager_request_attr(manager: Any) -> str:
    return f"_{type(manager).__name__}__api_request"


def _is_async(method: Callable[..., Any]) -> bool:
    """Whether ``method`` returns a coroutine (SDK decorators hide it: look under them too)."""
    if inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(inspect.unwrap(method)):
        return True
    owner = getattr(method, "__self__", None)
    return type(owner).__name__.startswith("Async")


def _wrap(target: Target, endpoint: Endpoint, original: Callable[..., Any]) -> Callable[..., Any]:
    kind = endpoint.kind
    if kind == "lazy":

        @functools.wraps(original)
        def _meterline_lazy(*args: Any, **kwargs: Any) -> Any:
            return run_lazy(target, endpoint, original, args, kwargs, contextvars.copy_context())

        return _meterline_lazy

    if kind == "context":

        @functools.wraps(original)
        def _meterline_context(*args: Any, **kwargs: Any) -> Any:
            return _in_context(contextvars.copy_context(), original(*args, **kwargs))

        return _meterline_context

    if kind == "manager":

        @functools.wraps(original)
        def _meterline_manager(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)
            try:
                name = _manager_request_attr(manager)
                request = getattr(manager, name)
                if inspect.isawaitable(request):
                    setattr(manager, name, _DeferredRequest(target, endpoint, kwargs, request))
                else:
                    setattr(
                        manager,
                        name,
                        functools.partial(run_sync, target, endpoint, kwargs, lambda _kw: request()),
                    )
            except Exception:  # noqa: BLE001
                target.resolve().guard.failed("instrumentation (a stream manager)", endpoint.method)
            return manager

        return _meterline_manager

    if _is_async(original):

        @functools.wraps(original)
        async def _meterline_async(*args: Any, **kwargs: Any) -> Any:
            return await run_async(target, endpoint, kwargs, lambda kw: original(*args, **kw))

        return _meterline_async

    @functools.wraps(original)
    def _meterline_sync(*args: Any, **kwargs: Any) -> Any:
        return run_sync(target, endpoint, kwargs, lambda kw: original(*args, **kw))

    return _meterline_sync


def patch_method(target: Target, owner: Any, name: str, replacement: Callable[..., Any]) -> None:
    """Set ``owner.name`` on the instance, and remember how to restore it."""
    saved = owner.__dict__.get(name, MISSING)
    setattr(owner, name, replacement)

    def undo() -> None:
        if owner.__dict__.get(name) is not replacement:
            return  # replaced since by someone else: leave theirs
        if saved is MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, saved)

    target.undo.append(undo)


_WRAPPERS: Final = ("with_raw_response", "with_streaming_response")
"""The SDKs' cached wrappers of a resource's methods: built once, they hold the methods they
found then, so they are dropped whenever the methods change, to be built again."""


def _drop_wrappers(objects: list[Any]) -> None:
    for obj in objects:
        namespace = getattr(obj, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name in _WRAPPERS:
            # Only a cached one (old SDKs build the client's own in __init__, to keep).
            if isinstance(inspect.getattr_static(type(obj), name, None), functools.cached_property):
                namespace.pop(name, None)


def _notify_arrival(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Stainless client's ``_process_response``: a response came for the call running."""
    if _is_async(original):

        @functools.wraps(original)
        async def _meterline_arrived_async(*args: Any, **kwargs: Any) -> Any:
            response_arrived()
            return await original(*args, **kwargs)

        return _meterline_arrived_async

    @functools.wraps(original)
    def _meterline_arrived(*args: Any, **kwargs: Any) -> Any:
        response_arrived()
        return original(*args, **kwargs)

    return _meterline_arrived


def patch_endpoints(target: Target, client: Any, endpoints: tuple[Endpoint, ...]) -> None:
    """Patch every endpoint the client has (an older SDK may lack some, e.g. ``responses``).

    The cached ``with_raw_response``/``with_streaming_response`` wrappers of the client and
    of the resources on the way are dropped now and again when the patches are undone, so
    that each wrapper calls the method in place when it is built.
    """
    touched: list[Any] = [client]
    patches: list[tuple[Any, Endpoint, Callable[..., Any]]] = []
    for endpoint in endpoints:
        owner = client
        for attribute in endpoint.path:
            owner = getattr(owner, attribute, None)
            if owner is None:
                break
            if not any(owner is seen for seen in touched):
                touched.append(owner)
        if owner is None:
            continue
        original = getattr(owner, endpoint.method, None)
        if original is None:
            continue
        patches.append((owner, endpoint, original))
    target.undo.append(functools.partial(_drop_wrappers, touched))  # undone last
    process = getattr(client, "_process_response", None)
    if callable(process):
        patch_method(target, client, "_process_response", _notify_arrival(process))
    for owner, endpoint, original in patches:
        patch_method(target, owner, endpoint.method, _wrap(target, endpoint, original))
    _drop_wrappers(touched)


@dataclass(frozen=True, slots=True)
class Posts:
    """What an SDK client's own ``post()`` is metered on."""

    sdk: str
    """The SDK, for the log (``"openai"``)."""
    routes: Mapping[str, tuple[tuple[str, ...], str]]
    """Path -> the endpoint (resource path, method) whose request a post to it sends."""
    not_calls: tuple[str, ...]
    """Route prefixes (ids as ``{id}``) of requests that are not billed model calls (never reported)."""


def patch_post(target: Target, client: Any, endpoints: tuple[Endpoint, ...], posts: Posts) -> None:
    """Meter the requests made with the client's own ``post()`` to a model endpoint's path.

    A caller that builds its request itself (LiteLLM does) is metered as the endpoint of that
    path: the body is the request read for the reservation, sent unchanged (nothing is asked
    for: no ``stream_options``). A post from a metered method (the SDK's resources post
    through it) is inside that method's call and is not metered again. A post to any other
    path, outside a metered call (an image, audio or batch request), is a call meterline
    cannot meter: counted in `Meter.stats` and logged the first time (`Guard.cannot_meter`).
    """
    original = getattr(client, "post", None)
    if not callable(original):
        return
    by_method = {(endpoint.path, endpoint.method): endpoint for endpoint in endpoints}
    routes = {
        path: replace(by_method[where], prepare=None)
        for path, where in posts.routes.items()
        if where in by_method
    }

    def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Endpoint | None, dict[str, Any]]:
        path = args[0] if args else kwargs.get("path")
        endpoint = routes.get(path) if isinstance(path, str) else None
        if endpoint is None:
            _unmetered(target, posts, path)
        body = kwargs.get("body")
        return endpoint, (dict(body) if isinstance(body, Mapping) else {})

    if _is_async(original):

        @functools.wraps(original)
        async def _meterline_post_async(*args: Any, **kwargs: Any) -> Any:
            endpoint, sent = request(args, kwargs)
            if endpoint is None:
                return await original(*args, **kwargs)
            return await run_async(target, endpoint, sent, lambda _kw: original(*args, **kwargs))

        patch_method(target, client, "post", _meterline_post_async)
        _rebind_resources(target, client, original, _meterline_post_async)
        return

    @functools.wraps(original)
    def _meterline_post(*args: Any, **kwargs: Any) -> Any:
        endpoint, sent = request(args, kwargs)
        if endpoint is None:
            return original(*args, **kwargs)
        return run_sync(target, endpoint, sent, lambda _kw: original(*args, **kwargs))

    patch_method(target, client, "post", _meterline_post)
    _rebind_resources(target, client, original, _meterline_post)


def _rebind_resources(target: Target, client: Any, original: Any, replacement: Any) -> None:
    """Point resources built before `instrument` at the patched ``post()``.

    A resource keeps the ``client.post`` it found when it was built (``self._post``). Older
    SDKs (openai before 1.60) build every top-level resource in the client's constructor, so
    their requests (``images.generate``) would bypass the patch and go uncounted.
    """
    for resource in list(vars(client).values()):
        for owner in (resource, *list(getattr(resource, "__dict__", {}).values())):
            if getattr(owner, "__dict__", {}).get("_post") == original:
                patch_method(target, owner, "_post", replacement)


def patch_api_client(
    target: Target, client: Any, metered: tuple[str, ...], not_calls: tuple[str, ...]
) -> None:
    """Count the requests a Google GenAI client sends that no metered method sent.

    Every request of the SDK (``client`` and ``client.aio``) goes through its API client's
    ``request``/``request_streamed`` and their async forms, with a path such as
    ``models/gemini-2.5-flash:generateContent``. One outside a metered call, to a model method
    meterline does not meter (``:generateImages``, ``:predictLongRunning``, ``batches``…), is
    counted by kind and logged the first time (`Guard.cannot_meter`), and sent unchanged.
    """
    api_client = getattr(client, "_api_client", None)
    if api_client is None:
        return
    skip = (*metered, *not_calls)

    def note(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        method = args[0] if args else kwargs.get("http_method")
        path = args[1] if len(args) > 1 else kwargs.get("path")
        if in_metered_call() or not isinstance(path, str) or str(method).lower() != "post":
            return
        route = _google_route(path)
        name = route.rpartition(":")[2] if ":" in route else route.lstrip("/").split("/")[0]
        if name in skip:  # a model method meterline meters, or a collection that is no model call
            return
        _count_unmetered(target, f"google POST {route}")

    for name in ("request", "request_streamed", "async_request", "async_request_streamed"):
        original = getattr(api_client, name, None)
        if original is None:
            continue
        if inspect.iscoroutinefunction(original):

            async def _meterline_request_async(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                note(args, kwargs)
                return await _original(*args, **kwargs)

            patch_method(target, api_client, name, functools.wraps(original)(_meterline_request_async))
        else:

            def _meterline_request(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                note(args, kwargs)
                return _original(*args, **kwargs)

            patch_method(target, api_client, name, functools.wraps(original)(_meterline_request))


def _google_route(path: str) -> str:
    """``models/imagen-4.0:predict`` -> ``models/{model}:predict``; ids folded as in `_route`."""
    path = path.partition("?")[0]
    head, colon, method = path.rpartition(":")
    if not colon:
        return _route(path)
    prefix, _slash, _model = head.rpartition("/")
    return f"{_route(prefix)}/{{model}}:{method}" if prefix else f"{{model}}:{method}"


def _unmetered(target: Target, posts: Posts, path: object) -> None:
    """Count a post meterline cannot meter (unless a metered call sends it, or it is no model call)."""
    if in_metered_call() or not isinstance(path, str):
        return
    route = _route(path)
    if route.startswith(posts.not_calls):
        return
    _count_unmetered(target, f"{posts.sdk} POST {route}")


def _count_unmetered(target: Target, kind: str) -> None:
    """Count (and the first time, log) a request of ``kind`` that no metered call sent."""
    try:
        target.resolve().guard.cannot_meter(
            kind, "record its usage with meter.record(...) (see the README: what instrument() covers)"
        )
    except Exception:  # counting never breaks the call
        logger.exception("meterline: could not count an unmetered request (%s)", kind)


_ID: Final = "{id}"


def _route(path: str) -> str:
    """A path with its ids (8 characters or more, with a digit) as ``{id}``.

    ``/v1/messages/batches/msgbatch_01Hkc/cancel`` -> ``/v1/messages/batches/{id}/cancel``.
    """
    return "/".join(
        _ID if len(part) >= 8 and any(ch.isdigit() for ch in part) else part for part in path.split("/")
    )


def _in_context(context: contextvars.Context, inner: Iterator[Any]) -> Iterator[Any]:
    """Iterate ``inner`` with each step run in ``context``."""
    try:
        while True:
            try:
                chunk = context.run(next, inner)
            except StopIteration:
                return
            yield chunk
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            context.run(close)
