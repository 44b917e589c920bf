"""The ledger's contract: what a backend stores and what it answers.

A ledger keeps every event a meter records, exactly once (the event id is the key), and
maintains hourly roll-ups in the same transaction, so reports read pre-aggregated rows
instead of scanning events. Backends: SQLite (embedded default) and PostgreSQL; how an event
becomes a row is `meterline.ledger._rows`'s one concern.
"""

from __future__ import annotations as _annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol, runtime_checkable

from meterline._events import UsageEvent
from meterline._usage import Usage

__all__ = ["GRANULARITIES", "SCHEMA_VERSION", "Granularity", "LedgerBackend", "LedgerRow", "LedgerStats"]

SCHEMA_VERSION: Final = 9
"""The newest ledger schema (SQLite's); a ledger with a newer one is refused (see `LedgerBackend`).

Version 2 dropped the index of the events by hour (no query used it); version 3 stored the
fields that repeat from event to event once; version 4 stores dimension values once and
keeps the roll-ups by dimension value and day, with an index of the events by time
(`meterline.ledger._sqlite_schema`); version 5 added each event's server-side tool calls,
service tier, batch mode and stated cost; version 6 stores an id of 32 hex digits as its
16 bytes; version 7 writes the daily roll-up by value through a table of its newest rows;
version 8 keeps the folded days' sums per value and day, over every key; version 9 indexes
both folded roll-ups by value by their period.
PostgreSQL numbers its schema on its own (``meterline.ledger._postgres_schema.VERSION``).
"""

Granularity = Literal["hour", "day", "month"]
GRANULARITIES: Final = ("hour", "day", "month")


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """One group of a ledger report: the group's values and what its events add up to."""

    key: tuple[str | None, ...]
    """The values of the ``by`` dimensions, in order (``None`` where an event lacks one)."""
    period: datetime | None
    """Start of the hour, day or month (UTC) with a granularity; ``None`` without one."""
    events: int = 0
    """Events in the group."""
    unmeasured: int = 0
    """Model calls whose usage never arrived."""
    unpriced: int = 0
    """Measured model calls with no price."""
    usage: Usage = field(default_factory=Usage)
    """Sum of the measured usage."""
    cost: Decimal = Decimal(0)
    """Sum of the priced costs, in USD."""
    latency_ms: float = 0.0
    """Sum of the reported latencies, in milliseconds."""
    tokens_saved: int = 0
    """Tokens saved by the application's cache hits."""

    @classmethod
    def total(cls, rows: Iterable[LedgerRow]) -> LedgerRow:
        """``rows`` added up into one row (no key, no period): a report's total line."""
        rows = list(rows)
        return cls(
            key=(),
            period=None,
            events=sum(row.events for row in rows),
            unmeasured=sum(row.unmeasured for row in rows),
            unpriced=sum(row.unpriced for row in rows),
            usage=sum((row.usage for row in rows), Usage()),
            cost=sum((row.cost for row in rows), Decimal(0)),
            latency_ms=sum(row.latency_ms for row in rows),
            tokens_saved=sum(row.tokens_saved for row in rows),
        )

    def to_dict(self, by: Sequence[str]) -> dict[str, Any]:
        """The row as JSON-ready values, the form of ``meterline report --format json``.

        Args:
            by: The report's ``by`` names, which label `key`'s values.

        Returns:
            ``period`` (RFC 3339, UTC; only with a granularity), each ``by`` name's value, the
            counts, every `Usage` field, ``cost`` as a decimal string of USD, ``latency_ms`` and
            ``tokens_saved``.
        """
        period = self.period
        return {
            **({"period": period.isoformat().replace("+00:00", "Z")} if period is not None else {}),
            **dict(zip(by, self.key, strict=True)),
            "events": self.events,
            "unmeasured": self.unmeasured,
            "unpriced": self.unpriced,
            **self.usage.to_dict(),
            "cost": str(self.cost),
            "latency_ms": self.latency_ms,
            "tokens_saved": self.tokens_saved,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerStats:
    """What a ledger holds."""

    url: str
    """Where the ledger is (password removed)."""
    schema_version: int
    """The schema version of the store."""
    events: int
    """Events stored."""
    first_time: datetime | None
    """Time of the oldest event."""
    last_time: datetime | None
    """Time of the newest event."""
    rollup_rows: int
    """Rows of the hourly roll-up."""
    dimension_values: int = 0
    """Distinct (dimension name, value) pairs stored: those of the events kept. A prune removes
    the values that only the events it deleted had, so that a ledger kept for 90 days holds 90
    days of sessions, however long it has run (0 from a backend that does not count them)."""


@runtime_checkable
class LedgerBackend(Protocol):
    """A durable store of events. Implementations: SQLite and PostgreSQL.

    Opening a backend applies forward migrations up to `SCHEMA_VERSION`, and refuses (with
    `meterline.LedgerError`) a store whose schema is newer than this meterline knows.
    Every method may raise `meterline.LedgerError`, which wraps the driver's error.
    """

    url: str

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once (the id is the key).

        Events already stored are skipped, and the roll-ups count only the new ones.

        Returns:
            How many events were new.
        """
        ...

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        """Add up the stored events from the roll-ups (never by scanning events).

        ``by`` and ``where`` take event fields (operation, status, provider, model) and
        dimension names, which must be identifiers (never put in SQL text). ``since`` is
        inclusive, ``until`` exclusive, both rounded down to the hour (the roll-ups' grain).
        Rows come sorted by cost, highest first (then events, then key); with ``limit``, only
        the first ``limit`` of them (a positive int), as they would come without it.
        """
        ...

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """Stream the stored events in id (time) order, in constant memory.

        ``after_id`` resumes after a cursor (the last id a consumer handled).
        """
        ...

    def prune(self, before: datetime) -> int:
        """Delete events (and roll-up rows) older than ``before``; return how many events went.

        The dimension values that no kept event has are deleted too (`LedgerStats.dimension_values`).
        """
        ...

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """Set new (id, cost, price_version) on stored events, keeping the previous ones for audit.

        The roll-ups are corrected by the difference. Returns how many events changed.
        """
        ...

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored."""
        ...

    def close(self) -> None:
        """Release the connection(s). Idempotent."""
        ...
