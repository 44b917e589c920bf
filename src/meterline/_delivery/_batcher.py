"""The batcher: delivers events to a destination in batches, from a background thread.

One home for what the ledger writer (`meterline.ledger`) and the billing sink
(`meterline.exporters.BillingSink`) share, modelled on sentry-python's ``_batcher.py``. A
subclass says what delivering a batch means (`Batcher._deliver`) and what becomes of an
event the queue cannot take (`Batcher._full`, `Batcher._after_close`); everything else is
here.

Submitting. `Batcher.submit` appends the event to a bounded in-memory queue and returns (a
``deque.append`` and two length checks): it runs on the caller's hot path. A daemon thread,
started by the first submit (and again by the first submit in a forked child), delivers
the queue in batches of ``batch_size`` events, as soon as that many wait or
``flush_interval`` seconds have passed. One lock serialises every call to the destination,
so `_deliver` never runs twice at once.

Failures. When `_deliver` raises (anything), the batch is appended to the `Spool`, the
failure is logged and counted by the batcher's `Guard`, and the destination is left alone
for a back-off (doubling from ``retry_min`` to ``retry_max`` seconds) during which batches
go straight to the spool. Then the thread replays the spool, oldest first; once a delivery
works, live delivery resumes and the spool is replayed. An event neither the destination
nor the spool took is counted as ``dropped`` and logged: never silently gone.

Overflow. An event that finds the queue full can be spilled (`Batcher._spill`): it joins an
overflow buffer (as large as the queue) that a second daemon thread appends to the spool a
batch at a time, so the caller never waits for the disk unless that buffer is full too; the
delivery thread replays the spool once it has caught up.

Flushing. `flush` waits until every event submitted before it was delivered, spooled or
dropped (the overflow buffer included). `_flush` with ``through_spool`` (the billing sink's
flush) also retries the destination at once and waits until the spool is empty.

Fork. In a forked child the queue, locks, thread and counters start afresh (the events
already submitted are the parent's to deliver); the thread starts again on the child's
first submit.

Exit. An ``atexit`` hook closes every batcher still open, each within its ``exit_timeout``
seconds; what is still queued then goes to the spool.

One concept, past 600 lines: the queue, the two threads, flushing and closing share one lock
and one set of counters, and every rule here depends on the others.
"""

from __future__ import annotations as _annotations

import atexit
import errno
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Final, Self

from meterline._delivery._spool import SPOOL_DIR_ENV, Spool, SpoolWriteError, spool_dir_usable
from meterline._delivery._stats import DeliveryStats, Outcome
from meterline._events import UsageEvent
from meterline._guard import Guard, logger
from meterline.exceptions import ConfigurationError

__all__ = ["Batcher", "check_seconds", "check_size"]


def check_size(name: str, value: object) -> int:
    """``value`` if it is a positive int.

    Raises:
        ConfigurationError: naming ``name`` and the value.
    """
    if type(value) is not int or value < 1:
        raise ConfigurationError(f"{name}={value!r}: expected a positive int")
    return value


def check_seconds(name: str, value: object) -> float:
    """``value`` as a float, if it is a positive, finite number (of seconds; not a bool).

    Raises:
        ConfigurationError: naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{name}={value!r}: expected a positive number of seconds")
    return float(value)


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic`` value; ``None``: no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class Batcher(ABC):
    """Delivers submitted events in batches from a background thread, spooling what fails.

    Args:
        name: What the batcher is, for the log and its thread (``"ledger writer"``).
        destination: Where events go, for the log (``"the ledger sqlite:///usage.db"``).
        spool: Where failed and overflowing batches wait.
        batch_size: Most events per `_deliver` call; a batch goes as soon as this many wait.
        flush_interval: Longest time an event waits in the queue, in seconds.
        max_queue: Events that may wait before `_full` decides what becomes of the next.
        retry_min: First back-off after a failure, in seconds (it doubles at each failure).
        retry_max: Longest back-off, in seconds.
        exit_timeout: How long the exit hook lets `close` deliver, in seconds.

    Raises:
        ConfigurationError: on a size or interval that is not positive.
    """

    def __init__(
        self,
        *,
        name: str,
        destination: str,
        spool: Spool,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        retry_min: float,
        retry_max: float,
        exit_timeout: float,
    ) -> None:
        self.spool = spool
        """Where undelivered batches wait (an fsynced, append-only local file)."""
        self._destination = destination
        self._thread_name = "meterline-" + name.replace(" ", "-")
        self._guard = Guard(name)
        self._batch_size = check_size("batch_size", batch_size)
        self._flush_interval = check_seconds("flush_interval", flush_interval)
        self._max_queue = check_size("max_queue", max_queue)
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._exit_timeout = exit_timeout
        self._closed = False
        self._spool_usable = spool_dir_usable(spool.directory)
        if not self._spool_usable:
            logger.warning(
                "meterline: the %s has no writable place for its spool (%s): what %s cannot take"
                " while it is down would be lost; set %s to a writable directory",
                name,
                spool.directory,
                destination,
                SPOOL_DIR_ENV,
            )
        self._reset()
        _BATCHERS.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks, thread state and counters (at construction, and in a forked child)."""
        self._queue: deque[UsageEvent] = deque()
        self._lock = threading.Lock()  # queue accounting, counters and back-off state
        self._progress = threading.Condition(self._lock)  # flushers and blocked submitters wait here
        self._send_lock = threading.Lock()  # serialises every call to the destination
        self._wake = threading.Event()  # wakes the thread
        self._thread: threading.Thread | None = None
        self._stop = False
        self._fast = False  # submit's only test: the thread runs, events are queued, not closed
        self._waiters = 0  # submitters waiting for room
        self._taken = 0  # events taken off the queue (by the thread or a draining flush)
        self._done = 0  # of those, delivered, spooled or dropped
        self._bypassed = 0  # events submitted that never entered the queue
        self._delivered = 0
        self._replayed = 0
        self._unbilled = 0
        self._rejected = 0
        self._spooled = 0
        self._dropped = 0
        self._lost_by_cause: dict[str, int] = {}  # of ``_dropped`` by the spool's failure: "ENOSPC"…
        self._lost_reported = 0  # of ``_dropped``, what a flush has already answered False for
        self._failures = 0
        self._blocked = 0
        self._overflowed = 0
        self._down = False
        self._retry_at = 0.0
        self._backoff = self._retry_min
        self._spool_dirty = True  # a spool left by an earlier run is replayed once the thread starts
        self._replaying = False
        self._overflow: deque[UsageEvent] = deque()  # past ``max_queue``, on their way to the spool
        self._overflow_in = 0  # events put on ``_overflow``
        self._overflow_out = 0  # of those, spooled (or counted lost)
        self._spooler: threading.Thread | None = None  # moves ``_overflow`` to the spool
        self._spooler_wake = threading.Event()

    # -- what a subclass says ---------------------------------------------------------------

    @abstractmethod
    def _deliver(self, batch: Sequence[UsageEvent]) -> Outcome:
        """Hand ``batch`` to the destination (called with the send lock held, one call at a time).

        Raises:
            Exception: any; the batch is then spooled and retried after a back-off.
        """

    @abstractmethod
    def _full(self, event: UsageEvent) -> None:
        """``max_queue`` events wait: wait for room, spool ``event`` or drop it (see the helpers below)."""

    @abstractmethod
    def _after_close(self, event: UsageEvent) -> None:
        """``event`` was submitted after `close` (or when no thread can start: the interpreter is exiting)."""

    # -- submitting -------------------------------------------------------------------------

    def submit(self, event: UsageEvent) -> None:
        """Queue ``event`` for delivery; never waits for the destination, never raises because of it."""
        queue = self._queue
        if self._fast and len(queue) < self._max_queue:
            queue.append(event)
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
            return
        self._submit_slow(event)

    def _submit_slow(self, event: UsageEvent) -> None:
        """`submit` when its fast path is off: before the thread runs, when the queue is full or closed."""
        if self._closed or (self._thread is None and not self._start(fast=True)):
            self._after_close(event)
            return
        queue = self._queue
        if len(queue) < self._max_queue:
            queue.append(event)
            if len(queue) >= self._batch_size:
                self._wake.set()
            return
        self._full(event)

    def _start(self, *, fast: bool) -> bool:
        """Start the thread (``fast``: and turn `submit`'s fast path on); ``False`` if it cannot start."""
        with self._lock:
            if self._thread is not None:
                return True
            if self._closed:
                return False
            thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down
                return False
            self._thread = thread
            self._fast = fast
            return True

    # -- what `_full` and `_after_close` may do with the event -------------------------------

    def _send_now(self, event: UsageEvent) -> None:
        """Deliver ``event`` in the caller's thread (spooled if the destination fails or rests)."""
        with self._lock:
            self._bypassed += 1
        with self._send_lock:
            self._send([event])

    def _wait_for_room(self, event: UsageEvent, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for room, then queue ``event``; ``False`` if no room came."""
        queue = self._queue
        deadline = time.monotonic() + timeout
        with self._lock:
            self._blocked += 1
            self._waiters += 1
            self._wake.set()
            try:
                while len(queue) >= self._max_queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stop:
                        return False
                    self._progress.wait(remaining)
                queue.append(event)
                return True
            finally:
                self._waiters -= 1

    def _spill(self, event: UsageEvent) -> None:
        """Send ``event`` to the spool without making the caller wait for the disk.

        It joins the overflow buffer (at most ``max_queue`` events, in memory), which the
        spooling thread writes to the spool a batch at a time (one ``fsync`` each); the
        delivery thread replays the spool into the destination once it has caught up. Only when
        that buffer is full too (the disk is slower than the calls) does the caller write the
        event to the spool itself.
        """
        with self._lock:
            self._bypassed += 1
            self._overflowed += 1
            buffered = len(self._overflow) < self._max_queue and not self._stop
            if buffered:
                self._overflow.append(event)
                self._overflow_in += 1
        if buffered:
            if self._spooler is None:
                self._start_spooler()
            if not self._spooler_wake.is_set():  # set() takes the event's lock even when set
                self._spooler_wake.set()
            return
        self._to_spool([event], "overflowed the queue")
        self._wake.set()

    def _start_spooler(self) -> None:
        with self._lock:
            if self._spooler is not None:
                return
            spooler = threading.Thread(
                target=self._run_spooler, name=f"{self._thread_name} spool", daemon=True
            )
            try:
                spooler.start()
            except RuntimeError:  # the interpreter is shutting down: flush and close spool inline
                return
            self._spooler = spooler

    def _run_spooler(self) -> None:
        wake = self._spooler_wake
        while True:
            wake.wait(self._flush_interval)
            wake.clear()
            with self._guard.capture("the spooling thread", self._destination):  # a bug: it carries on
                self._spool_overflow()
            if self._stop and not self._overflow:
                return

    def _spool_overflow(self) -> None:
        """Write the overflow buffer to the spool, ``batch_size`` events (one ``fsync``) at a time."""
        overflow = self._overflow
        while overflow:
            with self._lock:
                chunk = [overflow.popleft() for _ in range(min(self._batch_size, len(overflow)))]
            self._to_spool(chunk, "overflowed the queue")
            with self._lock:
                self._overflow_out += len(chunk)
                self._progress.notify_all()
            self._wake.set()  # the delivery thread replays the spool once the queue has room

    def _drop(self, event: UsageEvent) -> int:
        """Count ``event`` as dropped (the caller logs it); returns how many were dropped so far."""
        with self._lock:
            self._bypassed += 1
            self._dropped += 1
            self._lost_by_cause["queue full"] = self._lost_by_cause.get("queue full", 0) + 1
            return self._dropped

    # -- delivering (the send lock held) ------------------------------------------------------

    def _send(self, batch: Sequence[UsageEvent]) -> None:
        """Deliver ``batch``, or spool it if the destination fails or is resting after a failure."""
        if self._down and time.monotonic() < self._retry_at:
            self._to_spool(batch, f"arrived while {self._destination} was failing")
            return
        try:
            outcome = self._deliver(batch)
        except Exception as exc:  # noqa: BLE001 - spooled, logged and counted; never raised into the caller
            self._failed(exc, f"delivering {len(batch)} events")
            self._to_spool(batch, f"{self._destination} failed to take")
            return
        self._count(outcome, replayed=False)
        if self._down:
            self._recovered()

    def _count(self, outcome: Outcome, *, replayed: bool) -> None:
        with self._lock:
            self._delivered += outcome.delivered
            self._rejected += outcome.rejected
            self._unbilled += outcome.unbilled
            if replayed:
                self._replayed += outcome.delivered

    def _to_spool(self, batch: Sequence[UsageEvent], why: str) -> None:
        try:
            self.spool.append(batch)
        except Exception as exc:  # noqa: BLE001 - a loss is counted and logged, never raised into the caller
            kept = exc.kept if isinstance(exc, SpoolWriteError) else 0  # exactly those are replayed later
            lost = batch[kept:]
            cause = _cause(exc)
            with self._lock:
                self._spooled += kept
                self._dropped += len(lost)
                self._lost_by_cause[cause] = self._lost_by_cause.get(cause, 0) + len(lost)
                if kept:
                    self._spool_dirty = True
            ids = ", ".join(event.id for event in lost[:5])
            self._guard.failed(
                f"the spool {self.spool.directory}",
                f"{len(lost)} events that {why}: they are LOST to {self._destination} (ids {ids}…)",
            )
            return
        with self._lock:
            self._spooled += len(batch)
            self._spool_dirty = True

    def _failed(self, exc: Exception, doing: str) -> None:
        """Count a failed call to the destination, start (or lengthen) its back-off, and log it."""
        with self._lock:
            self._failures += 1
            self._down = True
            self._retry_at = time.monotonic() + self._backoff
            backoff, self._backoff = self._backoff, min(self._backoff * 2, self._retry_max)
        self._guard.failed(
            self._destination,
            f"{doing} ({exc!r}); events are spooled to {self.spool.directory}, next try in {backoff:.2f} s",
        )

    def _recovered(self, *, replay: bool = True) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            self._backoff = self._retry_min
            if replay:
                self._spool_dirty = True
        logger.warning("meterline: %s works again", self._destination)

    def _replay(self) -> None:
        """Replay the spool into the destination (the thread only; the send lock is taken per batch)."""
        with self._lock:
            self._spool_dirty = False
            self._replaying = True
        replay = _Replay(self)
        try:
            replayed = self.spool.replay(replay, batch_size=self._batch_size)
        except Exception as exc:  # noqa: BLE001 - the spool keeps every segment not yet delivered
            with self._lock:
                self._spool_dirty = True
            if exc is replay.failure:
                self._failed(exc, "replaying the spool")
            else:  # the spool itself: the destination is not to blame, live delivery carries on
                self._guard.failed(
                    f"the spool {self.spool.directory}", f"replaying it into {self._destination}"
                )
        else:
            if replayed:
                logger.info("meterline: replayed %d spooled events into %s", replayed, self._destination)
        finally:
            with self._lock:
                self._replaying = False
                self._progress.notify_all()

    # -- the thread ---------------------------------------------------------------------------

    def _take(self) -> list[UsageEvent]:
        """Up to ``batch_size`` events off the queue, accounted as taken."""
        queue = self._queue
        with self._lock:
            batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
            self._taken += len(batch)
            if self._waiters:
                self._progress.notify_all()
        return batch

    def _finished(self, batch: Sequence[UsageEvent]) -> None:
        with self._lock:
            self._done += len(batch)
            self._progress.notify_all()

    def _drain(self) -> None:
        """Deliver everything queued, batch by batch."""
        while self._queue:
            with self._send_lock:
                batch = self._take()
                if not batch:
                    return
                try:
                    self._send(batch)
                finally:
                    self._finished(batch)

    def _run(self) -> None:
        wake = self._wake
        while True:
            timeout = self._flush_interval
            if self._spool_dirty and self._down:
                timeout = max(0.0, min(timeout, self._retry_at - time.monotonic()))
            wake.wait(timeout)
            wake.clear()
            with self._guard.capture("the delivery thread", self._destination):  # a bug: it carries on
                self._drain()
                if self._spool_dirty and time.monotonic() >= self._retry_at:
                    self._replay()
            if self._stop and not self._queue:
                return

    # -- flushing and closing -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before this call is delivered, spooled or dropped.

        Args:
            timeout: Longest wait, in seconds (``None``: as long as it takes).

        Returns:
            ``True`` when every event submitted so far was delivered or spooled; ``False`` on
            timeout, or when some were lost (neither delivered nor spooled: a full disk) since
            the previous `flush` said so. Losses are counted in `stats` (``dropped``).
        """
        done = self._flush(timeout, through_spool=False)
        with self._lock:
            lost, self._lost_reported = self._dropped - self._lost_reported, self._dropped
        return done and not lost

    def _flush(self, timeout: float | None, *, through_spool: bool) -> bool:
        """`flush`; ``through_spool``: also retry the destination now and wait until the spool is empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if through_spool and self._thread is None and not self._closed:
            self._start(fast=True)  # it replays what an earlier process left in the spool
        with self._lock:
            target = self._taken + len(self._queue)
            spilled = self._overflow_in
            if self._done >= target and self._overflow_out >= spilled and not through_spool:
                return True
            if through_spool:
                self._retry_at = 0.0
            thread = self._thread
            spooler = self._spooler
        worker = thread is not None and thread.is_alive() and thread is not threading.current_thread()
        if worker:
            self._wake.set()
        else:
            self._drain()  # no thread (or it is us): deliver in this thread
        if spooler is not None and spooler.is_alive() and spooler is not threading.current_thread():
            self._spooler_wake.set()
        else:
            self._spool_overflow()
        with self._lock:
            if not self._progress.wait_for(
                lambda: self._done >= target and self._overflow_out >= spilled, _left(deadline)
            ):
                return False
            if not through_spool:
                return True
            if not worker:
                return not self._spool_dirty
            return self._progress.wait_for(
                lambda: not (self._spool_dirty or self._replaying), _left(deadline)
            )

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread. Idempotent; the destination is left open (its owner closes it).

        What is still queued when ``timeout`` seconds have passed goes to the spool; a
        `submit` after `close` goes to `_after_close`.

        Returns:
            ``True`` when everything was delivered or spooled in time.
        """
        with self._lock:
            self._closed = True
            self._fast = False
            self._stop = True
            thread = self._thread
            spooler = self._spooler
        flushed = self._flush(timeout, through_spool=False)
        self._wake.set()
        self._spooler_wake.set()
        for worker in (thread, spooler):
            if worker is not None and worker is not threading.current_thread():
                worker.join(timeout)
        self._spool_overflow()  # what the spooling thread left (it stopped, or never ran)
        if not flushed:
            self._spool_queue()
        elif self._queue:  # a submit that raced with close
            self._drain()
        # Seal the open segment so a replayer (`meterline ledger replay`, or a later process)
        # can take it; a later spooling starts a new one. Wait (at most ``timeout``) for the
        # batch in flight, so that it lands in the sealed segment if it fails.
        locked = self._send_lock.acquire(timeout=-1 if timeout is None else timeout)
        try:
            self.spool.close()
        finally:
            if locked:
                self._send_lock.release()
        _BATCHERS.discard(self)
        return flushed and not self._queue

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spool_queue(self) -> None:
        """Move what is still queued straight to the spool (the destination is stuck)."""
        while batch := self._take():
            self._to_spool(batch, "were still queued when the batcher closed")
            self._finished(batch)

    def stats(self) -> DeliveryStats:
        """The counters now."""
        with self._lock:
            queued = len(self._queue)
            return DeliveryStats(
                submitted=self._taken + queued + self._bypassed,
                delivered=self._delivered,
                replayed=self._replayed,
                unbilled=self._unbilled,
                rejected=self._rejected,
                spooled=self._spooled,
                dropped=self._dropped,
                failures=self._failures,
                queued=queued,
                blocked=self._blocked,
                overflowed=self._overflowed,
                backend_down=self._down,
                spool_usable=self._spool_usable,
                lost_by_cause=tuple(sorted(self._lost_by_cause.items())),
            )


def _cause(exc: Exception) -> str:
    """What a spool failure was, for `DeliveryStats.lost_by_cause`: an errno name, else the type."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number in errno.errorcode:
        return errno.errorcode[number]
    return type(exc).__name__


class _Replay:
    """The destination as `Spool.replay` sees it: each batch delivered under the send lock, and counted.

    It remembers the exception the destination raised, so a failing destination (back off)
    can be told from a failing spool (the destination is not to blame).
    """

    __slots__ = ("_batcher", "failure")

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self.failure: BaseException | None = None

    def write(self, events: Sequence[UsageEvent]) -> int:
        batcher = self._batcher
        with batcher._send_lock:
            try:
                outcome = batcher._deliver(events)
            except BaseException as exc:
                self.failure = exc
                raise
        if batcher._down:
            batcher._recovered(replay=False)  # before the count: whoever sees it sees the backend up
        batcher._count(outcome, replayed=True)
        return outcome.delivered


_BATCHERS: Final[weakref.WeakSet[Batcher]] = weakref.WeakSet()
"""Every batcher not yet closed: reset in a forked child, closed at exit."""


def _after_fork_in_child() -> None:
    for batcher in list(_BATCHERS):
        batcher._reset()  # the parent's queued events are the parent's to deliver


def _close_all_at_exit() -> None:
    for batcher in list(_BATCHERS):
        with batcher._guard.capture("closing at exit", batcher._destination):
            batcher.close(batcher._exit_timeout)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
