"""What each dashboard page shows, read from a ledger and a budget store, as JSON-ready values.

Every figure comes from the ledger's report API (`LedgerBackend.totals`, which adds up
roll-ups inside the database, in memory bounded by the report's rows), and single events
from short time ranges of `LedgerBackend.events` (indexed by time): no view reads the whole
ledger into memory. Money is a decimal string of USD, a time RFC 3339 in UTC, and what could
not be measured or priced is counted beside the cost (``unmeasured``, ``unpriced``), never
added to it as $0.
"""

from __future__ import annotations as _annotations

import queue
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from meterline._dimensions import EVENT_FIELDS
from meterline._events import CACHE_OPERATION, TOOL_OPERATION, TOOL_SUCCESS, UsageEvent
from meterline.budgets import Budget, BudgetStore, budget_status, known_budgets
from meterline.exceptions import ConfigurationError
from meterline.ledger import LedgerBackend, LedgerRow

__all__ = ["EVENT_FIELDS", "HIERARCHY", "NotFound", "Views", "rfc3339"]

HIERARCHY: Final = ("org", "user", "session", "thread", "agent", "tool")
"""The nested scopes, outermost first: a row of one drills down to the next one's members."""
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
MAX_EVENTS: Final = 1000
"""The most events one list returns."""
MAX_SERIES: Final = 20
"""The most series a chart draws (the rest add up to ``other``)."""
LOOKAROUND: Final = timedelta(hours=1)
"""How far from an event its attempts and linked events are looked for."""
_EVENT_ID: Final = re.compile(r"[0-9a-f]{32}")
_NOT_MODEL_CALLS: Final = frozenset((TOOL_OPERATION, CACHE_OPERATION))


def _id_time(event_id: str) -> datetime | None:
    """The time a meter's event id starts with, or ``None`` when its first digits are no time."""
    try:
        return datetime.fromtimestamp(int(event_id[:12], 16) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class NotFound(LookupError):  # noqa: N818 - an answer (404), not an error
    """What a view was asked for is not in the ledger (an answer of 404, not an error)."""


def rfc3339(moment: datetime | None) -> str | None:
    """``moment`` as RFC 3339 in UTC (``Z``), or ``None``."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _change(now: Decimal | int, before: Decimal | int) -> float | None:
    """The relative change from ``before`` to ``now`` (``0.25`` is +25 %); ``None`` from nothing."""
    return None if not before else float((Decimal(now) - Decimal(before)) / Decimal(before))


def _matches(event: UsageEvent, where: Mapping[str, object]) -> bool:
    """Whether ``event`` passes ``where`` (``totals``' filters: a value, any of several, ``None``)."""
    for name, wanted in where.items():
        value = getattr(event, name) if name in EVENT_FIELDS else event.dimensions.get(name)
        allowed = wanted if isinstance(wanted, tuple | list | set | frozenset) else (wanted,)
        if value not in allowed:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Window:
    """A named span of time and the span it is compared with (both hour-aligned)."""

    name: str
    since: datetime
    until: datetime
    before_since: datetime
    before_until: datetime


def windows(now: datetime) -> tuple[Window, ...]:
    """Today, the last 7 days and the last 30 days, as UTC days (today included).

    Each is compared with the span of as many days just before it, up to the same hour
    (today with yesterday up to this hour). The ledger's roll-ups are hourly, so the spans end
    at the end of ``now``'s hour; they start at midnight, so a report by a dimension over one
    of them reads its daily roll-ups only.
    """
    until = _hour_floor(now) + HOUR
    midnight = _hour_floor(now).replace(hour=0)
    return tuple(
        Window(name, midnight - (days - 1) * DAY, until, midnight - (2 * days - 1) * DAY, until - days * DAY)
        for name, days in (("today", 1), ("7d", 7), ("30d", 30))
    )


class Views:
    """The dashboard's read side over one ledger and, optionally, one budget store.

    Each view reads through one ledger connection of a pool: ``ledger`` and ``readers``
    (more connections to the same store), so that as many views are read at once (SQLite
    and PostgreSQL release the GIL while they work).

    Args:
        ledger: The ledger every report and event comes from.
        budgets: The budget store, or ``None`` (the budgets page says there is none).
        budget_definitions: Budgets to show beside those the store keeps.
        readers: More connections to the same ledger (opened from its URL).
    """

    def __init__(
        self,
        ledger: LedgerBackend,
        budgets: BudgetStore | None = None,
        budget_definitions: Sequence[Budget] = (),
        *,
        readers: Sequence[LedgerBackend] = (),
    ) -> None:
        self.ledger = ledger
        """The ledger (its URL is shown; the first reader)."""
        self.budget_store = budgets
        self._definitions = tuple(budget_definitions)
        self._readers: queue.SimpleQueue[LedgerBackend] = queue.SimpleQueue()
        for reader in (ledger, *readers):
            self._readers.put(reader)

    @contextmanager
    def _reading(self) -> Iterator[LedgerBackend]:
        """A ledger of the pool, for one view (each connection reads one view at a time)."""
        ledger = self._readers.get()
        try:
            yield ledger
        finally:
            self._readers.put(ledger)

    # ----------------------------------------------------------------------------------------
    # reports

    def report(
        self,
        *,
        by: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of ``meterline report --format json`` for the same query, sorted by cost.

        Raises:
            ConfigurationError: on a bad name, granularity or value.
        """
        with self._reading() as ledger:
            rows = ledger.totals(
                by=by,
                where=where,
                since=since,
                until=until,
                granularity=granularity,  # type: ignore[arg-type]  # checked by totals
                limit=limit,
            )
            return [row.to_dict(by) for row in rows]

    def series(
        self,
        *,
        by: Sequence[str],
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: str = "day",
        top: int = 8,
    ) -> dict[str, Any]:
        """Cost over time, one series per group of ``by`` (the ``top`` costliest; the rest as ``other``).

        Three reports, none with a row per group and period for every group: the ``top``
        groups by cost over the range (``limit``: a top 8 of a hundred thousand sessions makes
        about 8 rows), their periods (filtered to their values), and all events' periods, of
        which ``other`` is the part the top groups leave, exactly.

        Returns:
            ``periods`` (RFC 3339), ``series`` (``name``, ``key``, ``cost`` per period as decimal
            strings, ``total``), and per period the calls not in the cost: ``unmeasured``,
            ``unpriced``.

        Raises:
            ConfigurationError: on a bad name, granularity, value or ``top``.
        """
        if type(top) is not int or not 1 <= top <= MAX_SERIES:
            raise ConfigurationError(f"top={top!r}: expected a whole number from 1 to {MAX_SERIES}")
        if granularity not in ("hour", "day", "week", "month"):
            raise ConfigurationError(f"granularity={granularity!r}: expected hour, day, week or month")
        week = granularity == "week"
        step: Any = "day" if week else granularity  # a ledger granularity: checked above
        with self._reading() as ledger:
            shown = [
                row.key for row in ledger.totals(by=by, where=where, since=since, until=until, limit=top)
            ]
            narrowed = dict(where or {})
            for index, name in enumerate(by):
                narrowed[name] = tuple({key[index] for key in shown})
            rows = (
                ledger.totals(by=by, where=narrowed, since=since, until=until, granularity=step)
                if shown
                else []
            )
            everything = ledger.totals(where=where, since=since, until=until, granularity=step)

        def start(row: LedgerRow) -> datetime:
            assert row.period is not None  # a granularity was given
            return row.period - timedelta(days=row.period.weekday()) if week else row.period

        wanted = set(shown)
        cells: dict[tuple[tuple[str | None, ...], datetime], Decimal] = {}
        for row in rows:
            if row.key in wanted:  # the filter on each name's values lets other combinations in
                cells[row.key, start(row)] = cells.get((row.key, start(row)), Decimal(0)) + row.cost
        total: dict[datetime, LedgerRow] = {}
        for row in everything:
            total[start(row)] = LedgerRow.total([total[start(row)], row]) if start(row) in total else row
        periods = sorted(total)
        series: list[dict[str, Any]] = [
            {
                "name": " · ".join("(none)" if value is None else value for value in key),
                "key": list(key),
                "cost": [str(cells.get((key, period), Decimal(0))) for period in periods],
                "total": str(sum((cells.get((key, period), Decimal(0)) for period in periods), Decimal(0))),
            }
            for key in shown
        ]
        rest = [
            total[period].cost - sum((cells.get((key, period), Decimal(0)) for key in shown), Decimal(0))
            for period in periods
        ]
        shown_events = sum(row.events for row in rows if row.key in wanted)
        if sum(row.events for row in total.values()) > shown_events:
            series.append(
                {
                    "name": "other",
                    "key": None,
                    "cost": [str(cost) for cost in rest],
                    "total": str(sum(rest, Decimal(0))),
                }
            )
        return {
            "by": list(by),
            "granularity": granularity,
            "periods": [rfc3339(period) for period in periods],
            "series": series,
            "unmeasured": [total[period].unmeasured for period in periods],
            "unpriced": [total[period].unpriced for period in periods],
        }

    def overview(self, now: datetime | None = None) -> dict[str, Any]:
        """Spend and calls today, over 7 and 30 days, each beside the span of the same length before.

        Also the tokens by class over 30 days (disjoint parts: uncached input, cache reads and
        writes, visible output, reasoning). The page asks for the costliest users, sessions and
        agents (of today, 7 or 30 days) as reports of their own (``report(by=…, since=…,
        limit=10)``), which the pool of connections reads beside this one.
        """
        with self._reading() as ledger:
            moment = now or datetime.now(tz=UTC)
            periods = []
            month: list[LedgerRow] = []
            for window in windows(moment):
                current = ledger.totals(by=("operation",), since=window.since, until=window.until)
                previous = ledger.totals(
                    by=("operation",), since=window.before_since, until=window.before_until
                )
                if window.name == "30d":
                    month = current
                now_sum, before_sum = LedgerRow.total(current), LedgerRow.total(previous)
                calls = sum(row.events for row in current if row.key[0] not in _NOT_MODEL_CALLS)
                calls_before = sum(row.events for row in previous if row.key[0] not in _NOT_MODEL_CALLS)
                periods.append(
                    {
                        "name": window.name,
                        "since": rfc3339(window.since),
                        "until": rfc3339(window.until),
                        "cost": str(now_sum.cost),
                        "model_calls": calls,
                        "events": now_sum.events,
                        "unmeasured": now_sum.unmeasured,
                        "unpriced": now_sum.unpriced,
                        "previous": {
                            "since": rfc3339(window.before_since),
                            "until": rfc3339(window.before_until),
                            "cost": str(before_sum.cost),
                            "model_calls": calls_before,
                            "events": before_sum.events,
                            "unmeasured": before_sum.unmeasured,
                            "unpriced": before_sum.unpriced,
                        },
                        "change": {
                            "cost": _change(now_sum.cost, before_sum.cost),
                            "model_calls": _change(calls, calls_before),
                        },
                    }
                )
            usage = LedgerRow.total(month).usage
            last = windows(moment)[-1]
            return {
                "now": rfc3339(moment),
                "periods": periods,
                "tokens": {
                    "since": rfc3339(last.since),
                    "input_uncached": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
                    "cache_read": usage.cache_read_tokens,
                    "cache_write": usage.cache_write_tokens,
                    "output_visible": usage.output_tokens - usage.reasoning_tokens,
                    "reasoning": usage.reasoning_tokens,
                },
            }

    def tools(self, *, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Tool calls, the application cache and the providers' prompt caches.

        Returns:
            ``tools`` (calls; failures: any status but ``success``, ``completed`` or ``ok``;
            duration), ``cache`` (hits, misses, hit rate, tokens saved) and ``prompt_cache``
            (reads and writes by model).
        """
        with self._reading() as ledger:
            tools: dict[str | None, dict[str, Any]] = {}
            for row in ledger.totals(
                by=("tool", "status"), where={"operation": TOOL_OPERATION}, since=since, until=until
            ):
                tool = tools.setdefault(
                    row.key[0], {"tool": row.key[0], "calls": 0, "failures": 0, "duration_ms": 0.0}
                )
                tool["calls"] += row.events
                tool["failures"] += 0 if row.key[1] in TOOL_SUCCESS else row.events
                tool["duration_ms"] += row.latency_ms
            for tool in tools.values():
                tool["mean_duration_ms"] = tool["duration_ms"] / tool["calls"] if tool["calls"] else None
            cache = {
                row.key[0]: row
                for row in ledger.totals(
                    by=("status",), where={"operation": CACHE_OPERATION}, since=since, until=until
                )
            }
            hits = cache["hit"].events if "hit" in cache else 0
            misses = cache["miss"].events if "miss" in cache else 0
            prompt = [
                {
                    "model": row.key[0],
                    "input_tokens": row.usage.input_tokens,
                    "cache_read_tokens": row.usage.cache_read_tokens,
                    "cache_write_tokens": row.usage.cache_write_tokens,
                    "read_share": row.usage.cache_read_tokens / row.usage.input_tokens
                    if row.usage.input_tokens
                    else None,
                }
                for row in ledger.totals(by=("model",), since=since, until=until)
                if row.usage.cache_read_tokens or row.usage.cache_write_tokens
            ]
            return {
                "since": rfc3339(since),
                "until": rfc3339(until),
                "tools": sorted(tools.values(), key=lambda tool: (-tool["calls"], tool["tool"] or "")),
                "cache": {
                    "hits": hits,
                    "misses": misses,
                    "hit_rate": hits / (hits + misses) if hits + misses else None,
                    "tokens_saved": sum(row.tokens_saved for row in cache.values()),
                },
                "prompt_cache": prompt,
            }

    # ----------------------------------------------------------------------------------------
    # events

    @staticmethod
    def _days_with(
        ledger: LedgerBackend, where: Mapping[str, object], since: datetime | None, until: datetime | None
    ) -> list[datetime]:
        """The UTC days holding events that pass ``where``, newest first (from the roll-ups)."""
        rows = ledger.totals(where=where, since=since, until=until, granularity="day")
        return sorted((row.period for row in rows if row.period is not None and row.events), reverse=True)

    def events(
        self,
        *,
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events that pass ``where``, newest first.

        The roll-ups say which days hold such events; only those days' events are read (by
        time), newest day first, until ``limit`` are found.

        Raises:
            ConfigurationError: on a bad name, value or ``limit``.
        """
        with self._reading() as ledger:
            if type(limit) is not int or not 1 <= limit <= MAX_EVENTS:
                raise ConfigurationError(f"limit={limit!r}: expected a whole number from 1 to {MAX_EVENTS}")
            wanted = dict(where or {})
            found: list[UsageEvent] = []
            for day in self._days_with(ledger, wanted, since, until):
                start = max(day, since) if since is not None else day
                end = min(day + DAY, until) if until is not None else day + DAY
                newest: deque[UsageEvent] = deque(maxlen=limit - len(found))
                newest.extend(
                    event for event in ledger.events(since=start, until=end) if _matches(event, wanted)
                )
                found.extend(reversed(newest))
                if len(found) >= limit:
                    break
            return [event.to_dict() for event in found]

    def latest(self, now: datetime | None = None, *, limit: int = 20) -> list[dict[str, Any]]:
        """The ``limit`` newest events of the ledger, newest first.

        The hourly roll-up says which hours of the last two days (or else of the newest day)
        hold events; they are read newest first, an hour at a time, until ``limit`` are found.
        """
        with self._reading() as ledger:
            moment = now or datetime.now(tz=UTC)
            hours = [
                row.period for row in ledger.totals(since=moment - 2 * DAY, granularity="hour") if row.period
            ]
            if not hours:
                days = [row.period for row in ledger.totals(granularity="day") if row.period]
                if not days:
                    return []
                hours = [
                    row.period
                    for row in ledger.totals(since=max(days), until=max(days) + DAY, granularity="hour")
                    if row.period
                ]
            found: list[UsageEvent] = []
            for hour in sorted(hours, reverse=True):  # hour by hour back, until enough are found
                newest: deque[UsageEvent] = deque(ledger.events(since=hour, until=hour + HOUR), maxlen=limit)
                found.extend(reversed(newest))
                if len(found) >= limit:
                    break
            return [event.to_dict() for event in found[:limit]]

    @staticmethod
    def _around(ledger: LedgerBackend, moment: datetime, span: timedelta) -> Iterator[UsageEvent]:
        return ledger.events(since=moment - span, until=moment + span)

    def event(self, event_id: str, at: datetime | None = None) -> dict[str, Any]:
        """One event, with its other attempts (same operation id) and the events linked to it.

        The event is looked for within a minute of ``at`` (its time, which the pages' links
        give) or, without it, of the time a meter's id starts with (its first 12 hex digits
        are milliseconds since the epoch); its attempts and links within an hour of it.

        Raises:
            ConfigurationError: on an id that is not 32 lower-case hex digits.
            NotFound: when no such event is stored there.
        """
        if type(event_id) is not str or not _EVENT_ID.fullmatch(event_id):
            shown = event_id[:40] if type(event_id) is str else event_id
            raise ConfigurationError(f"event id {shown!r}: expected 32 lower-case hex digits")
        moment = at or _id_time(event_id)
        if moment is None:
            raise NotFound(f"event {event_id}: its id tells no time; give its time (at=)")
        with self._reading() as ledger:
            event = next(
                (
                    found
                    for found in self._around(ledger, moment, timedelta(minutes=1))
                    if found.id == event_id
                ),
                None,
            )
            if event is None:
                raise NotFound(f"event {event_id}: not in the ledger")
            attempts: list[UsageEvent] = []
            linked: list[UsageEvent] = []
            for other in self._around(ledger, event.time, LOOKAROUND):
                if other.id == event.id:
                    continue
                if event.operation_id is not None and other.operation_id == event.operation_id:
                    attempts.append(other)
                if other.id in event.links or event.id in other.links:
                    linked.append(other)
            return {
                "event": event.to_dict(),
                "attempts": [other.to_dict() for other in attempts],
                "linked": [other.to_dict() for other in linked],
            }

    def dimensions(self, now: datetime | None = None) -> list[str]:
        """The names a report can group by: event fields, the scopes, and dimensions seen lately."""
        seen = {name for event in self.latest(now, limit=200) for name in event["dimensions"]}
        scopes = list(HIERARCHY)
        return [*EVENT_FIELDS, *scopes, *sorted(seen - set(scopes))]

    # ----------------------------------------------------------------------------------------
    # budgets

    def budgets(self, now: float | None = None) -> dict[str, Any]:
        """Each budget and key: limit, used, reserved, remaining, its window and reset, alerts fired.

        An alert fires once per window and key when usage reaches a fraction of the limit
        (`Budget.alert_at`): those reached by what the window has used are listed as fired.
        """
        store = self.budget_store
        if store is None:
            return {"configured": False, "budgets": []}
        definitions = {budget.name: budget for budget in known_budgets(store, self._definitions)}
        rows = []
        for status in budget_status(store, definitions.values(), now):
            budget = definitions[status.budget]
            limit = Decimal(status.limit)
            used_share = float(Decimal(status.used) / limit) if limit else None
            window = budget.window
            rows.append(
                {
                    "budget": status.budget,
                    "key": dict(status.key),
                    "metric": status.metric,
                    "limit": str(status.limit),
                    "used": str(status.used),
                    "reserved": str(status.reserved),
                    "remaining": str(status.remaining),
                    "used_share": used_share,
                    "reserved_share": float(Decimal(status.reserved) / limit) if limit else None,
                    "window": window if window is None or isinstance(window, str) else f"rolling {window}",
                    "resets_at": rfc3339(status.resets_at),
                    "alert_at": list(budget.alert_at),
                    "alerts_fired": [
                        a for a in budget.alert_at if used_share is not None and used_share >= a
                    ],
                }
            )
        return {"configured": True, "budgets": rows}
