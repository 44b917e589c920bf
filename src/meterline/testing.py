"""Helpers for testing code that meters with meterline: capture events, keep a ledger in memory.

Like structlog's ``testing`` module: what a user's own test suite needs to assert on what its
code metered, without a database or a network::

    from meterline.testing import InMemoryLedger, capture_events

    def test_summary_is_metered():
        with capture_events() as captured:  # the default meter, or capture_events(meter)
            summarise("…")
        assert [event.model for event in captured.model_calls] == ["gpt-4o-mini"]
        assert captured.totals().cost < Decimal("0.01")

    meter = meterline.Meter(ledger=InMemoryLedger())  # every event stored, in this process only
"""

from __future__ import annotations as _annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from meterline._default import get_meter
from meterline._dimensions import EVENT_FIELDS, check_names
from meterline._events import UsageEvent, event_filters
from meterline._money import to_usd
from meterline._totals import Sums, Totals, totals_of
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger import SCHEMA_VERSION, Granularity, LedgerRow, LedgerStats, check_limit

if TYPE_CHECKING:
    from meterline._meter import Meter
    from meterline.budgets import BudgetAlert

__all__ = ["EventCapture", "InMemoryLedger", "capture_events"]

_GRANULARITIES: Final = ("hour", "day", "month")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class EventCapture:
    """The events (and budget alerts) a meter handed out while `capture_events` was active."""

    __slots__ = ("_lock", "alerts", "events")

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        """Every captured event, in the order they were recorded."""
        self.alerts: list[BudgetAlert] = []
        """Every budget alert fired, with ``capture_events(alerts=True)``."""
        self._lock = threading.Lock()

    def _take(self, item: Any) -> None:
        with self._lock:
            if isinstance(item, UsageEvent):
                self.events.append(item)
            else:
                self.alerts.append(item)

    @property
    def model_calls(self) -> list[UsageEvent]:
        """The captured model calls (neither tool calls nor cache lookups)."""
        return [event for event in self.events if event.model_call]

    @property
    def tool_calls(self) -> list[UsageEvent]:
        """The captured tool calls."""
        return [event for event in self.events if event.operation == "execute_tool"]

    def totals(self) -> Totals:
        """What the captured events add up to (the same `Totals` a scope would give)."""
        rows = []
        for event in self.events:
            sums = Sums()
            if event.model_call:
                _add_model_call(sums, event)
            else:
                sums.add_event(event)
            dims = event.dimensions
            rows.append((event.operation, event.status, dims.get("tool"), dims.get("tool_category"), sums))
        return totals_of(rows)

    def clear(self) -> None:
        """Forget what was captured so far."""
        with self._lock:
            self.events.clear()
            self.alerts.clear()

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[UsageEvent]:
        return iter(list(self.events))

    def __repr__(self) -> str:
        return f"<EventCapture events={len(self.events)} alerts={len(self.alerts)}>"


@contextmanager
def capture_events(meter: Meter | None = None, *, alerts: bool = False) -> Iterator[EventCapture]:
    """Capture every event ``meter`` (default: the process-wide meter) records inside the block.

    Args:
        meter: The meter to listen to; ``None`` for `meterline.get_meter()`.
        alerts: Capture budget alerts too (in `EventCapture.alerts`).
    """
    capture = EventCapture()
    target = get_meter() if meter is None else meter
    unsubscribe = target.subscribe(capture._take, alerts=alerts)
    try:
        yield capture
    finally:
        unsubscribe()


def _add_model_call(sums: Sums, event: UsageEvent) -> None:
    """Add a model call as the SQL ledgers' roll-ups do: a cost is added whenever the event has one.

    A call without usage is unmeasured, and still adds a cost it was given (written with one,
    or re-priced); a measured call without a cost is unpriced.
    """
    sums.events += 1
    usage = event.usage
    pico = event.cost_pico
    if usage is None:
        sums.unmeasured += 1
    else:
        sums.add_usage(usage)
        if pico is None:
            sums.unpriced += 1
    if pico is not None:
        sums.cost_pico += pico
    if event.latency_ms is not None:
        sums.latency_ns += int(event.latency_ms * 1e6)


class InMemoryLedger:
    """A `meterline.ledger.LedgerBackend` in this process's memory, for tests.

    It keeps every event exactly once and answers `totals` as the durable ledgers do (it
    passes their conformance suite), by scanning its events: fine for a test, not for a
    product, and nothing survives the process.
    """

    url: str = "memory://"
    """Where the ledger is."""

    def __init__(self) -> None:
        self._events: dict[str, UsageEvent] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> dict[str, UsageEvent]:
        if self._closed:
            raise LedgerError("the in-memory ledger is closed")
        return self._events

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events``, each exactly once (the id is the key); return how many were new."""
        with self._lock:
            stored = self._open()
            new = 0
            for event in events:
                if event.id not in stored:
                    stored[event.id] = event
                    new += 1
            return new

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
        """See `meterline.ledger.LedgerBackend.totals`."""
        group = check_names(by, "by")
        allowed = event_filters(where)
        if granularity is not None and granularity not in _GRANULARITIES:
            raise ConfigurationError(f"granularity={granularity!r}: expected one of {_GRANULARITIES} or None")
        check_limit(limit)
        first = None if since is None else _hour(since)
        last = None if until is None else _hour(until)
        with self._lock:
            events = list(self._open().values())
        sums: dict[tuple[tuple[str | None, ...], datetime | None], tuple[Sums, list[float]]] = {}
        for event in events:
            hour = _hour(event.time)
            if (first is not None and hour < first) or (last is not None and hour >= last):
                continue
            if any(_value(event, name) not in values for name, values in allowed.items()):
                continue
            key = (tuple(_value(event, name) for name in group), _period(hour, granularity))
            row, latency = sums.setdefault(key, (Sums(), [0.0]))
            row.tokens_saved += event.tokens_saved
            if event.latency_ms is not None:
                latency[0] += event.latency_ms
            if event.model_call:
                _add_model_call(row, event)
            else:
                row.events += 1
        rows = [
            LedgerRow(
                key=key,
                period=period,
                events=row.events,
                unmeasured=row.unmeasured,
                unpriced=row.unpriced,
                usage=row.usage(),
                cost=to_usd(row.cost_pico),
                latency_ms=latency[0],
                tokens_saved=row.tokens_saved,
            )
            for (key, period), (row, latency) in sums.items()
        ]
        rows.sort(
            key=lambda r: (
                -r.cost,
                -r.events,
                tuple((v is not None, v or "") for v in r.key),
                r.period or _EPOCH,
            )
        )
        return rows if limit is None else rows[:limit]

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """See `meterline.ledger.LedgerBackend.events`."""
        with self._lock:
            events = sorted(self._open().values(), key=lambda event: event.id)
        for event in events:
            if after_id is not None and event.id <= after_id:
                continue
            if since is not None and event.time < since:
                continue
            if until is not None and event.time >= until:
                continue
            yield event

    def prune(self, before: datetime) -> int:
        """Delete the events older than ``before``; return how many went."""
        with self._lock:
            stored = self._open()
            gone = [key for key, event in stored.items() if event.time < before]
            for key in gone:
                del stored[key]
            return len(gone)

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """Set new (id, cost, price_version) on stored events; return how many changed (cost or version)."""
        changed = 0
        with self._lock:
            stored = self._open()
            for event_id, cost, version in events:
                event = stored.get(event_id)
                if event is None or (cost == event.cost and version == event.price_version):
                    continue
                fields = event.to_dict()
                fields["cost"] = None if cost is None else str(cost)
                fields["price_version"] = version
                stored[event_id] = UsageEvent.from_dict(fields)
                changed += 1
        return changed

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored (``rollup_rows``: distinct hours and keys).

        ``dimension_values``: the distinct (name, value) pairs of the events kept.
        """
        with self._lock:
            events = list(self._open().values())
        keys = {
            (
                _hour(event.time),
                event.operation,
                event.status,
                event.provider,
                event.model,
                tuple(sorted(event.dimensions.items())),
            )
            for event in events
        }
        times = [event.time for event in events]
        return LedgerStats(
            url=self.url,
            schema_version=SCHEMA_VERSION,
            events=len(events),
            first_time=min(times, default=None),
            last_time=max(times, default=None),
            rollup_rows=len(keys),
            dimension_values=len({pair for event in events for pair in event.dimensions.items()}),
        )

    def close(self) -> None:
        """Stop serving (the events are dropped). Idempotent."""
        with self._lock:
            self._closed = True
            self._events = {}

    def __repr__(self) -> str:
        return f"<InMemoryLedger events={len(self._events)}>"


def _order(row: LedgerRow) -> tuple[Any, ...]:
    """Highest cost first, then most events, then key (``None`` first) and period, as the ledgers."""
    return (
        -row.cost,
        -row.events,
        tuple((value is not None, value or "") for value in row.key),
        row.period or _EPOCH,
    )


def _value(event: UsageEvent, name: str) -> str | None:
    if name in EVENT_FIELDS:
        value: str | None = getattr(event, name)
        return value
    return event.dimensions.get(name)


def _hour(moment: datetime) -> datetime:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def _period(hour: datetime, granularity: Granularity | None) -> datetime | None:
    if granularity is None:
        return None
    if granularity == "hour":
        return hour
    day = hour - timedelta(hours=hour.hour)
    return day if granularity == "day" else day.replace(day=1)
