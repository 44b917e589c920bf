"""The live billing feed: a meter subscriber that POSTs batches on a background thread.

``record()`` only appends the event to a bounded in-memory queue (it never waits, does no
I/O and never raises). A daemon thread, started on the first event, renders and POSTs
batches as soon as ``batch_size`` events wait or ``flush_interval`` seconds have passed.

When the endpoint is unreachable, times out or answers a retryable status (408, 425, 429,
5xx), the batch goes to an fsynced `Spool` on local disk and the endpoint is left alone
for a back-off (doubling from 0.5 s to ``retry_max``), during which batches go straight to
the spool; then the spool is replayed, oldest first, and live sending resumes. A replayed
event renders to the same documents as before, with the same ids, so the endpoint
deduplicates whatever it had already taken. The spool survives the process: a sink started
later on the same spool directory delivers what an earlier one left.

An endpoint that *refuses* a batch (another 4xx) would refuse it again: the batch is
logged and counted as ``rejected``, not retried. So is an event the format cannot express
(a Stripe event without a customer, say). Every event also stays in the ledger, from which
``meterline export --to`` can send it again.

When more than ``max_queue`` events wait (the thread cannot keep up even by spooling), new
events are dropped and counted in ``dropped`` (and logged), rather than block ``record()``.
"""

from __future__ import annotations as _annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from meterline._events import UsageEvent
from meterline.exceptions import ConfigurationError, ExportError
from meterline.exporters._billing import BillingFormat
from meterline.exporters._http import Permanent, Retryable, check_url, post
from meterline.ledger._spool import Spool, default_spool_dir

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = ["BillingSink", "SinkStats"]

_log: Final = logging.getLogger("meterline")

RETRY_MIN: Final = 0.5
"""First back-off after a failed delivery, in seconds (doubles at each failure)."""
EXIT_TIMEOUT: Final = 5.0
"""How long the exit hook lets each open sink deliver before spooling what is left."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkStats:
    """Counters of a `BillingSink` since it was made."""

    submitted: int
    """Events handed to the sink by the meter."""
    delivered: int
    """Events whose documents the endpoint acknowledged (replayed ones included)."""
    unbilled: int
    """Events that rendered to no document (nothing to bill in this format)."""
    rejected: int
    """Events the format could not express or the endpoint refused (logged; in the ledger still)."""
    spooled: int
    """Events written to the spool because the endpoint failed."""
    dropped: int
    """Events dropped because ``max_queue`` events were waiting (logged)."""
    failures: int
    """Deliveries that failed and will be retried."""
    queued: int
    """Events waiting in memory now."""


class BillingSink:
    """Feeds a billing endpoint live from a meter (subscribe it with `attach`).

    Args:
        url: The endpoint (``http://`` or ``https://``), e.g. OpenMeter's
            ``https://openmeter.cloud/api/v1/events``.
        format: `CloudEvents` or `Stripe` (any `BillingFormat`).
        headers: Extra request headers, e.g. ``{"Authorization": "Bearer …"}``.
        batch_size: Most events per request (capped so the documents fit ``format.max_batch``).
        flush_interval: Longest time, in seconds, an event waits before it is sent.
        max_queue: Most events waiting in memory; past it, events are dropped (and counted).
        timeout: Seconds to wait for the endpoint's answer.
        retry_max: Longest back-off between retries, in seconds.
        spool_dir: Where undelivered batches are kept; by default a directory per URL under
            ``$XDG_DATA_HOME/meterline/spool``.

    Raises:
        ConfigurationError: on a URL that is not http(s) or a non-positive size or interval.
    """

    def __init__(
        self,
        url: str,
        format: BillingFormat,
        *,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 10.0,
        retry_max: float = 60.0,
        spool_dir: str | Path | None = None,
    ) -> None:
        self.url = check_url(url)
        for name, value in (("batch_size", batch_size), ("max_queue", max_queue)):
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{name}={value!r}: expected a positive int")
        for name, number in (
            ("flush_interval", flush_interval),
            ("timeout", timeout),
            ("retry_max", retry_max),
        ):
            if type(number) not in (int, float) or not 0 < number < float("inf"):
                raise ConfigurationError(f"{name}={number!r}: expected a positive number of seconds")
        self.format = format
        self._headers = dict(headers or {})
        self._batch_size = min(batch_size, format.max_batch)
        self._flush_interval = float(flush_interval)
        self._max_queue = max_queue
        self._timeout = float(timeout)
        self._retry_max = float(retry_max)
        self.spool = Spool(spool_dir or default_spool_dir(f"billing-sink {format.name} {url}"))
        """Where undelivered batches wait (an fsynced, append-only local file)."""
        self._init_state()
        self._spool_dirty = bool(self.spool.segments())  # an earlier process left events to deliver
        _SINKS.add(self)

    def _init_state(self) -> None:
        self._queue: deque[UsageEvent] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._urgent = False
        self._busy = False
        self._spool_dirty = False
        self._retry_at = 0.0
        self._backoff = RETRY_MIN
        self._counts = dict.fromkeys(
            ("submitted", "delivered", "unbilled", "rejected", "spooled", "dropped", "failures"), 0
        )

    def __repr__(self) -> str:
        return f"<meterline.exporters.BillingSink {self.format.name} {self.url!r}>"

    # -- the record path ------------------------------------------------------------------

    def attach(self, meter: Meter) -> Callable[[], None]:
        """Feed every event ``meter`` records from now on; returns the function that stops it."""
        return meter.subscribe(self)

    def __call__(self, event: UsageEvent) -> None:
        """Queue one event (a `Meter` subscriber): no waiting, no I/O, never raises."""
        counts = self._counts
        counts["submitted"] += 1
        queue = self._queue
        if len(queue) >= self._max_queue or self._closed:
            counts["dropped"] += 1
            if counts["dropped"] <= 10 or counts["dropped"] % 1000 == 0:
                _log.error(
                    "meterline: billing sink %s dropped event %s (%s; %d dropped so far); "
                    "it is in the ledger: meterline export --to can send it",
                    self.url,
                    event.id,
                    "closed" if self._closed else f"{len(queue)} events waiting",
                    counts["dropped"],
                )
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._batch_size:
            with self._wake:
                self._wake.notify()

    def _start(self) -> None:
        with self._wake:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="meterline-billing-sink", daemon=True)
                self._thread.start()

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                deadline = time.monotonic() + self._flush_interval
                while not (self._closed or self._urgent or len(self._queue) >= self._batch_size):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                closing, self._urgent = self._closed, False
                self._busy = True
            try:
                self._work()
            except Exception:  # noqa: BLE001 - the thread must survive any bug
                _log.exception("meterline: billing sink %s failed unexpectedly; it carries on", self.url)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
            if closing and not self._queue:
                return

    def _take(self) -> list[UsageEvent]:
        queue = self._queue
        batch: list[UsageEvent] = []
        with contextlib.suppress(IndexError):
            while len(batch) < self._batch_size:
                batch.append(queue.popleft())
        return batch

    def _work(self) -> None:
        """Replay the spool when due, then deliver (or spool) what waits in the queue."""
        if time.monotonic() < self._retry_at:
            while batch := self._take():  # the endpoint is resting: keep the events on disk
                self._to_spool(batch)
            return
        if self._spool_dirty:
            try:
                self.spool.replay(_Replayer(self), batch_size=self._batch_size)
            except Retryable as exc:
                self._failed(exc)
                return
            except Exception:  # noqa: BLE001 - an unreadable spool must not stop live delivery
                _log.exception("meterline: billing sink %s could not replay its spool", self.url)
            else:
                self._spool_dirty = False
        while batch := self._take():
            try:
                self._deliver(batch)
            except Retryable as exc:
                self._to_spool(batch)
                self._failed(exc)
                while rest := self._take():
                    self._to_spool(rest)
                return

    def _failed(self, exc: Exception) -> None:
        self._counts["failures"] += 1
        self._retry_at = time.monotonic() + self._backoff
        _log.warning(
            "meterline: billing sink delivery failed (%s); events are spooled, next try in %.1f s",
            exc,
            self._backoff,
        )
        self._backoff = min(self._backoff * 2, self._retry_max)

    def _to_spool(self, batch: Sequence[UsageEvent]) -> None:
        try:
            self.spool.append(batch)
        except OSError:
            self._counts["dropped"] += len(batch)
            _log.exception(
                "meterline: billing sink %s could not spool %d events (they are in the ledger)",
                self.url,
                len(batch),
            )
            return
        self._counts["spooled"] += len(batch)
        self._spool_dirty = True

    def _deliver(self, batch: Sequence[UsageEvent]) -> None:
        """Render and POST ``batch`` (in requests of at most ``format.max_batch`` documents).

        Raises:
            Retryable: the endpoint failed; nothing of the batch is counted as delivered.
        """
        documents: list[dict[str, Any]] = []
        billed = 0
        for event in batch:
            try:
                rendered = self.format.render(event)
            except ExportError as exc:
                self._counts["rejected"] += 1
                _log.error("meterline: billing sink %s cannot send an event: %s", self.url, exc)
                continue
            if not rendered:
                self._counts["unbilled"] += 1
                continue
            documents.extend(rendered)
            billed += 1
        limit = self.format.max_batch
        try:
            for start in range(0, len(documents), limit):
                body = self.format.body(documents[start : start + limit])
                post(self.url, body, self.format.content_type, self._headers, self._timeout)
        except Permanent as exc:
            self._counts["rejected"] += billed
            _log.error("meterline: billing sink %s refused %d events: %s", self.url, billed, exc)
            return
        self._counts["delivered"] += billed
        self._backoff = RETRY_MIN

    # -- control --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send what waits now (retrying the spool at once), and wait until it is delivered.

        Returns:
            ``True`` when every event submitted so far was delivered (or rejected, or had
            nothing to bill) and the spool is empty; ``False`` when ``timeout`` seconds
            passed first (e.g. the endpoint is down: the events wait in the spool).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._closed:
            return not self._queue and not self._spool_dirty
        if self._thread is None:
            if not self._spool_dirty:
                return not self._queue
            self._start()  # an earlier process's spool waits: deliver it
        with self._wake:
            self._urgent = True
            self._retry_at = 0.0
            self._wake.notify_all()
            while self._urgent or self._busy or self._queue or self._spool_dirty:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wake.wait(0.05 if left is None else min(left, 0.05))
                idle = not (self._urgent or self._busy)
                if idle and (self._queue or self._spool_dirty) and time.monotonic() >= self._retry_at:
                    self._urgent = True  # work is left and the back-off is over: go again
                    self._wake.notify_all()
            return True

    def close(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Deliver what it can within ``timeout`` seconds, spool the rest, stop the thread. Idempotent."""
        if self._closed:
            return
        self.flush(timeout)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        rest = list(self._queue)
        self._queue.clear()
        if rest:
            self._to_spool(rest)
        self.spool.close()

    def stats(self) -> SinkStats:
        """The sink's counters now."""
        return SinkStats(**self._counts, queued=len(self._queue))

    def _after_fork_in_child(self) -> None:
        # The parent's queue, thread and counters are the parent's; the child starts afresh.
        closed = self._closed
        self._init_state()
        self._closed = closed
        self._spool_dirty = bool(self.spool.segments())


class _Replayer:
    """Makes the spool's replay POST its events: retryable failures leave them in the spool."""

    def __init__(self, sink: BillingSink) -> None:
        self._sink = sink

    def write(self, events: Sequence[UsageEvent]) -> int:
        self._sink._deliver(events)  # raises Retryable: the segment stays for the next try
        return len(events)


_SINKS: Final[weakref.WeakSet[BillingSink]] = weakref.WeakSet()


def _close_all() -> None:
    for sink in list(_SINKS):
        with contextlib.suppress(Exception):
            sink.close(EXIT_TIMEOUT)


def _after_fork_in_child() -> None:
    for sink in list(_SINKS):
        sink._after_fork_in_child()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
