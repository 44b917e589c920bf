"""A report's groups: sums added up per (key, period), then sorted `LedgerRow`s.

Counts and token sums are ``int`` (PostgreSQL's are cast to ``bigint`` in SQL); the cost in
pico-dollars is an ``int`` or an exact ``Decimal`` (PostgreSQL's ``NUMERIC``).

Both SQL ledgers read their roll-ups and events as rows of `ROLLUP_SUMS` (already added up
by the database, one per group or per roll-up row) and add them here into ``Groups``, which
`to_rows` turns into the report: by cost, highest first, then events, then key (``None``
first) and period. Memory grows with the number of groups, never with the events.
"""

from __future__ import annotations as _annotations

import gc
import heapq
import operator
import sysconfig
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final, Literal

from meterline._dimensions import EVENT_FIELDS, check_names
from meterline._events import event_filters
from meterline._frozen import twin
from meterline._money import to_usd
from meterline._usage import USAGE_FIELDS, new_usage
from meterline.exceptions import ConfigurationError
from meterline.ledger._backend import GRANULARITIES, Granularity, LedgerRow
from meterline.ledger._rows import ROLLUP_SUMS, hour_of, nanoseconds

__all__ = [
    "DAY",
    "EVENTS",
    "HOUR",
    "SUM_LATENCY",
    "SUM_PICO",
    "SUM_SAVED",
    "SUM_USAGE",
    "UNMEASURED",
    "UNPRICED",
    "WIDTH",
    "Groups",
    "Query",
    "Source",
    "accumulate",
    "add",
    "check_limit",
    "collector_paused",
    "month_of",
    "next_day",
    "next_month",
    "segments",
    "to_rows",
    "where_sql",
    "within",
]

HOUR: Final = 3600
DAY: Final = 86_400
"""Seconds in a roll-up hour and day (UTC)."""
# Positions in a list of `ROLLUP_SUMS`.
WIDTH: Final = len(ROLLUP_SUMS)
EVENTS, UNMEASURED, UNPRICED = 0, 1, 2
SUM_USAGE: Final = tuple(ROLLUP_SUMS.index(name) for name in USAGE_FIELDS)
SUM_PICO: Final = ROLLUP_SUMS.index("cost_pico")
SUM_LATENCY: Final = ROLLUP_SUMS.index("latency_ms")
SUM_SAVED: Final = ROLLUP_SUMS.index("tokens_saved")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Groups = dict[tuple[tuple[str | None, ...], int | None], tuple[Any, ...]]
"""(key values in the order of ``by``, period start in seconds or None) -> `ROLLUP_SUMS`.

Tuples, replaced when added to, not lists added into: a tuple of numbers leaves the cyclic
garbage collector's care the first time it is seen, a list stays in it, and collections
over a report's hundreds of thousands of live lists took a fifth of its time (by user x
model over 1M events, 244,699 groups: 5.0 s -> 4.0 s with this and `to_rows`' sort)."""


@dataclass(frozen=True, slots=True)
class Query:
    """A checked report query: names to group by, filters, an hour range and a granularity."""

    by: tuple[str, ...]
    where: Mapping[str, frozenset[object]]
    since: int | None
    """First hour (seconds since the epoch), inclusive."""
    until: int | None
    """Hour (seconds) the range ends before."""
    granularity: Granularity | None
    limit: int | None = None
    """At most this many rows (the first by cost), or all."""

    @classmethod
    def checked(
        cls,
        by: Sequence[str],
        where: Mapping[str, object] | None,
        since: datetime | None,
        until: datetime | None,
        granularity: Granularity | None,
        limit: int | None = None,
    ) -> Query:
        """The query of `LedgerBackend.totals`' arguments, checked; the times rounded down to the hour.

        Raises:
            ConfigurationError: a name that is not a lower-case identifier, a bad granularity or
                a limit that is not a positive int.
        """
        if granularity is not None and granularity not in GRANULARITIES:
            raise ConfigurationError(f"granularity={granularity!r}: expected one of {GRANULARITIES} or None")
        check_limit(limit)
        return cls(
            by=check_names(by, "by"),
            where=event_filters(where),
            since=None if since is None else hour_of(nanoseconds(since)),
            until=None if until is None else hour_of(nanoseconds(until)),
            granularity=granularity,
            limit=limit,
        )

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimension names the query groups or filters by, once each (those of ``by`` first)."""
        return tuple(dict.fromkeys(name for name in (*self.by, *self.where) if name not in EVENT_FIELDS))

    @property
    def names_fields(self) -> bool:
        """Whether the query groups or filters by a model field (operation, status, provider, model)."""
        return any(name in EVENT_FIELDS for name in (*self.by, *self.where))


def month_of(seconds: int) -> int:
    """The first second of the UTC month of ``seconds`` (since the epoch)."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return int(moment.replace(day=1, hour=0, minute=0, second=0).timestamp())


def next_month(seconds: int) -> int:
    """The first second of the UTC month after the one of ``seconds``."""
    return month_of(month_of(seconds) + 32 * DAY)


Source = Literal["months", "days", "keyed"]
"""A roll-up by value that serves part of a report's days (`segments`)."""


def segments(
    query: Query, first: int | None, last: int | None, folded: int
) -> list[tuple[Source, int | None, int | None]]:
    """Each part of the days [first, last) as (source, start, end): months first, then the other days.

    The folded roll-ups by value (no key) hold the days before ``folded`` (the first day not
    folded; 0 for none): the monthly one serves the months that start in the range whose
    folded days all lie in it, up to the first day not folded (``"months"``), unless the
    report is by day; the daily one the other folded days (``"days"``). The roll-up keyed by
    model fields serves the days not folded, and every day of a report naming a model field,
    which only it keeps (``"keyed"``).
    """
    if query.names_fields or not folded:
        return [("keyed", first, last)]
    parts: list[tuple[Source, int | None, int | None]] = []
    days: list[tuple[int | None, int | None]] = [(first, last)]
    if query.granularity != "day":
        start = None if first is None else first if month_of(first) == first else next_month(first)
        end = folded if last is None or folded <= last else month_of(last)
        if start is None or start < end:
            parts.append(("months", start, end))
            days = []
            if first is not None and start is not None and first < start:
                days.append((first, start))
            if last is None or end < last:
                days.append((end, last))
    for begin, until in days:
        if begin is not None and begin >= folded:
            parts.append(("keyed", begin, until))
            continue
        cut = folded if until is None or folded < until else until
        parts.append(("days", begin, cut))
        if cut != until:
            parts.append(("keyed", cut, until))
    return parts


def within(
    column: str, first: int | None, last: int | None, scale: int = 1, mark: str = "?"
) -> tuple[list[str], list[Any]]:
    """SQL clauses keeping ``column`` in [first, last) (seconds, times ``scale``), and their parameters.

    ``mark`` is the driver's placeholder (SQLite's ``?``, psycopg's ``%s``); a bound that is
    ``None`` is left open.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if first is not None:
        clauses.append(f"{column} >= {mark}")
        params.append(first * scale)
    if last is not None:
        clauses.append(f"{column} < {mark}")
        params.append(last * scale)
    return clauses, params


def where_sql(clauses: Sequence[str]) -> str:
    """A ``WHERE`` of all ``clauses`` (SQL text), or nothing for none."""
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def next_day(hour: int | None) -> int | None:
    """The first UTC day starting at or after ``hour`` (seconds)."""
    return None if hour is None else -(-hour // DAY) * DAY


def add(
    groups: Groups, key: tuple[tuple[str | None, ...], int | None], row: Sequence[Any], at: int, tool: bool
) -> None:
    """Add a row's sums (from column ``at``) into its group; a tool's usage and cost are informational."""
    sums = tuple(row[at : at + WIDTH])  # a row's slice is a tuple already: no copy
    if tool:
        sums = _informational(sums)
    acc = groups.get(key)
    groups[key] = sums if acc is None else tuple(map(operator.add, acc, sums))


def _informational(sums: tuple[Any, ...]) -> tuple[Any, ...]:
    """A tool call's sums as a report adds them: its events, latency and tokens saved, no usage or cost."""
    kept = [0] * WIDTH
    for at in (EVENTS, SUM_LATENCY, SUM_SAVED):
        kept[at] = sums[at]
    return tuple(kept)


def accumulate(table: dict[Any, list[Any]], key: Any, sums: Iterable[Any]) -> None:
    """Add ``sums`` into ``table[key]`` element by element (a new key starts with a copy)."""
    acc = table.get(key)
    if acc is None:
        table[key] = list(sums)
    else:
        for index, value in enumerate(sums):
            acc[index] += value


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a report reads its rows and makes its own.

    The collector runs after every 700 container objects allocated, whatever they are, and
    looks into every young one: a report by session at 1M events allocates about 600,000
    (the rows read, the groups' keys and sums, each `LedgerRow` and its `Usage`), none of
    them in a reference cycle, and 557 collections took 0.19 s of its 1.05 s. As Mercurial's
    ``util.nogc`` does for the same reason: paused only if it runs, resumed after, even on
    an error; a cycle another thread makes meanwhile is collected then. What the report
    kept is moved to the oldest generation first, unwalked (`_promote_young`).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _promote_young()
        gc.enable()


_PROMOTE_PAST: Final = 10_000
"""Young containers past which a report's end moves them to the oldest generation unwalked."""
_FREE_THREADED: Final = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _promote_young() -> None:
    """Move the young containers to the oldest generation without walking them, if there are many.

    Paused, the collector still counts what is allocated: the first allocation after it
    resumes starts a young collection over everything the report kept, and at 1M events a
    report by session walked its 290,000 containers (rows, their usages and keys) for
    0.145 s of its 0.92, only to find each alive (`bench/bench_ledger_scale.py`). The rows
    are the caller's now, so they go where they would after surviving anyway. ``gc.freeze``
    then ``gc.unfreeze`` does this as two list splices (CPython moves every generation into
    the permanent one and the permanent one into the oldest, and resets the young count);
    a cycle made meanwhile waits for the next full collection instead. Not done when the
    host has frozen objects of its own (say, before forking workers: unfreezing them would
    undo that) nor on a free-threaded build, where freezing walks the whole heap.
    """
    if not _FREE_THREADED and gc.get_count()[0] > _PROMOTE_PAST and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def check_limit(limit: object) -> None:
    """Check a report's ``limit``: ``None`` (every row) or a positive int.

    Raises:
        ConfigurationError: naming the value.
    """
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigurationError(
            f"limit={limit!r}: expected a positive int (the first rows by cost), or None"
        )


def _first_by_cost(groups: Groups, limit: int) -> Groups:
    """The groups that can be among the ``limit`` first rows by cost and events.

    Those at least as high as the ``limit``-th (by their sums, as the rows will be sorted),
    so that groups tied with it stay for the key order to decide: the rows made from them,
    sorted, start with the same ``limit`` rows as all of them would.
    """
    if len(groups) <= limit:
        return groups
    ranked = heapq.nlargest(limit, groups.values(), key=_SUMS_COST_EVENTS)
    floor = _SUMS_COST_EVENTS(ranked[-1])
    return {key: acc for key, acc in groups.items() if _SUMS_COST_EVENTS(acc) >= floor}


def to_rows(groups: Groups, granularity: Granularity | None, limit: int | None = None) -> list[LedgerRow]:
    """The groups as sorted `LedgerRow` (the days of one month merged for a monthly report).

    ``groups`` is emptied as the rows are made, so that the sums and the rows are not held
    twice (a report by session has a hundred thousand of each). With a ``limit``, only the
    groups that can be among the first ``limit`` rows become rows (a top 10 of a hundred
    thousand sessions makes about 10).
    """
    if granularity == "month":
        groups = _months(groups)
    if limit is not None:
        groups = _first_by_cost(groups, limit)
    periods: dict[int, datetime] = {}
    rows: list[LedgerRow] = []
    # Each row's (pico-dollars, events), what it is sorted by, as one int: pico-dollars times
    # 2**64 plus events (a count under 2**63) orders as the pair does, negative costs too, and
    # ints compare faster than tuples (a report by session at 1M events: 96,464 rows).
    ranks: list[int] = []
    while groups:
        (key, start), acc = groups.popitem()
        when = None if start is None else periods.get(start)
        if start is not None and when is None:
            when = periods[start] = _period(start)
        pico = int(acc[SUM_PICO])  # an int, or PostgreSQL's exact NUMERIC
        # Built through LedgerRow's mutable twin (`meterline._frozen`): a report by session
        # makes 96,464 rows at 1M events, and the frozen class's own __init__ took 0.22 s of
        # them against 0.06 s (bench/bench_ledger_scale.py's ledger).
        row = _LedgerRowSlots(
            key,
            when,
            acc[EVENTS],
            acc[UNMEASURED],
            acc[UNPRICED],
            new_usage(*_USAGE_SUMS(acc)),  # sums of counts checked when recorded
            to_usd(pico),
            float(acc[SUM_LATENCY] or 0.0),
            acc[SUM_SAVED],
        )
        row.__class__ = LedgerRow
        rows.append(row)
        ranks.append((pico << 64) + acc[EVENTS])
    # By cost and events, highest first; ties by key (None first), then period. Sorted by
    # the integers the costs are made of: sorting a report by session at 1M events (96,464
    # rows, shuffled) took 0.25 s comparing the rows' Decimal costs, 0.07 s so.
    order = sorted(range(len(rows)), key=ranks.__getitem__, reverse=True)
    rows = [rows[at] for at in order]
    for begin, end in _ties([ranks[at] for at in order]):
        rows[begin:end] = sorted(rows[begin:end], key=_key_order)
    return rows if limit is None else rows[:limit]


_USAGE_SUMS: Final = itemgetter(*SUM_USAGE)
_LedgerRowSlots: Final = twin(LedgerRow)
_SUMS_COST_EVENTS: Final = itemgetter(SUM_PICO, EVENTS)


def _months(groups: Groups) -> Groups:
    """``groups`` by month: the days of one month (and key) added into one group."""
    months: Groups = {}
    while groups:
        (key, start), acc = groups.popitem()
        month = None if start is None else month_of(start)
        merged = months.get((key, month))
        months[key, month] = acc if merged is None else tuple(map(operator.add, merged, acc))
    return months


def _ties(ranks: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The [start, end) of each run of two or more equal ``ranks`` (rows of the same cost and events).

    Compared as the rows' ranks (`to_rows`), ints: their Decimal costs took 0.035 s of a
    report by session at 1M events (96,464 rows).
    """
    start = 0
    for index in range(1, len(ranks) + 1):
        if index == len(ranks) or ranks[index] != ranks[start]:
            if index - start > 1:
                yield start, index
            start = index


def _key_order(row: LedgerRow) -> tuple[Any, ...]:
    # None first, then the values in order: "" stands for None, and "\x01" prefixes a value.
    return tuple("" if value is None else "\x01" + value for value in row.key), row.period or _EPOCH


def _period(start: int) -> datetime:
    """The UTC start of the hour, day or month ``start`` (seconds; months merged by `_months`)."""
    return datetime.fromtimestamp(start, tz=UTC)
