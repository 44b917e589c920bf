"""The live billing feed: a meter subscriber that POSTs batches on a background thread.

A `BillingSink` is a `Batcher` (`meterline._delivery`: the queue, the thread, back-off and
retry, the spool, fork and exit) whose destination is an HTTP billing endpoint.
``record()`` only appends the event to a bounded in-memory queue (it never waits, does no
I/O and never raises); the thread renders and POSTs batches as soon as ``batch_size``
events wait or ``flush_interval`` seconds have passed.

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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from meterline._delivery import (
    Batcher,
    DeliveryStats,
    Outcome,
    Spool,
    check_seconds,
    check_size,
    default_spool_dir,
)
from meterline._events import UsageEvent
from meterline._guard import logger
from meterline._storage import redact
from meterline.exceptions import ExportError
from meterline.exporters._billing import BillingFormat
from meterline.exporters._http import Permanent, check_url, post

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = ["BillingSink", "SinkStats"]

SinkStats = DeliveryStats
"""Counters of a `BillingSink` since it was made: the counters of every batcher."""

RETRY_MIN: Final = 0.5
"""First back-off after a failed delivery, in seconds (doubles at each failure)."""
EXIT_TIMEOUT: Final = 5.0
"""How long `BillingSink.close` (and the exit hook) lets a sink deliver before spooling what is left."""


class BillingSink(Batcher):
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
        self.url = redact(check_url(url))
        """The endpoint, as it may be shown (secrets in it replaced by ``***``)."""
        self._endpoint = url
        check_size("batch_size", batch_size)  # before it is capped; the batcher checks the rest
        self._timeout = check_seconds("timeout", timeout)
        retry_max = check_seconds("retry_max", retry_max)
        self.format = format
        self._headers = dict(headers or {})
        super().__init__(
            name="billing sink",
            destination=f"the billing endpoint {self.url}",
            spool=Spool(spool_dir or default_spool_dir(f"billing-sink {format.name} {url}")),
            batch_size=min(batch_size, format.max_batch),
            flush_interval=flush_interval,
            max_queue=max_queue,
            retry_min=RETRY_MIN,
            retry_max=retry_max,
            exit_timeout=EXIT_TIMEOUT,
        )

    def __repr__(self) -> str:
        return f"<meterline.exporters.BillingSink {self.format.name} {self.url!r}>"

    # -- the record path ------------------------------------------------------------------

    def attach(self, meter: Meter) -> Callable[[], None]:
        """Feed every event ``meter`` records from now on; returns the function that stops it."""
        return meter.subscribe(self)

    def __call__(self, event: UsageEvent) -> None:
        """Queue one event (a `Meter` subscriber): no waiting, no I/O, never raises."""
        self.submit(event)

    def _full(self, event: UsageEvent) -> None:
        self._dropped_one(event, f"{len(self._queue)} events waiting")

    def _after_close(self, event: UsageEvent) -> None:
        self._dropped_one(event, "closed")

    def _dropped_one(self, event: UsageEvent, why: str) -> None:
        """Drop ``event`` rather than make ``record()`` wait; log the first ten, then one in a thousand."""
        dropped = self._drop(event)
        if dropped <= 10 or dropped % 1000 == 0:
            logger.error(
                "meterline: billing sink %s dropped event %s (%s; %d dropped so far); "
                "it is in the ledger: meterline export --to can send it",
                self.url,
                event.id,
                why,
                dropped,
            )

    # -- delivering (on the batcher's thread) -------------------------------------------------

    def _deliver(self, batch: Sequence[UsageEvent]) -> Outcome:
        """Render and POST ``batch`` (in requests of at most ``format.max_batch`` documents).

        Raises:
            Retryable: the endpoint failed; nothing of the batch counts as delivered.
        """
        documents: list[dict[str, Any]] = []
        billed = rejected = unbilled = 0
        for event in batch:
            try:
                rendered = self.format.render(event)
            except ExportError as exc:
                rejected += 1
                logger.error("meterline: billing sink %s cannot send an event: %s", self.url, exc)
                continue
            if not rendered:
                unbilled += 1
                continue
            documents.extend(rendered)
            billed += 1
        limit = self.format.max_batch
        try:
            for start in range(0, len(documents), limit):
                body = self.format.body(documents[start : start + limit])
                post(self._endpoint, body, self.format.content_type, self._headers, self._timeout)
        except Permanent as exc:
            logger.error("meterline: billing sink %s refused %d events: %s", self.url, billed, exc)
            return Outcome(0, rejected=rejected + billed, unbilled=unbilled)
        return Outcome(billed, rejected=rejected, unbilled=unbilled)

    # -- control --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send what waits now (retrying the spool at once), and wait until it is delivered.

        Returns:
            ``True`` when every event submitted so far was delivered (or rejected, or had
            nothing to bill) and the spool is empty; ``False`` when ``timeout`` seconds
            passed first (e.g. the endpoint is down: the events wait in the spool).
        """
        return self._flush(timeout, through_spool=True)

    def close(self, timeout: float | None = EXIT_TIMEOUT) -> bool:
        """Deliver what it can within ``timeout`` seconds, spool the rest, stop the thread. Idempotent.

        Returns:
            ``True`` when everything was delivered and the spool is empty.
        """
        delivered = self.flush(timeout)
        return super().close(timeout) and delivered
