"""The ledger writer: takes events off the record path and commits them to a backend.

``batch`` durability (the default): `LedgerWriter.submit` appends the event to a bounded
in-memory queue and returns (a ``deque.append`` and two length checks); a daemon thread,
started on the first submit and again in a forked child, commits the queue in batches of
``batch_size`` events, as soon as that many wait or ``flush_interval`` seconds have passed.
The events a SIGKILL can lose are those submitted since the last returned `flush` and not
yet committed: at most ``max_queue`` events plus one batch in flight, and in steady state
about ``flush_interval`` seconds' worth.

``sync`` durability: `submit` writes the event itself, in the caller's thread, under a lock
that serialises the writer's backend calls, and returns only once it is committed (or,
if the backend fails, fsynced to the spool). Writing in the caller's thread costs no thread
hand-off, and a failure is still contained: nothing is raised into the caller.

Failures. When ``backend.write`` raises (anything), the batch is appended to the `Spool`,
the failure is logged on the ``meterline`` logger and counted, and the backend is left
alone for a back-off (doubling from 50 ms to 30 s) during which batches go straight to the
spool. The thread then retries by replaying the spool; once that works the backend is used
again. Nothing is ever dropped without being logged and counted in ``WriterStats.lost``,
which only grows when the spool fails too (a full disk).

Back-pressure. When ``max_queue`` events wait, ``when_full="block"`` makes `submit` wait
for room, at most ``block_timeout`` seconds, after which the event goes to the spool;
``when_full="spool"`` sends it to the spool at once. The thread replays the spool as soon as
the queue has room. Both are counted (``blocked``, ``overflowed``).

Fork. In a forked child the queue, locks and thread state start afresh (the events already
submitted are the parent's to write) and the thread starts again on the child's first
submit. The backend must itself be usable in the child (the built-in ones reopen their
connection per process).

Exit. An ``atexit`` hook closes every writer still open (flushing it, at most
``EXIT_TIMEOUT`` seconds each; what is still queued then goes to the spool).
"""

from __future__ import annotations as _annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from meterline._events import UsageEvent
from meterline.exceptions import ConfigurationError
from meterline.ledger._base import LedgerBackend
from meterline.ledger._spool import Spool, default_spool_dir

__all__ = ["Durability", "LedgerWriter", "WhenFull", "WriterStats"]

_log: Final = logging.getLogger("meterline")

Durability = Literal["batch", "sync"]
"""``batch``: committed in the background; ``sync``: committed before `LedgerWriter.submit` returns."""
WhenFull = Literal["block", "spool"]
"""What `LedgerWriter.submit` does when ``max_queue`` events wait: wait for room, or spool."""

RETRY_MIN: Final = 0.05
"""First back-off after a failure, in seconds (doubles at each failure)."""
RETRY_MAX: Final = 30.0
"""Longest back-off between retries of a failing backend, in seconds."""
EXIT_TIMEOUT: Final = 10.0
"""How long the exit hook waits for each writer to commit what is queued."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """Counters of a `LedgerWriter` (since it was made, or since the fork in a child)."""

    submitted: int
    """Events handed to `LedgerWriter.submit`."""
    committed: int
    """Events the backend took directly (``backend.write`` returned)."""
    spooled: int
    """Events written to the spool (backend failures and queue overflow)."""
    replayed: int
    """Events replayed from the spool into the backend."""
    failures: int
    """Failed backend calls (writes and replays)."""
    lost: int
    """Events neither committed nor spooled (the spool failed too); each one was logged."""
    queued: int
    """Events waiting in the queue now."""
    blocked: int
    """Submits that found the queue full and waited (``when_full="block"``)."""
    overflowed: int
    """Submits that found the queue full and went to the spool (``"spool"``, or a wait that timed out)."""
    backend_down: bool
    """The last backend call failed; batches go to the spool until a retry works."""


class LedgerWriter:
    """Commits submitted events to a ledger backend, in the background or synchronously.

    Args:
        backend: Where events go. The writer never closes it (its owner does).
        durability: ``"batch"`` (default) or ``"sync"``; see the module docstring.
        batch_size: Most events per ``backend.write`` call; a batch is written as soon as
            this many wait.
        flush_interval: Longest time, in seconds, an event waits in the queue.
        max_queue: Events that may wait before ``when_full`` applies.
        spool: Where failed and overflowing batches go; by default the ledger's own spool
            (`default_spool_dir` of ``backend.url``), created only when first needed.
        when_full: ``"block"`` (default) or ``"spool"``.
        block_timeout: Longest a blocked `submit` waits for room before spooling the event.

    Raises:
        ConfigurationError: on an invalid option.
    """

    def __init__(
        self,
        backend: LedgerBackend,
        *,
        durability: Durability = "batch",
        batch_size: int = 1000,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        spool: Spool | None = None,
        when_full: WhenFull = "block",
        block_timeout: float = 10.0,
    ) -> None:
        if durability not in ("batch", "sync"):
            raise ConfigurationError(f"durability={durability!r}: expected 'batch' or 'sync'")
        if when_full not in ("block", "spool"):
            raise ConfigurationError(f"when_full={when_full!r}: expected 'block' or 'spool'")
        for name, value in (("batch_size", batch_size), ("max_queue", max_queue)):
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{name}={value!r}: expected a positive int")
        for name, number in (("flush_interval", flush_interval), ("block_timeout", block_timeout)):
            if isinstance(number, bool) or not 0 < number < float("inf"):
                raise ConfigurationError(f"{name}={number!r}: expected a positive number of seconds")
        self.backend = backend
        self.durability: Durability = durability
        self.spool = spool if spool is not None else Spool(default_spool_dir(backend.url))
        self._batch_size = batch_size
        self._flush_interval = float(flush_interval)
        self._max_queue = max_queue
        self._when_full: WhenFull = when_full
        self._block_timeout = float(block_timeout)
        self._closed = False
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks, thread state and counters (at construction, and in a forked child)."""
        self._queue: deque[UsageEvent] = deque()
        self._lock = threading.Lock()  # queue accounting and counters
        self._progress = threading.Condition(self._lock)  # flushers and blocked submitters wait here
        self._write_lock = threading.Lock()  # serialises every call to the backend and the spool
        self._wake = threading.Event()  # wakes the thread
        self._thread: threading.Thread | None = None
        self._stop = False
        # The hot path's only test: batch mode, thread running, not closed.
        self._fast = False
        self._taken = 0  # events taken off the queue (by the thread or a draining flush)
        self._done = 0  # of those, committed, spooled or lost
        self._direct = 0  # events submitted without the queue (sync mode, overflow, after close)
        self._committed = 0
        self._spooled = 0
        self._replayed = 0
        self._failures = 0
        self._lost = 0
        self._blocked = 0
        self._overflowed = 0
        self._waiters = 0
        self._down = False
        self._retry_at = 0.0
        self._backoff = RETRY_MIN
        self._spool_dirty = True  # a spool left by an earlier run is replayed once the thread starts

    def __repr__(self) -> str:
        return f"<meterline.ledger.LedgerWriter {self.durability} {self.backend.url!r}>"

    # -- submitting -----------------------------------------------------------------------

    def submit(self, event: UsageEvent) -> None:
        """Hand ``event`` to the ledger; never raises because of the backend.

        In ``batch`` mode it is queued and committed in the background; in ``sync`` mode it
        is committed (or spooled) before this returns.
        """
        queue = self._queue
        if self._fast and len(queue) < self._max_queue:
            queue.append(event)
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
            return
        self._submit_slow(event)

    def _submit_slow(self, event: UsageEvent) -> None:
        if self.durability == "sync" or self._closed:
            if self._thread is None and not self._closed:
                self._start_thread()  # it replays the spool once the backend is back
            with self._lock:
                self._direct += 1
            self._write_direct(event)
            return
        if self._thread is None and not self._start_thread():
            with self._lock:
                self._direct += 1
            self._write_direct(event)
            return
        if len(self._queue) < self._max_queue:
            self._queue.append(event)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
            return
        self._full(event)

    def _full(self, event: UsageEvent) -> None:
        """The queue is full: wait for room (``block``, bounded) or spool the event."""
        queue = self._queue
        if self._when_full == "block":
            deadline = time.monotonic() + self._block_timeout
            with self._lock:
                self._blocked += 1
                self._waiters += 1
                self._wake.set()
                try:
                    while len(queue) >= self._max_queue:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self._stop:
                            break
                        self._progress.wait(remaining)
                    else:
                        queue.append(event)
                        return
                finally:
                    self._waiters -= 1
        with self._lock:
            self._direct += 1
            self._overflowed += 1
        self._to_spool([event], "the queue was full")  # the spool has its own lock
        self._wake.set()  # the thread replays it once the backend has room

    def _write_direct(self, event: UsageEvent) -> None:
        with self._write_lock:
            self._write([event])

    # -- writing (``_write_lock`` held) ---------------------------------------------------------

    def _write(self, batch: Sequence[UsageEvent]) -> None:
        """Commit ``batch``, or spool it if the backend fails or is backing off."""
        if self._down and time.monotonic() < self._retry_at:
            self._to_spool(batch, "the backend is failing")
            return
        try:
            self.backend.write(batch)
        except Exception as exc:  # noqa: BLE001 - machinery failures never reach the caller
            self._failed(exc, f"writing {len(batch)} events")
            self._to_spool(batch, "the backend failed")
            return
        with self._lock:
            self._committed += len(batch)
        if self._down:
            self._recovered()

    def _to_spool(self, batch: Sequence[UsageEvent], why: str) -> None:
        try:
            self.spool.append(batch)
        except Exception:  # noqa: BLE001 - logged and counted, never raised into the caller
            with self._lock:
                self._lost += len(batch)
            _log.exception(
                "meterline ledger: LOST %d events (%s, and the spool %s could not take them); ids %s…",
                len(batch),
                why,
                self.spool.directory,
                [event.id for event in batch[:5]],
            )
            return
        with self._lock:
            self._spooled += len(batch)
            self._spool_dirty = True

    def _failed(self, exc: BaseException, what: str) -> None:
        with self._lock:
            self._failures += 1
            first = not self._down
            self._down = True
            self._retry_at = time.monotonic() + self._backoff
            backoff, self._backoff = self._backoff, min(self._backoff * 2, RETRY_MAX)
        log = _log.error if first else _log.warning
        log(
            "meterline ledger %s: %s failed (%r); spooling to %s, retrying in %.2fs",
            self.backend.url,
            what,
            exc,
            self.spool.directory,
            backoff,
            exc_info=first,
        )

    def _recovered(self, *, replay: bool = True) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            self._backoff = RETRY_MIN
            if replay:
                self._spool_dirty = True
        _log.warning("meterline ledger %s: the backend works again", self.backend.url)

    def _replay(self) -> None:
        """Replay the spool into the backend (thread only; ``_write_lock`` taken per batch)."""
        with self._lock:
            self._spool_dirty = False
        try:
            replayed = self.spool.replay(_Serialised(self), batch_size=self._batch_size)
        except Exception as exc:  # noqa: BLE001 - the spool keeps what did not commit
            self._failed(exc, "replaying the spool")
            with self._lock:
                self._spool_dirty = True
            return
        with self._lock:
            self._replayed += replayed
        self._recovered(replay=False)
        if replayed:
            _log.info("meterline ledger %s: replayed %d spooled events", self.backend.url, replayed)

    # -- the thread -----------------------------------------------------------------------

    def _start_thread(self) -> bool:
        with self._lock:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._run, name="meterline-ledger-writer", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: write in the caller's thread
                return False
            self._thread = thread
            self._fast = self.durability == "batch" and not self._closed
            return True

    def _take(self) -> list[UsageEvent]:
        """Up to ``batch_size`` events off the queue, accounted as taken."""
        queue = self._queue
        with self._lock:
            batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
            self._taken += len(batch)
            if self._waiters:
                self._progress.notify_all()
        return batch

    def _drain(self) -> None:
        """Write everything queued, batch by batch."""
        while self._queue:
            with self._write_lock:
                batch = self._take()
                if not batch:
                    return
                try:
                    self._write(batch)
                finally:
                    with self._lock:
                        self._done += len(batch)
                        self._progress.notify_all()

    def _run(self) -> None:
        wake = self._wake
        while True:
            timeout = self._flush_interval
            if self._spool_dirty and self._down:
                timeout = max(0.0, min(timeout, self._retry_at - time.monotonic()))
            wake.wait(timeout)
            wake.clear()
            try:
                self._drain()
                if self._spool_dirty and time.monotonic() >= self._retry_at:
                    self._replay()
            except Exception:  # noqa: BLE001  # pragma: no cover - a bug; keep the thread alive
                _log.exception("meterline ledger writer: unexpected error (the thread carries on)")
            if self._stop and not self._queue:
                return

    # -- flushing and closing -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call is committed or spooled.

        Args:
            timeout: Longest wait, in seconds (``None``: as long as it takes).

        Returns:
            ``True`` when it all was; ``False`` on timeout.
        """
        with self._lock:
            target = self._taken + len(self._queue)
            if self._done >= target:
                return True
            thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self._drain()  # no thread (or it is us): write in this thread
        else:
            self._wake.set()
        with self._lock:
            return self._progress.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread. Idempotent; the backend is left open (its owner closes it).

        What is still queued when ``timeout`` runs out goes to the spool. A `submit` after
        `close` writes synchronously.

        Returns:
            ``True`` when everything was committed or spooled in time.
        """
        with self._lock:
            self._closed = True
            self._fast = False
            self._stop = True
            thread = self._thread
        flushed = self.flush(timeout)
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if not flushed:
            self._spool_queue()
        elif self._queue:  # a submit that raced with close
            self._drain()
        with self._write_lock:
            # Seal the open segment so a replayer (`meterline ledger replay`, or a later
            # meter) can take it; a later submit starts a new one.
            self.spool.close()
        _WRITERS.discard(self)
        return flushed and not self._queue

    def _spool_queue(self) -> None:
        """Move what is still queued straight to the spool (the backend is stuck)."""
        while True:
            batch = self._take()
            if not batch:
                return
            self._to_spool(batch, "the writer was closed before the backend took them")
            with self._lock:
                self._done += len(batch)
                self._progress.notify_all()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- stats and fork ---------------------------------------------------------------------

    def stats(self) -> WriterStats:
        """The writer's counters now."""
        with self._lock:
            queued = len(self._queue)
            return WriterStats(
                submitted=self._taken + queued + self._direct,
                committed=self._committed,
                spooled=self._spooled,
                replayed=self._replayed,
                failures=self._failures,
                lost=self._lost,
                queued=queued,
                blocked=self._blocked,
                overflowed=self._overflowed,
                backend_down=self._down,
            )

    def _after_fork_in_child(self) -> None:
        self._reset()  # the parent's queued events are the parent's to write


class _Serialised:
    """A backend view whose ``write`` takes the writer's write lock for each batch.

    Replaying holds it per batch, not for the whole spool, so a ``sync`` submit waits for one
    batch at most.
    """

    __slots__ = ("_writer", "url")

    def __init__(self, writer: LedgerWriter) -> None:
        self._writer = writer
        self.url = writer.backend.url

    def write(self, events: Sequence[UsageEvent]) -> int:
        with self._writer._write_lock:
            return self._writer.backend.write(events)

    def __getattr__(self, name: str) -> object:
        return getattr(self._writer.backend, name)


_WRITERS: Final[weakref.WeakSet[LedgerWriter]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer._after_fork_in_child()


def _close_all_at_exit() -> None:
    for writer in list(_WRITERS):
        try:
            writer.close(EXIT_TIMEOUT)
        except Exception:  # noqa: BLE001 - exit must go on
            _log.exception("meterline ledger writer: flushing at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
