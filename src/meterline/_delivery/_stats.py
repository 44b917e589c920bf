"""What a batcher counts: `DeliveryStats` over its life, `Outcome` for one batch.

One stats shape for every `Batcher`: the ledger writer's and the billing sink's counters
are the same value (`meterline.exporters.SinkStats` is `DeliveryStats`). A counter one of
them never moves stays 0 (a ledger has no ``unbilled`` events; a sink never ``blocked``).
"""

from __future__ import annotations as _annotations

from dataclasses import dataclass

__all__ = ["DeliveryStats", "Outcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStats:
    """Counters of a `Batcher` (a ledger writer, a billing sink) since it was made (or forked).

    Each submitted event is, at any moment, queued, in flight, or counted once in
    ``committed``, ``unbilled``, ``rejected``, ``spooled`` or ``dropped``; a spooled event is
    counted again when it is replayed (in ``delivered`` and ``replayed``, or ``rejected``).
    """

    submitted: int
    """Events handed to `Batcher.submit`."""
    delivered: int
    """Events the destination took (replayed ones included)."""
    replayed: int
    """Of ``delivered``, the events replayed from the spool."""
    unbilled: int
    """Events with nothing to deliver (a billing format that renders no document for them)."""
    rejected: int
    """Events the destination refused for good (a billing endpoint's 4xx, an event the format
    cannot express); each was logged."""
    spooled: int
    """Events written to the spool (failed deliveries, back-off, queue overflow)."""
    dropped: int
    """Events neither delivered nor spooled (a full billing-sink queue, or the spool failed too); each was
    logged."""
    failures: int
    """Failed calls to the destination (deliveries and replays), each retried after a back-off."""
    queued: int
    """Events waiting in the queue now."""
    blocked: int
    """Submits that found the queue full and waited for room (the ledger writer's ``when_full="block"``)."""
    overflowed: int
    """Submits that found the queue full and went to the spool instead (the ledger writer)."""
    backend_down: bool
    """The last call to the destination failed; batches go to the spool until a retry works."""
    lost_by_cause: tuple[tuple[str, int], ...] = ()
    """``dropped`` events by cause, as sorted ``(cause, events)`` pairs: what made the spool fail
    (an errno name such as ``"ENOSPC"`` for a full disk, else the exception's type), or
    ``"queue full"`` (a billing sink's full queue)."""
    spool_usable: bool = True
    """The spool's directory is, or can be made, writable (checked at start, and warned of once
    when not: see `meterline._delivery.default_spool_dir` and ``METERLINE_SPOOL_DIR``)."""

    @property
    def committed(self) -> int:
        """Events the destination took from the queue, not the spool (``delivered - replayed``)."""
        return self.delivered - self.replayed

    @property
    def lost(self) -> int:
        """``dropped``, in the ledger writer's word: events neither committed nor spooled."""
        return self.dropped


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the destination did with one batch, in events (`Batcher._deliver` returns it)."""

    delivered: int
    """Events the destination took."""
    rejected: int = 0
    """Events it refused for good (never retried)."""
    unbilled: int = 0
    """Events that had nothing to deliver."""
