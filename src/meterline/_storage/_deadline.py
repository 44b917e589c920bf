"""Deadlines for blocking store operations: a connection that does not answer in time is cut.

A server that is stopped rather than down (``SIGSTOP``, a VM paused, a network partition
that drops packets silently) accepts and acknowledges TCP traffic but never answers: the
driver waits on its socket without limit, and no server-side ``statement_timeout`` can fire,
since the server is not running. psycopg has no client-side timeout for a statement, so
meterline bounds an operation itself: `deadline` registers the connection's socket with one
watchdog thread per process, which shuts the socket down (``shutdown(SHUT_RDWR)``) once the
operation overruns. The driver's wait then returns at once with a connection error, the
store reports itself unavailable, and the spool or the budget's ``on_store_error`` takes
over. The operation is not repeated on a fresh connection: a store that has just failed to
answer in time would most likely make its caller wait as long again.

Registering costs a heap push under a lock; the watchdog wakes when the earliest deadline
passes (about once per timeout while operations flow), so an operation that finishes in
time costs a few microseconds and no thread switch.
"""

from __future__ import annotations as _annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Final

from meterline.exceptions import ConfigurationError

__all__ = ["Deadline", "check_bound", "deadline"]

_WAIT_FOREVER: Final = None


class Deadline:
    """One bounded operation: when it must end, and whether the watchdog cut it.

    Attributes:
        at: ``time.monotonic()`` value past which the connection is cut.
        seconds: The bound it was given, for messages.
        cut: Whether the watchdog shut the connection down (the operation overran).
    """

    __slots__ = ("at", "cut", "done", "fileno", "seconds")

    def __init__(self, fileno: int, seconds: float) -> None:
        self.fileno = fileno
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.done = False
        self.cut = False


class _Watchdog:
    """The thread that cuts overrunning connections; one per process, started on first use."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.heap: list[tuple[float, int, Deadline]] = []
        self.order = itertools.count()
        self.thread: threading.Thread | None = None

    def add(self, entry: Deadline) -> None:
        with self.cond:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="meterline-deadlines", daemon=True)
                self.thread.start()
            heapq.heappush(self.heap, (entry.at, next(self.order), entry))
            if self.heap[0][2] is entry:  # earlier than what the thread sleeps until
                self.cond.notify()

    def end(self, entry: Deadline) -> None:
        with self.cond:  # after this, the watchdog never touches the socket (it may be reused)
            entry.done = True

    def _run(self) -> None:
        heap = self.heap
        with self.cond:
            while True:
                while heap and heap[0][2].done:
                    heapq.heappop(heap)
                if not heap:
                    self.cond.wait(_WAIT_FOREVER)
                    continue
                wait = heap[0][0] - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                entry = heapq.heappop(heap)[2]
                entry.cut = True
                _shut(entry.fileno)


def _shut(fileno: int) -> None:
    """Shut the socket behind ``fileno`` down for both directions; its owner's wait then ends."""
    with contextlib.suppress(OSError):  # already closed by the peer: nothing to cut
        dup = socket.socket(fileno=os.dup(fileno))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


_watchdog = _Watchdog()


def _after_fork() -> None:
    global _watchdog  # noqa: PLW0603 - a forked child has no watchdog thread: it starts its own
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork)


def check_bound(timeout: object) -> float | None:
    """``timeout`` (the longest one store operation may take, in seconds) as a float, or ``None``.

    Raises:
        ConfigurationError: when it is neither ``None`` nor a positive, finite number (bools
            and NaN included).
    """
    if timeout is None:
        return None
    if type(timeout) not in (int, float) or not 0 < timeout < float("inf"):  # type: ignore[operator]
        raise ConfigurationError(
            f"timeout={timeout!r}: expected a positive number of seconds, or None for no bound"
        )
    return float(timeout)  # type: ignore[arg-type]


@contextlib.contextmanager
def deadline(fileno: int, seconds: float | None) -> Iterator[Deadline | None]:
    """Bound the operation in the ``with`` block to ``seconds``, cutting socket ``fileno`` past it.

    Args:
        fileno: The connection's socket (``psycopg.Connection.pgconn.socket``).
        seconds: The bound; ``None`` leaves the operation unbounded.

    Yields:
        The `Deadline` (``None`` when unbounded): after the block, ``cut`` says whether the
        connection was shut down because the operation overran.
    """
    if seconds is None:
        yield None
        return
    entry = Deadline(fileno, seconds)
    watchdog = _watchdog
    watchdog.add(entry)
    try:
        yield entry
    finally:
        watchdog.end(entry)
