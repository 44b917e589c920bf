"""Metered streams: the SDK's own stream object, its iterator wrapped, one event when it ends.

The user iterates the same chunks (less the usage-only chunk meterline asked for), and the
event is recorded once, when the stream ends, raises, is closed, or is collected, in the
context of the call that opened it (so the scopes in force at the call get it, whichever
thread or task finishes the stream).
"""

from __future__ import annotations as _annotations

import contextvars
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from meterline._instrument._status import CANCELLED, OK, status_of
from meterline._providers import StreamAccumulator

if TYPE_CHECKING:
    from meterline._instrument._call import Call

__all__ = ["StreamState", "iterate", "iterate_async", "wrap_sdk_stream"]

_ns = time.perf_counter_ns


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

    def __init__(self, call: Call, hide: bool) -> None:
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
            self.call.meter.guard.failed("instrumentation (a stream chunk)", str(self.call.request.model))

    def take(self, chunk: Any) -> bool:
        """Take one chunk into account; True when it is to be hidden from the caller."""
        self.last = _ns()
        self.sent = True
        try:
            return self.call.endpoint.observe(self, chunk)
        except Exception:  # noqa: BLE001
            self.call.meter.guard.failed("instrumentation (a stream chunk)", str(self.call.request.model))
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
        except Exception:  # noqa: BLE001 - a stream's end never breaks the caller's loop
            self.call.meter.guard.failed("instrumentation (settling a stream)", str(self.call.request.model))

    def abort(self, exc: BaseException) -> None:
        """Settle a stream whose request may never have gone out: as `Call.failed` does."""
        if not self.once.acquire(blocking=False):
            return
        try:
            self.context.run(self.call.failed, exc)
        except Exception:  # noqa: BLE001 - a stream's end never breaks the caller's loop
            self.call.meter.guard.failed("instrumentation (settling a stream)", str(self.call.request.model))

    def _record(self, status: str) -> None:
        acc = self.acc
        if acc is None:
            self.call.record(None, status, self.last)
        else:
            usage = acc.usage
            # A stream that ended before its final count (cut after Anthropic's message_start):
            # what arrived is a lower bound, recorded as such, never as the call's usage.
            complete = usage is None or acc.complete
            self.call.record(
                usage,
                status,
                self.last,
                acc.model,
                acc.response_id,
                complete,
                service_tier=acc.service_tier,
                reported_cost=acc.reported_cost,
            )


def iterate(state: StreamState, inner: Iterator[Any]) -> Iterator[Any]:
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


async def iterate_async(state: StreamState, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
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


def wrap_sdk_stream(state: StreamState, stream: Any, is_async: bool) -> None:
    """Wrap a Stainless ``Stream``/``AsyncStream`` in place: its iterator and its response's close.

    The stream helpers (``messages.stream()``, ``chat.completions.stream()``) close the HTTP
    response directly, so the response's ``close`` is where an early exit shows.
    """
    inner = stream._iterator
    response = stream.response
    if is_async:
        stream._iterator = iterate_async(state, inner)
        original_aclose = response.aclose

        async def aclose() -> None:
            try:
                await original_aclose()
            finally:
                if not state.in_next:
                    state.settle(None)

        response.aclose = aclose
    else:
        stream._iterator = iterate(state, inner)
        original_close = response.close

        def close() -> None:
            try:
                original_close()
            finally:
                if not state.in_next:
                    state.settle(None)

        response.close = close
    weakref.finalize(stream, state.settle, None)
