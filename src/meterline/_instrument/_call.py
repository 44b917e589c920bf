"""One metered SDK call: reserve, run the SDK's method, record one event (or wrap its stream).

A patched method runs the SDK's own method and hands back exactly what it returned or raised.
Around it, meterline reserves against the budgets (the only exception it may raise: a budget
the user set), times the call and records one event, read with the rules of the API the
endpoint speaks. Everything else that can go wrong here is a machinery failure: logged on the
``meterline`` logger, counted in `Meter.stats`, never raised into the caller's code.
"""

from __future__ import annotations as _annotations

import contextvars
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from meterline._instrument._endpoint import Endpoint, Request, Target
from meterline._instrument._status import OK, STOPPED, status_of
from meterline._instrument._streams import StreamState, iterate, iterate_async, wrap_sdk_stream
from meterline.exceptions import BudgetExceeded, BudgetStoreError

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = ["Call", "begin", "in_metered_call", "response_arrived", "run_async", "run_lazy", "run_sync"]

logger = logging.getLogger("meterline")

_POLICY: Final = (BudgetExceeded, BudgetStoreError)
"""What `Meter.reserve` raises on purpose (a budget the user set): passed on to the caller."""

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("meterline_instrument_active", default=False)
"""True while a metered call runs: an SDK method that calls another patched one (an old SDK's
``beta.chat.completions.parse`` calls ``chat.completions.create``) is metered once, outside."""

_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "meterline_instrument_call", default=None
)
"""The metered call whose SDK method runs now: told by `response_arrived` that its response came."""

_ns = time.perf_counter_ns


class Call:
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
        complete: bool = True,
        *,
        service_tier: str | None = None,
        reported_cost: Decimal | None = None,
    ) -> None:
        """Record the event; if the payload cannot be recorded, record the call as unmeasured.

        ``complete=False``: the payload is what a stream reported before it was cut (a lower bound).
        ``service_tier`` and ``reported_cost``: what a stream's chunks said (a body says it itself).
        """
        meter = self.meter
        latency = None if end is None else (end - self.start) / 1e6
        requested = self.request.model
        options: dict[str, Any] = {}
        if self.reservation is not None:
            options["reservation"] = self.reservation
        if not complete:
            options["complete"] = False
        asked = self.request.service_tier  # "auto" and "default" ask for no tier in particular
        tier = service_tier if service_tier is not None else None if asked in ("auto", "default") else asked
        if tier is not None:
            options["service_tier"] = tier
        if reported_cost is not None:
            options["reported_cost"] = reported_cost
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
                api=self.endpoint.api,
                **options,
            )
            return
        except Exception:  # noqa: BLE001 - a bad payload never breaks the host's call
            meter.guard.failed(
                "instrumentation (recording a response)", f"{self.target.provider}/{requested}"
            )
        options.pop("complete", None)
        options.pop("service_tier", None)
        options.pop("reported_cost", None)
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
            meter.guard.failed("instrumentation (recording a call)", f"{self.target.provider}/{requested}")
            self.release()

    def release(self) -> None:
        """Release the reservation of a call that will record nothing."""
        if self.reservation is None:
            return
        try:
            self.reservation.release()
        except Exception:  # noqa: BLE001
            self.meter.guard.failed("instrumentation (releasing a reservation)", str(self.request.model))

    def failed(self, exc: BaseException) -> None:
        """The SDK raised ``exc``: record a failed call, or release when the API was never asked.

        A response that arrived and then failed in the SDK (openai's ``LengthFinishReasonError``,
        a ``ValidationError`` from ``parse``) was sent and billed: it is recorded, with the usage
        of the completion the exception carries, if any.
        """
        try:
            if self.arrived or isinstance(exc, (self.target.api_errors, STOPPED)):
                completion = getattr(exc, "completion", None)
                self.record(completion, status_of(exc), _ns())
            else:
                self.release()  # a bad argument the SDK refused before sending anything
        except Exception:  # noqa: BLE001
            self.meter.guard.failed("instrumentation (a failed call)", str(self.request.model))

    def returned(self, result: Any, hide: bool) -> Any:
        """Record a response, or wrap a stream; returns what the caller gets (the same object)."""
        end = _ns()
        try:
            target = self.target
            kind = self.endpoint.kind
            if kind == "iter":
                state = StreamState(self, hide)
                iterator = iterate_async(state, result)
                weakref.finalize(iterator, state.settle, None)
                return iterator
            # Old anthropic stream helpers return their own stream object around the SDK's.
            stream = (
                result if isinstance(result, target.stream_types) else getattr(result, "_raw_stream", None)
            )
            if stream is not None and isinstance(stream, target.stream_types):
                wrap_sdk_stream(StreamState(self, hide), stream, isinstance(stream, target.stream_types[1:]))
                return result
            reader = self.endpoint.usage
            if reader is not None:
                self.record(reader(result), OK, end)
            elif _is_raw_response(result):  # with_raw_response, with_streaming_response
                from meterline._instrument._raw import meter_raw  # noqa: PLC0415 - httpx, loaded when used

                meter_raw(self, result, end)
            else:
                self.record(result, OK, end)
        except Exception:  # noqa: BLE001 - the caller gets its result whatever happens here
            self.meter.guard.failed("instrumentation (a response)", str(self.request.model))
        return result


def _is_raw_response(result: Any) -> bool:
    return hasattr(result, "http_response") and hasattr(result, "parse")


def begin(target: Target, endpoint: Endpoint, kwargs: dict[str, Any]) -> tuple[Call | None, bool]:
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
        meter.guard.failed("instrumentation (reading a request)", endpoint.method)
        return None, False
    reservation = None
    if meter.budgets:
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
            meter.guard.failed("instrumentation (reserving)", str(request.model))
    return Call(target, endpoint, meter, request, reservation), hide


def run_sync(
    target: Target, endpoint: Endpoint, kwargs: dict[str, Any], invoke: Callable[[dict[str, Any]], Any]
) -> Any:
    """Run one synchronous call of ``endpoint``, metered."""
    if _ACTIVE.get():
        return invoke(kwargs)
    call, hide = begin(target, endpoint, kwargs)
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
    call, hide = begin(target, endpoint, kwargs)
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


def in_metered_call() -> bool:
    """Whether a metered SDK call is running in this context (its requests are metered by it)."""
    return _ACTIVE.get()


def response_arrived() -> None:
    """Tell the metered call running now, if any, that its response came back."""
    call = _CURRENT.get()
    if call is not None:
        call.arrived = True


def run_lazy(
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
    call, hide = context.run(begin, target, endpoint, kwargs)
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
    yield from iterate(state, inner)
