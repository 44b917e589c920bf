"""What every SDK integration shares: one metered call, metered streams, and the patches.

A patched method runs the SDK's own method and hands back exactly what it returned or raised.
Around it, meterline reserves against the budgets (the only exception it may raise: a budget
the user set), times the call and records one event. Everything else that can go wrong in
here is a machinery failure: logged on the ``meterline`` logger, counted in
`Meter.stats`, never raised into the caller's code.

A stream is the SDK's own stream object with its iterator wrapped: the user iterates the same
chunks (less the usage-only chunk meterline asked for), and the event is recorded once, when
the stream ends, raises, is closed, or is collected, in the context of the call that opened
it (so the scopes in force at the call get it, whichever thread or task finishes the stream).
"""

from __future__ import annotations as _annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from meterline._config import get_meter
from meterline._meter import Meter
from meterline._stream import StreamAccumulator
from meterline._usage import Usage
from meterline.exceptions import BudgetExceeded, BudgetStoreError

__all__ = [
    "CANCELLED",
    "OK",
    "Endpoint",
    "Request",
    "StreamState",
    "Target",
    "patch_method",
    "status_of",
]

logger = logging.getLogger("meterline")

OK: Final = "ok"
CANCELLED: Final = "cancelled"
"""Status of a call the application stopped: a stream closed or dropped before it finished,
or a task cancelled while it waited."""

_POLICY: Final = (BudgetExceeded, BudgetStoreError)
"""What `Meter.reserve` raises on purpose (a budget the user set): passed on to the caller."""
_STOPPED: Final = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("meterline_instrument_active", default=False)
"""True while a metered call runs: an SDK method that calls another patched one (an old SDK's
``beta.chat.completions.parse`` calls ``chat.completions.create``) is metered once, outside."""

_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "meterline_instrument_call", default=None
)
"""The metered call whose SDK method runs now: told by `response_arrived` that its response came."""

_ns = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class Request:
    """What a budget reservation needs to know about a request, read from its arguments."""

    model: str | None
    """The model asked for."""
    max_output_tokens: int | None
    """The request's bound on generated tokens (``max_tokens``, ``max_output_tokens``…)."""
    content: Any
    """The request's input (messages, ``input``, contents), for the input estimate."""


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


def status_of(exc: BaseException) -> str:
    """An error's status: the HTTP status code when the API answered, else the error's class name.

    As OpenTelemetry's ``error.type``: ``"429"``, ``"500"``, ``"APIConnectionError"``.
    """
    if isinstance(exc, _STOPPED):
        return CANCELLED
    for name in ("status_code", "code"):
        code = getattr(exc, name, None)
        if type(code) is int and 100 <= code <= 599:
            return str(code)
    return type(exc).__name__


class _Call:
    """One metered call: its reservation, its start time, and how to record it."""

    __slots__ = ("arrived", "endpoint", "meter", "request", "reservation", "start", "target")

    def __init__(
        self, target: Target, endpoint: Endpoint, meter: Meter, request: Request, reservation: Any
    ) -> None:
        self.target = target
        self.endpoint = endpoint
        self.meter = meter
        self.request = request
        self.reservation = reservation
        self.start = _ns()
        self.arrived = False
        """Whether a response came back (an error raised after it is a sent, billed call)."""

    def record(
        self,
        payload: object,
        status: str,
        end: int | None,
        served: str | None = None,
        response_id: str | None = None,
    ) -> None:
        """Record the event; if the payload cannot be recorded, record the call as unmeasured."""
        meter = self.meter
        latency = None if end is None else (end - self.start) / 1e6
        requested = self.request.model
        options: dict[str, Any] = {}
        if self.reservation is not None:
            options["reservation"] = self.reservation
        try:
            meter.record(
                payload,
                model=served or requested,
                provider=self.target.provider,
                operation=self.endpoint.operation,
                latency_ms=latency,
                status=status,
                response_id=response_id,
                request_model=requested if served and requested and served != requested else None,
                **options,
            )
            return
        except Exception:  # noqa: BLE001 - a bad payload never breaks the host's call
            meter._machinery_failed(
                "instrumentation (recording a response)", f"{self.target.provider}/{requested}"
            )
        try:
            meter.record(
                None,
                model=requested,
                provider=self.target.provider,
                operation=self.endpoint.operation,
                latency_ms=latency,
                status=status,
                **options,
            )
        except Exception:  # noqa: BLE001
            meter._machinery_failed(
                "instrumentation (recording a call)", f"{self.target.provider}/{requested}"
            )
            self.release()

    def release(self) -> None:
        """Release the reservation of a call that will record nothing."""
        if self.reservation is None:
            return
        try:
            self.reservation.release()
        except Exception:  # noqa: BLE001
            self.meter._machinery_failed("instrumentation (releasing a reservation)", str(self.request.model))

    def failed(self, exc: BaseException) -> None:
        """The SDK raised ``exc``: record a failed call, or release when the API was never asked.

        A response that arrived and then failed in the SDK (openai's ``LengthFinishReasonError``,
        a ``ValidationError`` from ``parse``) was sent and billed: it is recorded, with the usage
        of the completion the exception carries, if any.
        """
        try:
            if self.arrived or isinstance(exc, (self.target.api_errors, _STOPPED)):
                completion = getattr(exc, "completion", None)
                self.record(completion, status_of(exc), _ns())
            else:
                self.release()  # a bad argument the SDK refused before sending anything
        except Exception:  # noqa: BLE001
            self.meter._machinery_failed("instrumentation (a failed call)", str(self.request.model))

    def returned(self, result: Any, hide: bool) -> Any:
        """Record a response, or wrap a stream; returns what the caller gets (the same object)."""
        end = _ns()
        try:
            target = self.target
            kind = self.endpoint.kind
            if kind == "iter":
                state = StreamState(self, hide)
                iterator = _iterate_async(state, result)
                weakref.finalize(iterator, state.settle, None)
                return iterator
            # Old anthropic stream helpers return their own stream object around the SDK's.
            stream = (
                result if isinstance(result, target.stream_types) else getattr(result, "_raw_stream", None)
            )
            if stream is not None and isinstance(stream, target.stream_types):
                _wrap_sdk_stream(StreamState(self, hide), stream, isinstance(stream, target.stream_types[1:]))
                return result
            reader = self.endpoint.usage
            if reader is not None:
                self.record(reader(result), OK, end)
            elif _is_raw_response(result):
                self.record(None, OK, end)  # with_raw_response: the body is the caller's to read
            else:
                self.record(result, OK, end)
        except Exception:  # noqa: BLE001 - the caller gets its result whatever happens here
            self.meter._machinery_failed("instrumentation (a response)", str(self.request.model))
        return result


def _is_raw_response(result: Any) -> bool:
    return hasattr(result, "http_response") and hasattr(result, "parse")


def _begin(target: Target, endpoint: Endpoint, kwargs: dict[str, Any]) -> tuple[_Call | None, bool]:
    """Prepare and reserve; ``(None, False)`` when the call is to go through unmetered.

    Raises:
        BudgetExceeded: a budget would be exceeded (nothing was sent).
        BudgetStoreError: the budget store is down and the budget fails closed.
    """
    try:
        meter = target.resolve()
    except Exception:
        logger.exception("meterline: no meter to record %s to; the call is not metered", endpoint.method)
        return None, False
    try:
        request = endpoint.read(kwargs)
        hide = endpoint.prepare(kwargs) if endpoint.prepare is not None else False
    except Exception:  # noqa: BLE001
        meter._machinery_failed("instrumentation (reading a request)", endpoint.method)
        return None, False
    reservation = None
    engine = getattr(meter, "_budgets", None)
    if engine is not None and getattr(engine, "compiled", True):
        # Only a meter with budgets pays for the input estimate and the reservation.
        try:
            reservation = meter.reserve(
                model=request.model,
                provider=target.provider,
                messages=request.content,
                max_output_tokens=request.max_output_tokens,
            )
        except _POLICY:
            raise
        except Exception:  # noqa: BLE001 - a budget bug never stops the call
            meter._machinery_failed("instrumentation (reserving)", str(request.model))
    return _Call(target, endpoint, meter, request, reservation), hide


def run_sync(
    target: Target, endpoint: Endpoint, kwargs: dict[str, Any], invoke: Callable[[dict[str, Any]], Any]
) -> Any:
    """Run one synchronous call of ``endpoint``, metered."""
    if _ACTIVE.get():
        return invoke(kwargs)
    call, hide = _begin(target, endpoint, kwargs)
    if call is None:
        return invoke(kwargs)
    token = _ACTIVE.set(True)
    current = _CURRENT.set(call)
    try:
        result = invoke(kwargs)
    except BaseException as exc:
        _CURRENT.reset(current)
        _ACTIVE.reset(token)
        call.failed(exc)
        raise
    _CURRENT.reset(current)
    _ACTIVE.reset(token)
    return call.returned(result, hide)


async def run_async(
    target: Target,
    endpoint: Endpoint,
    kwargs: dict[str, Any],
    invoke: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Any:
    """Run one asynchronous call of ``endpoint``, metered."""
    if _ACTIVE.get():
        return await invoke(kwargs)
    call, hide = _begin(target, endpoint, kwargs)
    if call is None:
        return await invoke(kwargs)
    token = _ACTIVE.set(True)
    current = _CURRENT.set(call)
    try:
        result = await invoke(kwargs)
    except BaseException as exc:
        _CURRENT.reset(current)
        _ACTIVE.reset(token)
        call.failed(exc)
        raise
    _CURRENT.reset(current)
    _ACTIVE.reset(token)
    return call.returned(result, hide)


def response_arrived() -> None:
    """Tell the metered call running now, if any, that its response came back."""
    call = _CURRENT.get()
    if call is not None:
        call.arrived = True


def _lazy(
    target: Target,
    endpoint: Endpoint,
    original: Callable[..., Iterator[Any]],
    args: Any,
    kwargs: dict[str, Any],
    context: contextvars.Context,
) -> Iterator[Any]:
    """A generator function's call, metered from its first ``next`` (when its request goes out).

    The reservation and the event belong to ``context``, the one the function was called in.
    """
    if context.run(_ACTIVE.get):
        yield from original(*args, **kwargs)
        return
    call, hide = context.run(_begin, target, endpoint, kwargs)
    if call is None:
        yield from original(*args, **kwargs)
        return
    try:
        inner = original(*args, **kwargs)
    except BaseException as exc:
        call.failed(exc)
        raise
    state = context.run(StreamState, call, hide)
    state.sent = False  # until a chunk arrives, an error may mean the request never went out
    yield from _iterate(state, inner)


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


# --------------------------------------------------------------------------------------------
# Streams


class StreamState:
    """One metered stream: its accumulated usage, and the once-only settlement."""

    __slots__ = (
        "acc",
        "call",
        "complete",
        "context",
        "hide",
        "in_next",
        "last",
        "once",
        "outcome",
        "sent",
    )

    def __init__(self, call: _Call, hide: bool) -> None:
        self.call = call
        self.hide = hide
        """Whether the usage-only chunk meterline asked for is hidden from the caller."""
        self.acc: StreamAccumulator | None = StreamAccumulator(call.target.provider)
        self.complete = False
        """Whether the response's end was seen (a stream closed after it is not cancelled)."""
        self.outcome: str | None = None
        """The status the stream itself reported (``failed`` for a failed Responses stream)."""
        self.in_next = False
        self.last: int | None = None
        self.once = threading.Lock()
        self.context = contextvars.copy_context()
        self.sent = True
        """Whether the request is known to have gone out (a lazy stream's: once a chunk arrived)."""

    def add(self, chunk: Any) -> None:
        """Feed a chunk to the usage accumulator (a bad chunk leaves the usage unknown)."""
        acc = self.acc
        if acc is None:
            return
        try:
            acc.add(chunk)
        except Exception:  # noqa: BLE001
            self.acc = None
            self.call.meter._machinery_failed(
                "instrumentation (a stream chunk)", str(self.call.request.model)
            )

    def take(self, chunk: Any) -> bool:
        """Take one chunk into account; True when it is to be hidden from the caller."""
        self.last = _ns()
        self.sent = True
        try:
            return self.call.endpoint.observe(self, chunk)
        except Exception:  # noqa: BLE001
            self.call.meter._machinery_failed(
                "instrumentation (a stream chunk)", str(self.call.request.model)
            )
            return False

    def settle(self, status: str | None) -> None:
        """Record the stream's event, once; ``None``: it was stopped (ok if its end was seen)."""
        if not self.once.acquire(blocking=False):
            return
        try:
            if status is None:
                status = OK if self.complete else CANCELLED
            if status == OK and self.outcome is not None:
                status = self.outcome
            self.context.run(self._record, status)
        except Exception:
            logger.exception("meterline: settling a stream failed")

    def abort(self, exc: BaseException) -> None:
        """Settle a stream whose request may never have gone out: as `_Call.failed` does."""
        if not self.once.acquire(blocking=False):
            return
        try:
            self.context.run(self.call.failed, exc)
        except Exception:
            logger.exception("meterline: settling a stream failed")

    def _record(self, status: str) -> None:
        acc = self.acc
        if acc is None:
            self.call.record(None, status, self.last)
        else:
            self.call.record(acc.usage, status, self.last, acc.model, acc.response_id)


def _iterate(state: StreamState, inner: Iterator[Any]) -> Iterator[Any]:
    status: str | None = None
    try:
        while True:
            state.in_next = True
            try:
                chunk = next(inner)
            except StopIteration:
                state.last = _ns()
                status = OK
                return
            finally:
                state.in_next = False
            if not state.take(chunk):
                yield chunk
    except BaseException as exc:
        if not state.sent:
            state.abort(exc)
        elif not isinstance(exc, GeneratorExit):
            status = status_of(exc)
        raise
    finally:
        state.settle(status)


async def _iterate_async(state: StreamState, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
    status: str | None = None
    try:
        while True:
            state.in_next = True
            try:
                chunk = await inner.__anext__()
            except StopAsyncIteration:
                state.last = _ns()
                status = OK
                return
            finally:
                state.in_next = False
            if not state.take(chunk):
                yield chunk
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            status = status_of(exc)
        raise
    finally:
        state.settle(status)


def _wrap_sdk_stream(state: StreamState, stream: Any, is_async: bool) -> None:
    """Wrap a Stainless ``Stream``/``AsyncStream`` in place: its iterator and its response's close.

    The stream helpers (``messages.stream()``, ``chat.completions.stream()``) close the HTTP
    response directly, so the response's ``close`` is where an early exit shows.
    """
    inner = stream._iterator
    response = stream.response
    if is_async:
        stream._iterator = _iterate_async(state, inner)
        original_aclose = response.aclose

        async def aclose() -> None:
            try:
                await original_aclose()
            finally:
                if not state.in_next:
                    state.settle(None)

        response.aclose = aclose
    else:
        stream._iterator = _iterate(state, inner)
        original_close = response.close

        def close() -> None:
            try:
                original_close()
            finally:
                if not state.in_next:
                    state.settle(None)

        response.close = close
    weakref.finalize(stream, state.settle, None)


# --------------------------------------------------------------------------------------------
# Patches


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
            return _lazy(target, endpoint, original, args, kwargs, contextvars.copy_context())

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
                target.resolve()._machinery_failed("instrumentation (a stream manager)", endpoint.method)
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
    saved = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, replacement)

    def undo() -> None:
        if owner.__dict__.get(name) is not replacement:
            return  # replaced since by someone else: leave theirs
        if saved is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, saved)

    target.undo.append(undo)


_MISSING: Final = object()


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
    return value is _MISSING or type(value).__name__ in ("NotGiven", "Omit")


MISSING: Final = _MISSING
"""Default for ``kwargs.get`` that `unset` recognises."""
