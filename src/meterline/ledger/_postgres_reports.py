"""The PostgreSQL ledger's reports: which table answers a query, added up inside PostgreSQL.

The same plan as the SQLite ledger's (`meterline.ledger._sqlite_reports`), over schema
version 11 (`meterline.ledger._postgres_schema`), each source aggregated by PostgreSQL with
``GROUP BY`` so that Python receives one row per group, never one per event (the monthly
roll-up by value, about a row per group already, is read as it is):

- no dimension grouped or filtered: the hourly roll-up of (operation, status, provider,
  model), any hours.
- one dimension (grouped, filtered or both), by day or month or not at all: when no model
  field is named, the monthly roll-up by value (joined to its values) for the whole months of
  the range, the folded days' for the other days folded (`segments`); the daily one (joined
  to its values and keys) for the other whole days; the
  hours of a range that does not start or end on a UTC day from the events of those hours
  (through the time index, in their month's partition).
- anything else (two dimensions, a filter on another one, hours): the events of the range
  (those a dimension filter allows, read from their JSON, `_Reader.dimension_filters`),
  added up per (period, model fields, values of the query's dimensions, read from each
  event's JSON in SQL; JSON that ``jsonb`` refuses is grouped as its text, decoded here).

The events without the dimension (the group ``None``) are all events less every value's:
exact, as each event has at most one value per dimension. When only some values are wanted,
every value's sums are read apart, from the range's rows when the dimension has far more
values than the range has rows (`_Reader.range_first`). Sums come back as ``bigint`` and
money as exact ``NUMERIC``; memory grows with the report's rows, never with the events.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from meterline._dimensions import EVENT_FIELDS
from meterline.exceptions import LedgerError
from meterline.ledger._backend import LedgerRow
from meterline.ledger._groups import (
    DAY,
    EVENTS,
    SUM_LATENCY,
    WIDTH,
    Groups,
    Query,
    Source,
    add,
    collector_paused,
    next_day,
    segments,
    to_rows,
    where_sql,
    within,
)
from meterline.ledger._postgres_copy import escape, field_value, unescape
from meterline.ledger._postgres_schema import (
    DAY_ROWS,
    DAY_TOTAL_ROWS,
    EVENT_TOTALS,
    MONTH_COLUMNS,
    MONTH_ROWS,
    MONTH_SUMS,
    NOT_MODEL_CALL,
    OPTIONAL_FIELDS,
    PERIODS,
    TOTAL_SUMS,
)
from meterline.ledger._rows import dimensions_of

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = ["read_totals"]

_NS: Final = 10**9
_FETCH: Final = 5_000
"""Result rows fetched from the server at a time."""
_HAS_NUL: Final = "strpos(dimensions, '\\u0000') > 0"
"""SQL: whether an event's dimensions JSON holds ``\\u0000``, an escaped NUL, which ``jsonb`` refuses
(also true of an escaped backslash followed by ``u0000``: such text is decoded in Python, exactly)."""
_JSON_ONCE: Final = (
    f", LATERAL (SELECT CASE WHEN NOT {_HAS_NUL} THEN dimensions::jsonb END AS parsed OFFSET 0) AS d"
)
"""SQL: each event's dimensions as ``jsonb`` (``d.parsed``, NULL for JSON it refuses), parsed once.

Its values are read by name for each of a report's dimensions (grouped and filtered): parsed
for each, the JSON was parsed two or three times an event. ``OFFSET 0`` keeps PostgreSQL from
pulling the subquery up into each use (by user x agent over 7 of 1M product events: 0.20-0.25
-> 0.14-0.15 s, in SQL)."""
_SOURCES: Final[dict[Source, tuple[str, tuple[str, ...]]]] = {
    "months": (MONTH_ROWS, MONTH_SUMS),
    "days": (DAY_TOTAL_ROWS, MONTH_SUMS),  # as the months, no tool's usage or cost
    "keyed": (DAY_ROWS, TOTAL_SUMS),
}
"""The rows of each `segments` source, and their sums."""
_VALUE_OF: Final = (
    "CROSS JOIN LATERAL (SELECT value FROM {dim_values} AS v"
    " WHERE v.value_id = r.value_id AND v.name = %s OFFSET 0) AS v"
)
_BY_RANGE: Final[dict[Source, str]] = {
    "days": f"{{day_total}} AS r {_VALUE_OF}",
    "keyed": f"{{dim_day}} AS r {_VALUE_OF} JOIN {{rollup_keys}} USING (key_id)",
}
"""The rows of `_SOURCES` that have an index of the day, read from the range's rows: each row's
value looked up by its id (``OFFSET 0`` keeps PostgreSQL from flattening the lookup into a
join: it hashed every value of the dimension instead, see `_Reader.range_first`)."""
_FEW: Final = 1_000
"""A dimension of no more values than this is read by value (`_Reader.range_first`)."""
_PROBES: Final = 8
"""A range's row looked up by its value's id costs about as much as 8 to 12 values hashed (1.5-2
against 0.17 µs): at 8, the two ways took the same time by session over 7 of 1M product events."""
Compose = Callable[[str], "sql.Composed"]
"""Fixed SQL text (never caller input) with the ledger's quoted table names filled in."""


def read_totals(
    cur: psycopg.Cursor[tuple[Any, ...]], compose: Compose, query: Query, folded: int
) -> list[LedgerRow]:
    """The query's rows, by cost (highest first), then events, then key (and period).

    ``folded`` is the first day (seconds) whose daily rows by value are not yet in the monthly
    roll-up (the meta table's ``dim_months_until``).
    """
    with collector_paused():
        reader = _Reader(cur, compose, query, folded)
        reader.run()
        return to_rows(reader.groups, query.granularity, query.limit)


class _Reader:
    """One report: the plan, its SQL, and the groups its rows are added into."""

    def __init__(
        self, cur: psycopg.Cursor[tuple[Any, ...]], compose: Compose, query: Query, folded: int
    ) -> None:
        self.cur = cur
        self.compose = compose
        self.query = query
        self.folded = folded
        self.groups: Groups = {}

    def run(self) -> None:
        query = self.query
        dims = query.dimensions
        if not dims:
            self.nodims()
            return
        if len(dims) == 1 and query.granularity != "hour":
            first = next_day(query.since)
            last = None if query.until is None else query.until - query.until % DAY
            if first is None or last is None or first < last:
                for source, start, end in segments(query, first, last, self.folded):
                    self.by_value(dims[0], source, start, end)
                if first is not None and query.since is not None and query.since < first:
                    self.events(query.since, first)
                if last is not None and query.until is not None and last < query.until:
                    self.events(last, query.until)
                return
        self.events(query.since, query.until)

    def fields(self, clauses: list[str], params: list[Any]) -> bool:
        """Filters on the model fields, as SQL; False when nothing can match."""
        for name in EVENT_FIELDS:
            if name not in self.query.where:
                continue
            allowed = self.query.where[name]
            # Columns hold strings only ('' for a missing provider or model).
            values = [escape(value) for value in allowed if type(value) is str and value]
            if None in allowed and name in OPTIONAL_FIELDS:
                values.append("")
            if not values:
                return False
            if name in OPTIONAL_FIELDS:
                clauses.append(f"coalesce({name}, '') = ANY(%s)")
            else:
                clauses.append(f"{name} = ANY(%s)")
            params.append(values)
        return True

    def select(
        self, keys: list[str], sums: tuple[str, ...], rows: str, clauses: list[str], *, grouped: bool = True
    ) -> str:
        """SQL: the sums of ``rows`` (fixed SQL whose table names `Compose` fills in) grouped by ``keys``.

        Not ``grouped``: ``sums`` are columns of each row, added up by the caller.
        """
        groups = ", ".join(str(index) for index in range(1, len(keys) + 1))
        group_by = f" GROUP BY {groups}" if grouped else ""
        # Fixed text: keys, sums and rows from constants.
        return f"SELECT {', '.join(keys)}, {', '.join(sums)} FROM {rows}{where_sql(clauses)}{group_by}"  # noqa: S608

    def fetch(self, text: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, fetched from a server-side cursor a page at a time (bounded memory)."""
        with self.cur.connection.cursor(name="meterline_report") as rows:
            rows.execute(self.compose(text), params)
            # A page at a time, not row by row: the cursor's own iteration is Python code per
            # row (by session at 1M events, 96,464 rows: 0.07 s of its 1.1 s).
            while page := rows.fetchmany(_FETCH):
                yield from page

    def nodims(self) -> None:
        """Add up the hourly roll-up of the model fields (no dimension in the query)."""
        query = self.query
        clauses, params = within("hour", query.since, query.until, mark="%s")
        if not self.fields(clauses, params):
            return
        named: list[str] = [name for name in EVENT_FIELDS if name in query.by]
        for row in self.hourly(named, clauses, params):
            key = tuple(field_value(name, row[1 + named.index(name)]) for name in query.by)
            add(self.groups, (key, row[0]), row, 2 + len(named), row[1 + len(named)])

    def hourly(self, named: list[str], clauses: list[str], params: list[Any]) -> Iterator[tuple[Any, ...]]:
        """The hourly roll-up's sums per (period, ``named`` fields, whether not model calls).

        Each row: the period, the named fields, True for the tools' and caches' rows (whose
        usage and cost `add` leaves out), then `ROLLUP_SUMS`. Grouped by that flag rather than
        summing each usage column ``FILTER (WHERE …)``: over the hourly rows of the benchmark's
        ledger of 1M events (which every report by one dimension reads, for the events
        without it), PostgreSQL took 0.08 to 0.10 s with the filters, 0.04 to 0.06 s so.
        """
        keys = [self.period("hour"), *named, NOT_MODEL_CALL]
        return self.fetch(self.select(keys, MONTH_SUMS, "{nodims}", clauses), params)

    def by_value(self, dimension: str, source: Source, first: int | None, last: int | None) -> None:
        """Add up a roll-up by value (`segments`' ``source``) of one dimension over the days [first, last)."""
        query = self.query
        allowed = query.where.get(dimension)
        wanted = None if allowed is None else [escape(value) for value in allowed if type(value) is str]
        missing = (allowed is None and dimension in query.by) or (allowed is not None and None in allowed)
        monthly = source == "months"
        column = "month" if monthly else "day"
        clauses, params = within(column, first, last, mark="%s")
        if not self.fields(clauses, params):
            return
        named: list[str] = [name for name in EVENT_FIELDS if name in query.by]
        period = self.period(column)
        table, sums = _SOURCES[source]
        valued = ["name = %s", *clauses]
        # The monthly roll-up is read row by row: it holds a row per value and month, about one
        # per group of a report by value or month, and PostgreSQL sorted them all by value to
        # add up 19 sums a group (by session at 1M events: 0.47 -> 0.21 s, the rows fetched).
        # So are the folded days' rows for a report by day: each is a group of its own.
        by_row = (monthly or (source == "days" and query.granularity == "day")) and wanted is None
        # When every value's rows are read, their sums (per model fields and period) are added
        # up here for the group ``None``, by column in C: reading them again grouped by period
        # took PostgreSQL 0.43 s of a report by user and day at 1M events (2.85 s).
        summed_here = missing and wanted is None
        parts: dict[tuple[tuple[Any, ...], int | None], list[tuple[Any, ...]]] = {}
        if wanted != []:
            extra = [] if wanted is None else ["value = ANY(%s)"]
            rows = self.fetch(
                self.select(
                    [period, "value", *named],
                    MONTH_COLUMNS if by_row else sums,
                    table,
                    valued + extra,
                    grouped=not by_row,
                ),
                [escape(dimension), *params, *([] if wanted is None else [wanted])],
            )
            only_value = query.by == (dimension,)  # the key without a dict a row (0.6 µs each)
            for row in rows:
                if only_value:
                    key: tuple[str | None, ...] = (unescape(row[1]),)
                else:
                    values = {dimension: unescape(row[1])}
                    values.update((name, field_value(name, row[2 + i])) for i, name in enumerate(named))
                    key = tuple(values[name] for name in query.by)
                found = row[2 + len(named) :]
                add(self.groups, (key, row[0]), found, 0, False)
                if summed_here:
                    parts.setdefault((row[2 : 2 + len(named)], row[0]), []).append(found)
        if not missing:
            return
        # By column, in C: a tuple added per row took 0.06 s of a report by session (96,464 rows).
        covered: Groups = {key: tuple(map(sum, zip(*rows, strict=True))) for key, rows in parts.items()}
        # The events without the dimension: all events (the hourly roll-up) less every value's.
        if not summed_here:  # only some values were read: every value's sums, read for it
            read, where = (
                (_BY_RANGE[source], clauses)
                if source in _BY_RANGE and self.range_first(dimension, source, first, last)
                else (table, valued)
            )
            for row in self.fetch(
                self.select([period, *named], sums, read, where), [escape(dimension), *params]
            ):
                add(covered, (tuple(row[1 : 1 + len(named)]), row[0]), row, 1 + len(named), False)
        hour_clauses, hour_params = within("hour", first, last, mark="%s")
        self.fields(hour_clauses, hour_params)
        everything: Groups = {}
        width = 1 + len(named)  # the period and the named fields, then the flag and the sums
        for row in self.hourly(named, hour_clauses, hour_params):
            add(everything, (tuple(row[1:width]), row[0]), row, width + 1, row[width])
        for (fields, start), sums in everything.items():
            done = covered.get((fields, start), [0] * WIDTH)
            rest = [total - part for total, part in zip(sums, done, strict=True)]
            if any(value < 0 for value in rest[:SUM_LATENCY]):
                raise LedgerError(
                    f"the roll-ups disagree: the rows by {dimension!r} add up to more than all events"
                    f" ({rest}); the tables were changed by hand"
                )
            if rest[EVENTS]:
                values = {dimension: None}
                values.update((name, field_value(name, str(fields[i]))) for i, name in enumerate(named))
                add(self.groups, (tuple(values[name] for name in query.by), start), rest, 0, False)

    def events(self, since: int | None, until: int | None) -> None:
        """Add up the events of the hours [since, until), through the time index.

        Grouped by the values of the query's dimensions, which PostgreSQL reads from each
        event's JSON (``->>``): a group per distinct combination of them, not per distinct
        dimension set (by user x agent over the last 7 of 1M product events: 15,766 groups
        against 35,992 sets, each decoded here). JSON holding an escaped NUL, which ``jsonb``
        cannot hold, is grouped as its text instead and decoded here.
        """
        query = self.query
        clauses, params = within("time_ns", since, until, _NS, "%s")
        if not self.fields(clauses, params):
            return
        self.dimension_filters(clauses, params)
        named: list[str] = [name for name in EVENT_FIELDS if name in query.by]
        wanted = query.dimensions  # those of ``by`` first, in order, then those filtered
        keys = [
            self.period("hour"),
            "CASE WHEN d.parsed IS NULL THEN dimensions END",
            *["d.parsed ->> %s::text" for _ in wanted],
            *(f"coalesce({name}, '')" for name in named),
        ]
        filters = [
            (wanted.index(name), allowed) for name, allowed in query.where.items() if name not in EVENT_FIELDS
        ]
        fields_at = 2 + len(wanted)
        # Each name of ``by``: (None, its position in ``values``) or (the model field, its column).
        key_at = [
            (name, fields_at + named.index(name)) if name in EVENT_FIELDS else (None, wanted.index(name))
            for name in query.by
        ]
        decoded: dict[str, tuple[Any, ...]] = {}  # per JSON text grouped as it is: its values
        rows = self.fetch(
            self.select(keys, (EVENT_TOTALS,), f"{{events}}{_JSON_ONCE}", clauses), [*wanted, *params]
        )
        for row in rows:
            text = row[1]
            if text is None:
                values = row[2:fields_at]
            else:
                values = decoded.get(text, ())
                if values == ():
                    dims = dimensions_of(text)
                    values = decoded[text] = tuple(dims.get(name) for name in wanted)
            if not all(values[at] in allowed for at, allowed in filters):
                continue
            key = tuple(values[at] if field is None else field_value(field, row[at]) for field, at in key_at)
            add(self.groups, (key, row[0]), row, fields_at + len(named), False)

    def dimension_filters(self, clauses: list[str], params: list[Any]) -> None:
        """Filters on dimensions, as SQL on each event's JSON, so that only its events are grouped.

        Applied to the rows again as they are read (exactly, and to JSON that ``jsonb``
        refuses, which this keeps). Without them, every event of the range was grouped (by
        user for three of 200 orgs over 60 days of 1M product events: 3.3 s, 761,000 events
        sorted on disk for 9,997 groups, 150 of them kept).
        """
        for name, allowed in self.query.where.items():
            if name in EVENT_FIELDS:
                continue
            # A text parameter cannot hold NUL: the events of such a value hold "\u0000" (kept).
            values = [value for value in allowed if type(value) is str and "\x00" not in value]
            value = "d.parsed ->> %s::text"  # NULL for an event without the dimension
            if None not in allowed:
                kept, args = f"{value} = ANY(%s::text[])", [name, values]
            elif values:
                kept, args = f"({value} = ANY(%s::text[])) IS NOT FALSE", [name, values]  # NULL = ANY: NULL
            else:
                kept, args = f"{value} IS NULL", [name]  # (NULL = ANY of no values is false)
            clauses.append(f"CASE WHEN d.parsed IS NULL THEN true ELSE {kept} END")
            params.extend(args)

    def range_first(self, dimension: str, source: Source, first: int | None, last: int | None) -> bool:
        """Whether every value's rows over the days [first, last) are found cheaper from the range's rows.

        For the sources indexed by day (`_BY_RANGE`; the monthly rows are read by value).

        PostgreSQL's planner hashes every value of the dimension to join them to the range's
        rows: with 1.1M session values, a report by session filtered on one session and the
        events without one, over 7 of 1M product events, took 0.72-0.86 s (0.05 s from the range's
        rows; 0.07-0.10 s either way with the benchmark's 96,464 sessions). So, as SQLite's
        `meterline.ledger._sqlite_reports.way_in`, the range's rows are read when the dimension
        has more than `_PROBES` times as many values as the range has rows. Both numbers are
        the planner's estimates (``EXPLAIN``, from the statistics its reports rely on anyway):
        counting them took 8 to 16 ms a report.
        """
        values = self.estimate("SELECT 1 FROM {dim_values} WHERE name = %s", [escape(dimension)])
        if values <= _FEW:
            return False
        clauses, params = within("day", first, last, mark="%s")
        table = "{day_total}" if source == "days" else "{dim_day}"
        return values > _PROBES * self.estimate(f"SELECT 1 FROM {table}{where_sql(clauses)}", params)  # noqa: S608

    def estimate(self, text: str, params: list[Any]) -> float:
        """The planner's estimate of the rows of a query (fixed SQL text)."""
        row = self.cur.execute(self.compose(f"EXPLAIN (FORMAT JSON) {text}"), params).fetchone()
        return float(row[0][0]["Plan"]["Plan Rows"]) if row else 0.0

    def period(self, column: str) -> str:
        """SQL: the start of the period of ``column`` (seconds), or NULL without a granularity."""
        granularity = self.query.granularity
        return "NULL::bigint" if granularity is None else PERIODS[granularity].format(column)
