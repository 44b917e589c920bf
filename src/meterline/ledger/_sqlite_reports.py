"""The SQLite ledger's reports: which table answers a query, added up inside SQLite.

Three sources, chosen per query (`plan`), each aggregated by SQLite with ``GROUP BY`` so
that Python receives one row per group, never one per event:

- ``nodims``: no dimension grouped or filtered: the hourly roll-up of (operation, status,
  provider, model), any hours.
- ``by_value``: one dimension (grouped, filtered or both), with any of the model fields, by
  day or month or not at all: the days of ``meterline_rollup_dim_day`` within the range, read
  in its key order (value, day, key); the hours of a range that does not start or end on a
  UTC day are added from the events of those hours.
- ``events``: anything else (two dimensions, a filter on another one, hours): the events of
  the range, read through their time index, added up per (dimensions, key, period), then
  grouped by dimension values in Python (each distinct ``dims`` text decoded once).

Memory grows with the number of groups, not events. A group whose sums pass 64 bits (its cost
past 2⁶³ pico-dollars, 9.2 million USD) is added up in Python instead: the same query
grouped by each source row's own key, so that no SQL sum overflows.
"""

from __future__ import annotations as _annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from meterline._money import tidy
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import LedgerError
from meterline.ledger._backend import Granularity, LedgerRow
from meterline.ledger._rows import ROLLUP_SUMS
from meterline.ledger._sqlite_keys import Dictionaries
from meterline.ledger._sqlite_schema import (
    DAY,
    EVENT_FIELDS,
    EVENT_SUMS,
    EVENTS,
    HOUR,
    NOT_MODEL_CALLS,
    ROLLUPS,
    SUM_LATENCY,
    SUM_PICO,
    SUM_SAVED,
    SUM_USAGE,
    UNMEASURED,
    UNPRICED,
)

__all__ = ["Query", "read_totals"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_WIDTH: Final = len(ROLLUP_SUMS)
_NS: Final = 10**9

Groups = dict[tuple[tuple[str | None, ...], int | None], list[Any]]
"""(key values in the order of ``by``, period start in seconds or None) -> `ROLLUP_SUMS`."""


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

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimension names the query groups or filters by, once each."""
        return tuple(dict.fromkeys(name for name in (*self.by, *self.where) if name not in EVENT_FIELDS))


def read_totals(conn: sqlite3.Connection, names: Dictionaries, query: Query) -> list[LedgerRow]:
    """The query's rows, by cost (highest first), then events, then key (and period)."""
    try:
        groups = _groups(conn, names, query, in_sql=True)
    except LedgerError as exc:
        if "overflow" not in str(exc.__cause__):
            raise
        groups = _groups(conn, names, query, in_sql=False)
    return _rows(groups, query.granularity)


def _groups(conn: sqlite3.Connection, names: Dictionaries, query: Query, *, in_sql: bool) -> Groups:
    groups: Groups = {}
    dims = query.dimensions
    try:
        if not dims:
            _add_nodims(conn, query, groups, in_sql)
            return groups
        if len(dims) == 1 and query.granularity != "hour":
            first = _next_day(query.since)
            last = None if query.until is None else query.until - query.until % DAY
            if first is None or last is None or first < last:
                _add_by_value(conn, query, dims[0], first, last, groups, in_sql)
                if first is not None and query.since is not None and query.since < first:
                    _add_events(conn, names, query, query.since, first, groups, in_sql)
                if last is not None and query.until is not None and last < query.until:
                    _add_events(conn, names, query, last, query.until, groups, in_sql)
                return groups
        _add_events(conn, names, query, query.since, query.until, groups, in_sql)
    except (sqlite3.Error, OverflowError) as exc:
        raise LedgerError(f"totals failed: {exc}") from exc
    return groups


def _next_day(hour: int | None) -> int | None:
    """The first UTC day starting at or after ``hour`` (seconds)."""
    return None if hour is None else -(-hour // DAY) * DAY


def _field_clauses(query: Query, prefix: str, clauses: list[str], params: list[object]) -> bool:
    """Filters on the model fields, as SQL over ``prefix``'s columns; False when nothing can match."""
    for name in EVENT_FIELDS:
        if name not in query.where:
            continue
        allowed = query.where[name]
        # Columns hold str only ('' or NULL for a missing provider or model): other values never match.
        values = [value for value in allowed if type(value) is str and value]
        parts = [f"{prefix}{name} IN ({', '.join('?' * len(values))})"] if values else []
        if None in allowed:
            parts.append(f"coalesce({prefix}{name}, '') = ''")
        if not parts:
            return False
        clauses.append(f"({' OR '.join(parts)})")
        params.extend(values)
    return True


def _add_nodims(conn: sqlite3.Connection, query: Query, groups: Groups, in_sql: bool) -> None:
    """Add up the hourly roll-up of the model fields (no dimension in the query)."""
    clauses: list[str] = []
    params: list[object] = []
    if query.since is not None:
        clauses.append("hour >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("hour < ?")
        params.append(query.until)
    if not _field_clauses(query, "", clauses, params):
        return
    fields = [name for name in EVENT_FIELDS[1:] if name in query.by or name in query.where]
    keys = [_period_sql(query.granularity, "hour"), "operation", *fields]
    sql = f"SELECT {', '.join(keys)}, {_sums(in_sql)} FROM {ROLLUPS[0]}"  # noqa: S608 - constants only
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if in_sql:
        sql += f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 1))}"
    at: dict[str, int] = {name: keys.index(name) for name in EVENT_FIELDS if name in keys}
    for row in conn.execute(sql, params):
        key = tuple(row[at[name]] or None for name in query.by)  # '' stands for a missing provider or model
        _add(groups, (key, row[0]), row, len(keys), row[1] in NOT_MODEL_CALLS)


def _add_by_value(
    conn: sqlite3.Connection,
    query: Query,
    dimension: str,
    first: int | None,
    last: int | None,
    groups: Groups,
    in_sql: bool,
) -> None:
    """Add up the day roll-up of one dimension's values over the days [first, last).

    The events without the dimension (the group ``None``, or a filter that allows ``None``)
    are in no row of that table: they are the hourly roll-up's sums over the same days and
    model fields less those of every value, which is exact (each event has at most one value
    per dimension, and every sum but latency is an integer).
    """
    allowed = query.where.get(dimension)
    wanted = None if allowed is None else frozenset(value for value in allowed if type(value) is str)
    missing = (allowed is None and dimension in query.by) or (allowed is not None and None in allowed)
    clauses = ["v.name = ?"]
    params: list[object] = [dimension]
    if wanted is not None and not missing:
        if not wanted:
            return
        clauses.append(f"v.value IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    if first is not None:
        clauses.append("r.day >= ?")
        params.append(first)
    if last is not None:
        clauses.append("r.day < ?")
        params.append(last)
    if not _field_clauses(query, "k.", clauses, params):
        return
    fields = tuple(name for name in EVENT_FIELDS if name in query.by)
    keys = [_period_sql(query.granularity, "r.day"), "v.value", *(f"k.{name}" for name in fields)]
    group = keys if in_sql else ["r.value_id", "r.day", "r.key_id"]
    sums = ", ".join(f"SUM(r.{name})" for name in ROLLUP_SUMS)
    sql = (
        f"SELECT {', '.join(keys)}, {sums} FROM meterline_dim_values AS v"  # noqa: S608 - constants only
        f" JOIN {ROLLUPS[1]} AS r ON r.value_id = v.value_id JOIN meterline_keys AS k ON k.key_id = r.key_id"
        f" WHERE {' AND '.join(clauses)} GROUP BY {', '.join(group)}"
    )
    width = len(keys)
    covered: Groups = {}
    for row in conn.execute(sql, params):
        values: dict[str, Any] = {name: row[2 + i] for i, name in enumerate(fields)}
        if missing:
            _add(covered, (tuple(values.values()), row[0]), row, width, False)
        if wanted is not None and row[1] not in wanted:
            continue
        values[dimension] = row[1]
        _add(groups, (tuple(values[name] for name in query.by), row[0]), row, width, False)
    if not missing:
        return
    everything: Groups = {}
    model_filters = {name: query.where[name] for name in EVENT_FIELDS if name in query.where}
    _add_nodims(conn, Query(fields, model_filters, first, last, query.granularity), everything, in_sql)
    for (key, period), acc in everything.items():
        done = covered.get((key, period), [0] * _WIDTH)
        rest = [total - part for total, part in zip(acc, done, strict=True)]
        if rest[EVENTS]:
            values = dict[str, Any](zip(fields, key, strict=True))
            values[dimension] = None
            _add(groups, (tuple(values[name] for name in query.by), period), rest, 0, False)


def _add_events(
    conn: sqlite3.Connection,
    names: Dictionaries,
    query: Query,
    since: int | None,
    until: int | None,
    groups: Groups,
    in_sql: bool,
) -> None:
    """Add up the events of the hours [since, until), through the time index."""
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("e.time_ns >= ?")
        params.append(since * _NS)
    if until is not None:
        clauses.append("e.time_ns < ?")
        params.append(until * _NS)
    if not _field_clauses(query, "k.", clauses, params):
        return
    keys = [
        _period_sql(query.granularity, f"(e.time_ns / {HOUR * _NS} * {HOUR})"),
        "k.operation",
        "e.dims",
        *(f"k.{name}" for name in EVENT_FIELDS[1:]),
    ]
    group = ["e.dims", "e.key_id", "1"] if in_sql else ["e.rowid"]
    sql = (
        f"SELECT {', '.join(keys)}, {', '.join(EVENT_SUMS)}"  # noqa: S608 - constants only
        " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id"
        f"{' WHERE ' + ' AND '.join(clauses) if clauses else ''} GROUP BY {', '.join(group)}"
    )
    filters = [(name, values) for name, values in query.where.items() if name not in EVENT_FIELDS]
    dims_at = {name: i for i, name in enumerate(query.dimensions)}
    fields_at: dict[str, int] = {name: keys.index(f"k.{name}") for name in EVENT_FIELDS}
    # Per distinct dims text: None when filtered out, else the values of the query's dimensions.
    decoded: dict[str, tuple[str | None, ...] | None] = {}
    for row in conn.execute(sql, params):
        text = row[2]
        part = decoded.get(text, ())
        if part == ():
            dims = names.dimensions(conn, text)
            keep = all(dims.get(name) in values for name, values in filters)
            part = decoded[text] = tuple(dims.get(name) for name in dims_at) if keep else None
        if part is None:
            continue
        key = tuple(
            part[dims_at[name]] if name in dims_at else row[fields_at[name]] or None for name in query.by
        )
        _add(groups, (key, row[0]), row, len(keys), row[1] in NOT_MODEL_CALLS)


def _period_sql(granularity: Granularity | None, hour: str) -> str:
    """The period a row of ``hour`` (seconds, or a day) falls in: hour, day (months merged later), none."""
    if granularity is None:
        return "NULL"
    if granularity == "hour":
        return hour
    return f"({hour} - {hour} % {DAY})"


def _sums(in_sql: bool) -> str:
    return ", ".join(f"SUM({name})" if in_sql else name for name in ROLLUP_SUMS)


def _add(
    groups: Groups, key: tuple[tuple[str | None, ...], int | None], row: Sequence[Any], at: int, tool: bool
) -> None:
    """Add a row's sums (from column ``at``) into its group; a tool's usage and cost are informational."""
    acc = groups.get(key)
    if acc is None:
        acc = groups[key] = [0] * _WIDTH
    if tool:
        acc[EVENTS] += row[at + EVENTS]
        acc[SUM_LATENCY] += row[at + SUM_LATENCY]
        acc[SUM_SAVED] += row[at + SUM_SAVED]
    else:
        for i in range(_WIDTH):
            acc[i] += row[at + i]


def _rows(groups: Groups, granularity: Granularity | None) -> list[LedgerRow]:
    """The groups as sorted `LedgerRow` (the days of one month merged for a monthly report)."""
    periods: dict[int, datetime] = {}
    out: dict[tuple[tuple[str | None, ...], datetime | None], list[Any]] = {}
    for (key, start), acc in groups.items():
        when = None if start is None else periods.get(start)
        if start is not None and when is None:
            when = periods[start] = _period(start, granularity)
        merged = out.get((key, when))
        if merged is None:
            out[key, when] = acc
        else:  # days of one month
            for i in range(_WIDTH):
                merged[i] += acc[i]
    result = [
        LedgerRow(
            key=key,
            period=when,
            events=acc[EVENTS],
            unmeasured=acc[UNMEASURED],
            unpriced=acc[UNPRICED],
            usage=Usage(**{name: acc[i] for name, i in zip(USAGE_FIELDS, SUM_USAGE, strict=True)}),
            cost=tidy(Decimal(acc[SUM_PICO]).scaleb(-12)),
            latency_ms=float(acc[SUM_LATENCY]),
            tokens_saved=acc[SUM_SAVED],
        )
        for (key, when), acc in out.items()
    ]
    result.sort(
        key=lambda row: (
            -row.cost,
            -row.events,
            tuple((value is not None, value or "") for value in row.key),
            row.period or _EPOCH,
        )
    )
    return result


def _period(start: int, granularity: Granularity | None) -> datetime:
    """The UTC start of the hour or day ``start`` (seconds), or of its month."""
    moment = datetime.fromtimestamp(start, tz=UTC)
    return moment.replace(day=1) if granularity == "month" else moment
