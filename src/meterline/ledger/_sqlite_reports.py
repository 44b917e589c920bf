"""The SQLite ledger's reports: which table answers a query, added up inside SQLite.

Three sources, chosen per query (`plan`), each aggregated by SQLite with ``GROUP BY`` so
that Python receives one row per group, never one per event (the monthly roll-up by value,
about a row per group already, is read as it is):

- ``nodims``: no dimension grouped or filtered: the hourly roll-up of (operation, status,
  provider, model), any hours.
- ``by_value``: one dimension (grouped, filtered or both), with any of the model fields, by
  day or month or not at all: when no model field is named, the monthly roll-up by value for
  the range's whole months and the folded days' (`DAY_TOTALS`) for its other days already
  folded (`segments`); for the rest, the days of ``meterline_rollup_dim_day`` within the
  range, keyed by (value, day, key), and those of its newest rows (`RECENT`, keyed by day);
  the hours of a range that does not start or end on a UTC day are added from the events of
  those hours. Every value's rows are found value by value, or from the range's rows or
  events, whichever `way_in` counts cheaper: a dimension kept for years may have a million
  values, of which a week's report needs a few thousand.
- ``events``: anything else (two dimensions, a filter on another one, hours): the events of
  the range, read through their time index (those holding an id of a value a dimension
  filter allows, `_dimension_clauses`), added up per (dimensions, key, period), then grouped
  by dimension values in Python (each distinct ``dims`` text decoded once, from the values
  of the query's dimensions read at once, `_decoder`).

Memory grows with the number of groups, not events. A group whose sums pass 64 bits (its cost
past 2⁶³ pico-dollars, 9.2 million USD) is added up in Python instead: the same query
grouped by each source row's own key, so that no SQL sum overflows.
"""

from __future__ import annotations as _annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from meterline._dimensions import EVENT_FIELDS
from meterline.exceptions import LedgerError
from meterline.ledger._backend import Granularity, LedgerRow
from meterline.ledger._groups import (
    DAY,
    EVENTS,
    HOUR,
    SUM_LATENCY,
    SUM_PICO,
    WIDTH,
    Groups,
    Query,
    Source,
    add,
    collector_paused,
    month_of,
    next_day,
    segments,
    to_rows,
    where_sql,
    within,
)
from meterline.ledger._rows import ROLLUP_SUMS
from meterline.ledger._sqlite_folds import DAY_TOTALS
from meterline.ledger._sqlite_keys import Dictionaries, value_ids
from meterline.ledger._sqlite_schema import (
    ALL_EVENTS,
    BY_VALUE_SUMS,
    EVENT_SUMS,
    EVENT_VALUES,
    NOT_MODEL_CALLS,
    NOT_MODEL_CALLS_SQL,
    RECENT,
    ROLLUPS,
    folded_until,
)

__all__ = ["Way", "from_clause", "read_totals", "way_in"]

_NS: Final = 10**9
_MAX_PUSHED: Final = 900
"""Values of one dimension filter at most that SQLite looks for in each event's ids (`_dimension_clauses`)."""
_MAX_LOADED: Final = 100_000
"""Values of the report's dimensions at most that a report by events reads at once (`_decoder`)."""
_HAS_ID: Final = "instr(',' || e.dims || ',', ?) > 0"
"""SQL: whether an event's value ids hold the one bound as ``,id,``."""
_BY_TEXT: Final = 3
"""Ids a dimension filter looks for in an event's ids as text (`_HAS_ID`); more, among `_IDS`."""
_IDS: Final = "json_each('[' || e.dims || ']')"
"""SQL: an event's value ids, as the rows of a JSON array."""
Way = Literal["values", "range", "events"]
"""How a report finds every value's rows in a roll-up by value: see `way_in`."""
_PROBES: Final = 4
"""A row or event of a range read and its value looked up costs about four values read by name
and looked up in a roll-up (`way_in`). Measured on `bench/bench_ledger_scale.py`'s 1M events,
with 1.1M session values: a value 0.25-0.3 us, a folded day's row 1.1-1.4 us, an event of the
days not folded 1.05 us (their distinct values then looked up)."""
_FEW: Final = 1_000
"""A dimension with no more values than this is read by value, without counting the range (0.3 ms)."""
_COUNTED: Final = 100_000
"""The most rows or events `way_in` counts: past it, the values are read (a range that large
costs more than reading a dimension's values, up to about 400,000 of them)."""
_VALUES_OF: Final = "SELECT count(*) FROM (SELECT 1 FROM meterline_dim_values WHERE name = ? LIMIT ?)"
_TABLES: Final[dict[Source, tuple[str, ...]]] = {
    "months": (ROLLUPS[2],),
    "days": (DAY_TOTALS,),
    "keyed": (ROLLUPS[1], RECENT),
}
"""The tables of each `segments` source: the keyed daily roll-up's rows are in two."""


def read_totals(conn: sqlite3.Connection, names: Dictionaries, query: Query) -> list[LedgerRow]:
    """The query's rows, by cost (highest first), then events, then key (and period)."""
    with collector_paused():
        try:
            groups = _groups(conn, names, query, in_sql=True)
        except LedgerError as exc:
            if "overflow" not in str(exc.__cause__):
                raise
            groups = _groups(conn, names, query, in_sql=False)
        return to_rows(groups, query.granularity, query.limit)


def _groups(conn: sqlite3.Connection, names: Dictionaries, query: Query, *, in_sql: bool) -> Groups:
    groups: Groups = {}
    dims = query.dimensions
    try:
        if not dims:
            _add_nodims(conn, query, groups, in_sql)
            return groups
        if len(dims) == 1 and query.granularity != "hour":
            first = next_day(query.since)
            last = None if query.until is None else query.until - query.until % DAY
            if first is None or last is None or first < last:
                for source, start, end in segments(query, first, last, folded_until(conn)):
                    for table in _TABLES[source]:
                        _add_by_value(conn, query, dims[0], table, start, end, groups, in_sql)
                if first is not None and query.since is not None and query.since < first:
                    _add_events(conn, names, query, query.since, first, groups, in_sql)
                if last is not None and query.until is not None and last < query.until:
                    _add_events(conn, names, query, last, query.until, groups, in_sql)
                return groups
        _add_events(conn, names, query, query.since, query.until, groups, in_sql)
    except (sqlite3.Error, OverflowError) as exc:
        raise LedgerError(f"totals failed: {exc}") from exc
    return groups


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
    clauses, params = within("hour", query.since, query.until)
    if not _field_clauses(query, "", clauses, params):
        return
    fields = [name for name in EVENT_FIELDS[1:] if name in query.by or name in query.where]
    keys = [_period_sql(query.granularity, "hour"), "operation", *fields]
    sql = f"SELECT {', '.join(keys)}, {_sums(in_sql)} FROM {ROLLUPS[0]}{where_sql(clauses)}"  # noqa: S608
    if in_sql:
        sql += f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 1))}"
    at: dict[str, int] = {name: keys.index(name) for name in EVENT_FIELDS if name in keys}
    for row in conn.execute(sql, params):
        key = tuple(row[at[name]] or None for name in query.by)  # '' stands for a missing provider or model
        add(groups, (key, row[0]), row, len(keys), row[1] in NOT_MODEL_CALLS)


def _add_by_value(
    conn: sqlite3.Connection,
    query: Query,
    dimension: str,
    table: str,
    first: int | None,
    last: int | None,
    groups: Groups,
    in_sql: bool,
) -> None:
    """Add up a roll-up by value of one dimension over the days [first, last).

    ``table``: the daily roll-up keyed by model fields, its newest rows (`RECENT`, added up
    apart: it holds other events), or a folded one: by day (`DAY_TOTALS`) or month.

    The events without the dimension (the group ``None``, or a filter that allows ``None``)
    are in no value's row: they are the sums of the `ALL_EVENTS` rows over the same days and
    model fields less those of every value, which is exact (each event has at most one value
    per dimension, and every sum but latency is an integer).
    """
    allowed = query.where.get(dimension)
    wanted = None if allowed is None else [value for value in allowed if type(value) is str]
    missing = (allowed is None and dimension in query.by) or (allowed is not None and None in allowed)
    column = "r.month" if table == ROLLUPS[2] else "r.day"
    bounds, bound = within(column, first, last)
    clauses = ["v.name = ?", *bounds]
    params: list[object] = [dimension, *bound]
    if not _field_clauses(query, "k.", clauses, params):
        return
    fields = tuple(name for name in EVENT_FIELDS if name in query.by)
    period = _period_sql(query.granularity, column)
    keys = [period, "v.value", *(f"k.{name}" for name in fields)]
    by_key = table not in (ROLLUPS[2], DAY_TOTALS)  # the folded roll-ups have no key: no model field
    # The keys' table only when a model field is grouped or filtered by (a join per row otherwise).
    field_keyed = by_key and (bool(fields) or any(name in query.where for name in EVENT_FIELDS))
    keyed = " JOIN meterline_keys AS k ON k.key_id = r.key_id" if field_keyed else ""
    # Every value's rows are read the way `way_in` finds cheapest; the values wanted, by name.
    every: Way = way_in(conn, table, dimension, first, last) if wanted is None or missing else "values"
    source, source_args = from_clause(every if wanted is None else "values", table, keyed, first, last)
    # The monthly roll-up is read row by row: it holds a row per value and month, about one
    # per group of a report by value or month, and SQLite's 19 sums a row cost more than
    # adding the few rows of one group here (by session at 1M events: 0.42 -> 0.24 s). So
    # are the folded days' rows for a report by day: each is a group of its own.
    grouped = table != ROLLUPS[2] and not (table == DAY_TOTALS and query.granularity == "day")
    sums = ", ".join(f"SUM(r.{name})" for name in BY_VALUE_SUMS)
    read = sums if grouped else ", ".join(f"r.{name}" for name in BY_VALUE_SUMS)
    rows = ["r.value_id", column, *(["r.key_id"] if by_key else [])]  # one roll-up row a group
    group_by = f" GROUP BY {', '.join(keys if in_sql else rows)}" if grouped else ""
    values = ""
    if wanted is not None:
        values = f" AND v.value IN ({', '.join('?' * len(wanted))})"
    monthly = query.granularity == "month"
    # The sums of every value, per model fields and period, to take from those of all events
    # for the group ``None``: added up while every value's rows are read, or read for it.
    covered: Groups = {}
    # Added up here, by column in C, whenever every value's rows are read: reading them again
    # grouped by period took SQLite 0.8 s of a report by user and day at 1M events (2.8 s); the
    # rows' sums are the groups' own tuples, so keeping them costs a list of references.
    every_value = missing and wanted is None
    parts: dict[tuple[tuple[Any, ...], int | None], list[tuple[Any, ...]]] = {}  # summed by column in C
    if wanted != []:
        sql = f"SELECT {', '.join(keys)}, {read}{source} WHERE {' AND '.join(clauses)}{values}{group_by}"
        width = len(keys)
        at = [1 if name == dimension else 2 + fields.index(name) for name in query.by]
        for row in conn.execute(sql, [*source_args, *params, *(wanted or ())]):
            key = (row[1],) if at == [1] else tuple(row[i] for i in at)
            joined = _joined(row, width)
            add(groups, (key, row[0]), joined, 0, False)
            if every_value:
                start = month_of(row[0]) if monthly and row[0] is not None else row[0]
                parts.setdefault((tuple(row[2:width]), start), []).append(joined)
    if not missing:
        return
    covered = {key: tuple(sum(column) for column in zip(*rows, strict=True)) for key, rows in parts.items()}

    def by_fields(source: str, where: list[str], args: list[object]) -> Groups:
        """The sums of ``source``'s rows per model fields and period (months, for a monthly report)."""
        sql = (
            f"SELECT {period}, {', '.join(['NULL', *keys[2:]])}, {sums}{source}"
            f" WHERE {' AND '.join(where)} GROUP BY {', '.join([period, *keys[2:]] if in_sql else rows)}"
        )
        found: Groups = {}
        for row in conn.execute(sql, args):
            start = month_of(row[0]) if monthly and row[0] is not None else row[0]
            add(found, (tuple(row[2 : 2 + len(fields)]), start), _joined(row, 2 + len(fields)), 0, False)
        return found

    if not every_value:  # every value of the dimension
        source, source_args = from_clause(every, table, keyed, first, last)
        covered = by_fields(source, clauses, [*source_args, *params])
    everything = by_fields(
        f" FROM {table} AS r{keyed}", ["r.value_id = ?", *clauses[1:]], [ALL_EVENTS, *params[1:]]
    )
    for (key, when), acc in everything.items():
        done = covered.get((key, when), [0] * WIDTH)
        rest = [total - part for total, part in zip(acc, done, strict=True)]
        if any(value < 0 for value in rest[:SUM_LATENCY]):
            raise LedgerError(
                f"the roll-ups disagree for {dict(zip(fields, key, strict=True))}: the rows by"
                f" {dimension!r} add up to more than all events ({rest}); the file was changed by hand"
            )
        if rest[EVENTS]:
            named = dict[str, Any](zip(fields, key, strict=True))
            named[dimension] = None
            add(groups, (tuple(named[name] for name in query.by), when), rest, 0, False)


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
    clauses, params = within("e.time_ns", since, until, _NS)
    if not _field_clauses(query, "k.", clauses, params):
        return
    if not _dimension_clauses(conn, query, clauses, params):
        return
    keys = [
        _period_sql(query.granularity, f"(e.time_ns / {HOUR * _NS} * {HOUR})"),
        "k.operation",
        "e.dims",
        *(f"k.{name}" for name in EVENT_FIELDS[1:]),
    ]
    # Grouped by key only when the report names a model field; else by model call or not
    # (a tool's usage is informational), which makes fewer, larger groups.
    named = query.names_fields
    calls = f"k.operation IN ({NOT_MODEL_CALLS_SQL})"
    group = ["e.dims", "e.key_id" if named else calls, "1"] if in_sql else ["e.rowid"]
    sql = (
        f"SELECT {', '.join(keys)}, {', '.join(EVENT_SUMS)}"  # noqa: S608 - constants only
        " FROM meterline_events AS e JOIN meterline_keys AS k ON k.key_id = e.key_id"
        f"{' WHERE ' + ' AND '.join(clauses) if clauses else ''} GROUP BY {', '.join(group)}"
    )
    wanted = query.dimensions  # those of ``by`` first, in order, then those filtered
    filters = [
        (wanted.index(name), values) for name, values in query.where.items() if name not in EVENT_FIELDS
    ]
    fields_at: dict[str, int] = {name: keys.index(f"k.{name}") for name in EVENT_FIELDS}
    only_dims = not any(name in EVENT_FIELDS for name in query.by)
    decode = _decoder(conn, names, wanted)
    # Per distinct dims text: None when filtered out, else the values of the query's
    # dimensions (the whole key when it names no model field).
    decoded: dict[str, tuple[str | None, ...] | None] = {}
    width = len(keys)
    for row in conn.execute(sql, params):
        text = row[2]
        part = decoded.get(text, ())
        if part == ():
            part = decode(text)
            if not all(part[at] in values for at, values in filters):
                part = None
            decoded[text] = part
        if part is None:
            continue
        if only_dims:
            key = part[: len(query.by)]  # `Query.dimensions` starts with those of ``by``, in order
        else:
            at = iter(part)
            key = tuple(
                row[fields_at[name]] or None if name in EVENT_FIELDS else next(at) for name in query.by
            )
        add(groups, (key, row[0]), row, width, row[1] in NOT_MODEL_CALLS)


def _decoder(
    conn: sqlite3.Connection, names: Dictionaries, wanted: tuple[str, ...]
) -> Callable[[str], tuple[str | None, ...]]:
    """How to read the values of the ``wanted`` dimensions from a row's ``dims`` ids.

    Their values are read at once, if they are at most `_MAX_LOADED`, and each set's ids
    looked up among them: by user x agent over 7 of 1M product events, 35,992 sets were
    otherwise decoded whole, their values read set by set (a session's is new to each: 7,555
    queries, 0.31 s of the report's 1.0). Else (a dimension kept for years, of millions of
    values) each set is decoded whole through ``names``, which keeps the values it reads.
    """
    loaded: dict[int, tuple[int, str]] = {}  # value_id -> (its name's place in ``wanted``, value)
    for at, name in enumerate(wanted):
        rows = conn.execute(
            "SELECT value_id, value FROM meterline_dim_values WHERE name = ? LIMIT ?",
            (name, _MAX_LOADED + 1 - len(loaded)),
        ).fetchall()
        if len(loaded) + len(rows) > _MAX_LOADED:
            return lambda text: _whole(conn, names, wanted, text)
        loaded.update((value_id, (at, value)) for value_id, value in rows)
    width = len(wanted)

    def picked(text: str) -> tuple[str | None, ...]:
        values: list[str | None] = [None] * width
        for value_id in value_ids(text):
            found = loaded.get(value_id)  # None: a value of a dimension not wanted
            if found is not None:
                values[found[0]] = found[1]
        return tuple(values)

    return picked


def _whole(
    conn: sqlite3.Connection, names: Dictionaries, wanted: tuple[str, ...], text: str
) -> tuple[str | None, ...]:
    """The values of the ``wanted`` dimensions in a row's ``dims`` ids, the set decoded whole."""
    dims = names.dimensions(conn, text)
    return tuple(dims.get(name) for name in wanted)


def _dimension_clauses(
    conn: sqlite3.Connection, query: Query, clauses: list[str], params: list[object]
) -> bool:
    """Filters on dimensions, as SQL on each event's value ids; False when no event can match.

    An event's ``dims`` are the ids of its values, comma-separated: an event is kept when the
    id of an allowed value is among them. Without this, every event of the range was grouped
    by its dimension set and each set decoded, only for most of them to be filtered out here
    (by user for three of 200 orgs over 30 days of 1M product events: 3.0 s). Up to
    `_BY_TEXT` ids are looked for in the text (each costs as much again: the 3.3M events of
    30 days at 10M took 0.9 s for one, 1.9 s for three), more as the elements of the ids
    read as a JSON array (2.2-2.4 s whatever their number: 10.6 s by text for twenty). A
    filter that also allows ``None`` (the events without the dimension) keeps the events
    holding none of the dimension's other values (`_none_or_allowed`). A filter of more than
    `_MAX_PUSHED` values is left to the filter applied to every decoded set, which runs
    whatever SQLite kept.
    """
    for name, allowed in query.where.items():
        if name in EVENT_FIELDS:
            continue
        if None in allowed:
            _none_or_allowed(conn, name, allowed, clauses, params)
            continue
        wanted = [value for value in allowed if type(value) is str]  # dimension values are str
        if len(wanted) > _MAX_PUSHED:
            continue
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT value_id FROM meterline_dim_values"  # noqa: S608 - placeholders only
                f" WHERE name = ? AND value IN ({', '.join('?' * len(wanted))})",
                [name, *wanted],
            )
        ]
        if not ids:  # no event has any of the values
            return False
        if len(ids) <= _BY_TEXT:
            clauses.append(f"({' OR '.join([_HAS_ID] * len(ids))})")
            params.extend(f",{value_id}," for value_id in ids)
        else:
            clauses.append(_holds_any(ids))
            params.extend(ids)
    return True


def _none_or_allowed(
    conn: sqlite3.Connection, name: str, allowed: frozenset[object], clauses: list[str], params: list[object]
) -> None:
    """A filter allowing some values of dimension ``name`` or none: no event of its other values.

    When the dimension has at most `_MAX_PUSHED` values (an org, an agent, a tool: by user of
    one org or of none over 90 days of 1M product events took 4.9 s with every event
    grouped, 0.57 s so); else nothing (the filter on the groups does it all).
    """
    every = conn.execute(
        "SELECT value_id, value FROM meterline_dim_values WHERE name = ? LIMIT ?", (name, _MAX_PUSHED + 1)
    ).fetchall()
    if len(every) > _MAX_PUSHED:
        return
    others = [value_id for value_id, value in every if value not in allowed]
    if others:  # else every event is kept: each holds an allowed value or none
        clauses.append(f"NOT {_holds_any(others)}")
        params.extend(others)


def _holds_any(ids: Sequence[int]) -> str:
    """SQL: whether an event's value ids hold any of ``ids`` (bound after it, one by one)."""
    return f"EXISTS (SELECT 1 FROM {_IDS} AS j WHERE j.value IN ({', '.join('?' * len(ids))}))"  # noqa: S608


def way_in(conn: sqlite3.Connection, table: str, dimension: str, first: int | None, last: int | None) -> Way:
    """How to find the rows of every value of ``dimension`` in a roll-up by value, days [first, last).

    ``"values"``: each value of the dimension (by the index of the names), then its rows by
    the roll-up's primary key, value first; ``"range"``: the range's rows by the table's index
    of the period (the folded roll-ups; `RECENT`, keyed by day, always), then each row's value
    by its id; ``"events"``: the range's events by the time index, then the rows of their
    values by primary key (the keyed daily roll-up: an index of its day would cost about 12
    bytes an event). Reading a value by its name and looking its rows up costs about a
    quarter of reading a row or an event of the range and looking its value up (`_PROBES`),
    so the range is read when the dimension has more values than `_PROBES` times its rows or
    events, both counted up to a bound (`_FEW` values, then `_COUNTED` rows or events: a count
    reads about 30 ns an entry).
    """
    if table == RECENT:
        return "range"
    ((values,),) = conn.execute(_VALUES_OF, (dimension, _FEW + 1))
    if values <= _FEW:
        return "values"
    events = table == ROLLUPS[1]
    column, scale = ("e.time_ns", _NS) if events else ("month" if table == ROLLUPS[2] else "day", 1)
    bounds, args = within(column, first, last, scale)
    rows = f"SELECT 1 FROM {'meterline_events AS e' if events else table}{where_sql(bounds)} LIMIT ?"  # noqa: S608
    ((counted,),) = conn.execute(f"SELECT count(*) FROM ({rows})", [*args, _COUNTED])  # noqa: S608 - constants
    if counted >= _COUNTED:
        return "values"
    bound = _PROBES * counted
    ((values,),) = conn.execute(_VALUES_OF, (dimension, bound + 1))
    if values <= bound:
        return "values"
    return "events" if events else "range"


def from_clause(
    way: Way, table: str, keyed: str, first: int | None, last: int | None
) -> tuple[str, list[Any]]:
    """The ``FROM`` reading ``table`` (``r``) and its values (``v``) the way given, and its parameters.

    ``CROSS JOIN`` makes SQLite join in the order written.
    """
    if way == "range" or table == RECENT:
        values = "meterline_dim_values AS v ON v.value_id = r.value_id"
        return f" FROM {table} AS r CROSS JOIN {values}{keyed}", []
    if way == "events":
        bounds, args = within("e.time_ns", first, last, _NS)
        ids = f"(SELECT DISTINCT value FROM ({EVENT_VALUES}{where_sql(bounds)}))"  # noqa: S608 - constants only
        return (
            f" FROM {ids} AS ids CROSS JOIN meterline_dim_values AS v ON v.value_id = ids.value"
            f" CROSS JOIN {table} AS r ON r.value_id = v.value_id{keyed}",
            args,
        )
    return f" FROM meterline_dim_values AS v JOIN {table} AS r ON r.value_id = v.value_id{keyed}", []


def _joined(row: Sequence[Any], at: int) -> tuple[Any, ...]:
    """The `BY_VALUE_SUMS` of a row (from column ``at``) as `ROLLUP_SUMS`: the cost's two parts joined."""
    high = row[at + WIDTH]
    if not high:  # a cost under 2**32 pico-dollars in every roll-up row added up
        return tuple(row[at : at + WIDTH])
    pico = at + SUM_PICO
    return (*row[at:pico], row[pico] + (high << 32), *row[pico + 1 : at + WIDTH])


def _period_sql(granularity: Granularity | None, hour: str) -> str:
    """The period a row of ``hour`` (seconds, or a day) falls in: hour, day (months merged later), none."""
    if granularity is None:
        return "NULL"
    if granularity == "hour":
        return hour
    return f"({hour} - {hour} % {DAY})"


def _sums(in_sql: bool) -> str:
    return ", ".join(f"SUM({name})" if in_sql else name for name in ROLLUP_SUMS)
