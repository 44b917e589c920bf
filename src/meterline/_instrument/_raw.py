"""Responses the caller reads itself (``with_raw_response``, ``with_streaming_response``).

Such a call hands back the SDK's response object around the HTTP response, and the caller
reads the body however it likes (``parse()``, ``json()``, ``iter_lines()``, a ``Stream`` over
it), or not at all. A body the SDK has read already (a raw response that does not stream) is
decoded and recorded at once. Otherwise the HTTP response's byte stream is wrapped in a tee:
the caller reads exactly the bytes it would have read, and meterline decodes a copy as they
pass (server-sent events one by one, a JSON body whole, up to `MAX_BODY`), recording one
event when the body ends, or when the response is closed or collected before its end
(cancelled). This is how LangChain's ``ChatOpenAI`` and ``ChatAnthropic`` call the SDKs.

The SDKs' HTTP library is httpx, or its successor httpx2 in newer releases: the tee is built
on the byte-stream classes of whichever library the response comes from (its ``iter_raw``
checks that the stream is one of them).
"""

from __future__ import annotations as _annotations

import codecs
import functools
import json
import sys
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from meterline._instrument._status import CANCELLED, OK
from meterline._instrument._streams import StreamState

if TYPE_CHECKING:
    from meterline._instrument._call import Call

__all__ = ["MAX_BODY", "meter_raw"]

MAX_BODY: Final = 16 * 1024 * 1024
"""The most of a JSON body (or of one server-sent event) kept to read usage from, in bytes;
past it the call is recorded as unmeasured (the caller's bytes are never cut)."""

_ENDS: Final = frozenset({"message_stop", "response.completed", "response.incomplete", "response.failed"})
"""Event types that end a response (OpenAI chat streams end with ``data: [DONE]``): the SDK's
stream stops reading there and closes the response, which is then not a cancelled call."""

_ns = time.perf_counter_ns


def meter_raw(call: Call, result: Any, end: int) -> None:
    """Record a raw response's call now (body read already) or once the caller has read it."""
    response = result.http_response
    library = sys.modules[type(response).__module__.partition(".")[0]]
    try:
        content = response.content
    except library.ResponseNotRead:
        body = _Body(call, response)
        tee, async_tee = _tees(library)
        if isinstance(response.stream, library.AsyncByteStream):
            response.stream = async_tee(response.stream, body)
        else:
            response.stream = tee(response.stream, body)
        weakref.finalize(response, body.closed)
        return
    call.record(_json(content), OK, end)


def _json(content: bytes) -> object:
    """The JSON body, or ``None`` (recorded as unmeasured) when it is none."""
    try:
        body: object = json.loads(content)
    except ValueError:
        return None
    return body


class _Body:
    """The copy of one body meterline reads as the caller's bytes pass."""

    __slots__ = ("buffer", "decoder", "pending", "sse", "state", "text")

    def __init__(self, call: Call, response: Any) -> None:
        self.state = StreamState(call, hide=False)
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        self.sse = media == "text/event-stream"
        """Server-sent events (read event by event), else a JSON body (read whole at its end)."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        self.decoder: Any = None
        if encoding in {"gzip", "deflate"}:
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header
        elif encoding not in {"", "identity"}:
            self.state.acc = None  # br, zstd: not read here; the call is recorded as unmeasured
        self.buffer: bytearray | None = bytearray()
        self.text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes) -> None:
        """Read a copy of the next bytes (a failure here leaves the call unmeasured, never raised)."""
        if self.state.acc is None or self.buffer is None:
            return
        try:
            if self.decoder is not None:
                data = self.decoder.decompress(data)
            if self.sse:
                self._events(self.text.decode(data))
            elif len(self.buffer) + len(data) > MAX_BODY:
                self.buffer = None
            else:
                self.buffer += data
        except Exception:  # noqa: BLE001 - the caller's bytes pass whatever happens here
            self.state.acc = None
            self.state.call.meter.guard.failed(
                "instrumentation (a raw response)", str(self.state.call.request.model)
            )

    def _events(self, text: str) -> None:
        pending = (self.pending + text).replace("\r\n", "\n")
        *events, self.pending = pending.split("\n\n")
        if len(self.pending) > MAX_BODY:
            raise ValueError("a server-sent event past MAX_BODY")
        for event in events:
            data = "\n".join(
                line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")
            )
            if data == "[DONE]":
                self.state.complete = True
            elif data:
                chunk = json.loads(data)
                self.state.add(chunk)
                kind = chunk.get("type") if type(chunk) is dict else None
                if type(kind) is str and kind in _ENDS:
                    self.state.complete = True

    def ended(self) -> None:
        """The body's last byte passed: record the call."""
        state = self.state
        state.last = _ns()
        state.complete = True
        if self.sse:
            state.settle(OK)
            return
        if not state.once.acquire(blocking=False):
            return
        buffer = self.buffer if state.acc is not None else None
        payload = None if buffer is None else _json(bytes(buffer))
        state.context.run(state.call.record, payload, OK, state.last)

    def closed(self) -> None:
        """The response was closed (or collected): before its end, the call was cancelled."""
        self.state.settle(None if self.sse else CANCELLED)


@functools.cache
def _tees(library: ModuleType) -> tuple[type[Any], type[Any]]:
    """The sync and async tees over ``library``'s byte streams (httpx or httpx2)."""

    class Tee(library.SyncByteStream):  # type: ignore[misc, name-defined]
        """The caller's byte stream, a copy of each chunk read by meterline as it passes."""

        def __init__(self, inner: Any, body: _Body) -> None:
            self._inner = inner
            self._body = body

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._body.feed(chunk)
                yield chunk
            self._body.ended()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._body.closed()

    class AsyncTee(library.AsyncByteStream):  # type: ignore[misc, name-defined]
        """`Tee` for an async client."""

        def __init__(self, inner: Any, body: _Body) -> None:
            self._inner = inner
            self._body = body

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self._inner:
                self._body.feed(chunk)
                yield chunk
            self._body.ended()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._body.closed()

    return Tee, AsyncTee
