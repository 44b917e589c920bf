"""The SQLite ledger: the embedded default, standard library only, one file in WAL mode.

One connection per `SQLiteLedger`, shared by the writer thread and readers under a lock.
Several ledgers (threads or processes) may open the same file: every write is one
``BEGIN IMMEDIATE`` transaction, so the check for already-stored ids and the inserts that
follow are atomic across connections, and a busy file is waited on up to ``timeout``.
The tables and their SQL are `meterline.ledger._sqlite_schema`'s; turning a batch of events
into rows and roll-up sums is `meterline.ledger._sqlite_rows`'s.
"""

from __future__ import annotations as _annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from meterline._dimensions import check_names, where_filters
from meterline._events import UsageEvent
from meterline._money import tidy
from meterline._storage import (
    check_timeout,
    sqlite_connect,
    sqlite_migrate,
    sqlite_schema_version,
    sqlite_transaction,
)
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import GRANULARITIES, Granularity, LedgerRow, LedgerStats
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
    dimensions_of,
    event_from_row,
    hour_of,
    pico_of,
    utc,
)
from meterline.ledger._sqlite_rows import bind_rows, drop_dims, rollup
from meterline.ledger._sqlite_schema import (
    ADD_KEY,
    COLUMNS,
    CORRECT_NODIMS,
    CORRECT_ROLLUP,
    EVENT_FIELDS,
    EVENTS,
    ID,
    KEY_ID,
    LAST_ROWID,
    MIGRATIONS,
    NEW_IDS,
    NOT_MODEL_CALLS,
    REPRICE_EVENT,
    ROLLUPS,
    SELECT_FOR_REPRICE,
    SUM_LATENCY,
    SUM_PICO,
    SUM_SAVED,
    SUM_USAGE,
    UNMEASURED,
    UNPRICED,
    UPSERT_NODIMS,
    UPSERT_ROLLUP,
    WIDTH,
    insert_events,
    key_text,
)

__all__ = ["SQLiteLedger"]

_MAX_PARAMS: Final = 500
"""Ids per ``IN (...)`` query (well under SQLite's smallest limit of 999 parameters)."""
_PAGE: Final = 1000
"""Events per page of `SQLiteLedger.events`."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY: Final = 86_400
_WAL_CHECKPOINT_PAGES: Final = 4000
"""Pages of WAL after which a commit checkpoints (SQLite's default: 1000)."""
_MAX_CACHED_KEYS: Final = 100_000
"""Key ids a ledger remembers (past it, it starts again: they are looked up on the next write)."""
_MAX_ROWS_PER_INSERT: Final = 1024
"""Rows per ``INSERT`` statement at most (a power of two; fewer when SQLite allows fewer parameters)."""


class SQLiteLedger:
    """A ledger in one SQLite file (WAL), created readable by its owner only.

    Opening applies forward migrations in one transaction and refuses a store written by a
    newer meterline. Thread-safe: one connection, shared under a lock.

    Args:
        path: The database file (created, mode 0600, when missing).
        timeout: Longest wait for the file while another connection writes it, in seconds
            (default 5): past it the write raises `LedgerError` and the writer spools the batch.
        durable: ``True``: every commit is fsynced before it returns (``synchronous=FULL``), so
            a committed event survives an OS crash or a power loss. ``False`` (default):
            ``synchronous=NORMAL``: a commit survives the process's crash, but the last
            commits before an OS crash or a power loss may be lost (the WAL is synced at
            checkpoints only). A meter with ``durability="sync"`` opens its ledger durable.

    Raises:
        LedgerError: when the file cannot be created or opened, is not a database, or its
            schema is newer than this meterline knows.
    """

    url: str
    """``sqlite:///`` followed by the file's absolute path."""

    def __init__(self, path: str | Path, *, timeout: float = 5.0, durable: bool = False) -> None:
        seconds = check_timeout(timeout)
        if type(durable) is not bool:
            raise ConfigurationError(f"durable={durable!r}: expected True or False")
        self.durable = durable
        """Whether each commit is fsynced (see the class docstring)."""
        self.path = Path(path).expanduser().absolute()
        """The database file."""
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._rows_per_insert = _MAX_ROWS_PER_INSERT
        self._key_ids: dict[tuple[Any, ...], int] = {}
        """Key fields -> their ``key_id`` in ``meterline_event_keys`` (those committed)."""
        self._key_fields: dict[int, tuple[Any, ...]] = {}
        """The inverse of ``_key_ids``."""
        self._conn: sqlite3.Connection | None = sqlite_connect(
            self.path, seconds, LedgerError, "ledger", self._prepare
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Checkpoint (copy the WAL into the file, and sync it) every ~16 MB of WAL at the
        # default 4 KiB pages rather than SQLite's ~4 MB: fewer syncs for a steady writer.
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        if self.durable:
            conn.execute("PRAGMA synchronous=FULL")  # in WAL mode: the WAL is fsynced at each commit
        sqlite_migrate(conn, meta="meterline_meta", migrations=MIGRATIONS, error=LedgerError, url=self.url)
        params = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        while self._rows_per_insert > 1 and self._rows_per_insert * len(EVENT_COLUMNS) > params:
            self._rows_per_insert //= 2

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, what: str, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """Hold the lock and one transaction; a driver error rolls it back and becomes a `LedgerError`."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise LedgerError(f"{what}: the ledger {self.url} is closed")
            with sqlite_transaction(conn, LedgerError, what, self.url, begin):
                yield conn

    # -- writing ------------------------------------------------------------------------

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once, and add the new ones to the roll-ups.

        Returns:
            How many events were new (an id already stored, or repeated in ``events``, counts once).

        Raises:
            LedgerError: the store failed; nothing of the batch was written.
        """
        count = len(events)
        if not count:
            return 0
        if len(self._key_ids) >= _MAX_CACHED_KEYS:  # start again (before a batch, never inside one)
            self._key_ids.clear()
            self._key_fields.clear()
        added: list[tuple[Any, ...]] = []
        try:
            with self._transaction("write") as conn:
                values = bind_rows(events, self._key_ids, self._key_resolver(conn, added))
                inserted = self._insert(conn, values, count)
        except BaseException:
            self._forget_keys(added)  # they were rolled back with the rest
            raise
        return inserted

    def _key_resolver(
        self, conn: sqlite3.Connection, added: list[tuple[Any, ...]]
    ) -> Callable[[tuple[Any, ...]], int]:
        """A function giving the ``key_id`` of key fields, storing new keys (in the open transaction)."""
        known = self._key_ids

        def key_id(fields: tuple[Any, ...]) -> int:
            found = known.get(fields)
            if found is not None:
                return found
            text = key_text(fields)
            conn.execute(ADD_KEY, (text, *fields))
            ((new,),) = conn.execute(KEY_ID, (text,))
            known[fields] = new
            self._key_fields[new] = fields
            added.append(fields)
            return int(new)

        return key_id

    def _forget_keys(self, added: Sequence[tuple[Any, ...]]) -> None:
        for fields in added:
            key_id = self._key_ids.pop(fields, None)
            if key_id is not None:
                self._key_fields.pop(key_id, None)

    def _insert(self, conn: sqlite3.Connection, values: list[Any], count: int) -> int:
        """Insert the rows of ``values`` (``count`` events) and add the new ones to the roll-ups."""
        ((last,),) = conn.execute(LAST_ROWID)
        inserted = 0
        size = self._rows_per_insert
        at = 0
        while at < count:
            while at + size > count:  # the rest in halves: few distinct statements to cache
                size //= 2
            chunk = values[at * WIDTH : (at + size) * WIDTH]
            inserted += conn.execute(insert_events(size), chunk).rowcount
            at += size
        if inserted != count:
            # Some ids were stored already, or repeated in the batch: the rows inserted are
            # those past the largest rowid before the insert (the write lock is held, and
            # SQLite gives a new row the largest rowid plus one; rowids are only drawn at
            # random once 2**63 - 1 is taken, which the count check turns into a failure).
            new_ids = {stored for (stored,) in conn.execute(NEW_IDS, (last,))}
            if len(new_ids) != inserted:
                raise LedgerError(
                    f"write failed on {self.url}: {inserted} events inserted but"
                    f" {len(new_ids)} found past rowid {last}; nothing of the batch was written"
                )
            kept: list[Any] = []
            for start in range(0, len(values), WIDTH):
                if values[start + ID] in new_ids:
                    new_ids.discard(values[start + ID])  # the first of repeated ids is stored
                    kept += values[start : start + WIDTH]
            values = kept
        if values:
            sums = rollup(values, self._key_fields)
            conn.executemany(UPSERT_ROLLUP, [(*key, *total) for key, total in sums.items()])
            conn.executemany(UPSERT_NODIMS, [(*key, *total) for key, total in drop_dims(sums).items()])
        return inserted

    def prune(self, before: datetime) -> int:
        """Delete the events older than ``before``, and the roll-up rows of the whole hours before it.

        Roll-ups are pruned by whole hours only: the hour that contains ``before`` keeps its
        roll-up rows (which still count the events of that hour that were deleted) until a
        later prune passes its end. Prune on the hour to keep both in step.

        Returns:
            How many events were deleted.
        """
        before_ns = _ns(before)
        with self._transaction("prune") as conn:
            deleted = conn.execute("DELETE FROM meterline_events WHERE time_ns < ?", (before_ns,)).rowcount
            conn.execute("DELETE FROM meterline_rollup_hour WHERE hour < ?", (hour_of(before_ns),))
            conn.execute("DELETE FROM meterline_rollup_hour_nodims WHERE hour < ?", (hour_of(before_ns),))
        return deleted

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """Set new (id, cost, price_version) on stored events, keeping the previous ones for audit.

        Unknown ids, and events whose cost and price version are already the given ones, are
        left alone. The roll-ups are corrected by the difference (and the unpriced count when
        an event gains or loses its price).

        Returns:
            How many events changed.
        """
        wanted: dict[str, tuple[Decimal | None, str | None]] = {}
        for stored_id, cost, price_version in events:
            wanted[stored_id] = (cost, price_version)
        if not wanted:
            return 0
        added: list[tuple[Any, ...]] = []
        try:
            updated = self._reprice(wanted, added)
        except BaseException:
            self._forget_keys(added)  # they were rolled back with the rest
            raise
        return updated

    def _reprice(
        self, wanted: Mapping[str, tuple[Decimal | None, str | None]], added: list[tuple[Any, ...]]
    ) -> int:
        with self._transaction("reprice") as conn:
            repriced: list[tuple[str | None, int | None, tuple[Any, ...], str]] = []
            deltas: dict[tuple[Any, ...], list[int]] = {}
            ids = list(wanted)
            for start in range(0, len(ids), _MAX_PARAMS):
                chunk = ids[start : start + _MAX_PARAMS]
                found = conn.execute(SELECT_FOR_REPRICE + _marks(len(chunk)), chunk)
                for stored_id, old_cost, old_pico, old_version, measured, *key in found:
                    cost, price_version = wanted[stored_id]
                    old = None if old_cost is None else Decimal(old_cost)
                    if old == cost and old_version == price_version:
                        continue
                    pico = pico_of(cost)
                    hour, operation, status, provider, model, dims, request_model = key
                    fields = (operation, status, provider, model, request_model, price_version, dims)
                    repriced.append((None if cost is None else str(cost), pico, fields, stored_id))
                    delta = deltas.setdefault(
                        (hour, operation, status, provider or "", model or "", dims), [0, 0]
                    )
                    delta[0] += (pico or 0) - (old_pico or 0)
                    if measured and operation not in NOT_MODEL_CALLS:
                        delta[1] += (cost is None) - (old_cost is None)
            key_id = self._key_resolver(conn, added)
            updates = [(cost, pico, key_id(fields), stored_id) for cost, pico, fields, stored_id in repriced]
            conn.executemany(REPRICE_EVENT, updates)
            conn.executemany(CORRECT_ROLLUP, [(*delta, *key) for key, delta in deltas.items()])
            conn.executemany(CORRECT_NODIMS, [(*delta, *key) for key, delta in drop_dims(deltas).items()])
        return len(updates)

    # -- reading ------------------------------------------------------------------------

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity | None = None,
    ) -> list[LedgerRow]:
        """Add up the stored events from the hourly roll-ups (never by scanning events).

        A row's ``usage`` and ``cost`` are those of its model calls, as in `meterline.Totals`
        (a tool's reported usage is informational); ``events``, ``latency_ms`` and
        ``tokens_saved`` count every event of the group.

        Args:
            by: Names to group by: ``operation``, ``status``, ``provider``, ``model`` or a
                dimension (``user``, ``agent``, ``tool``…).
            where: Keep only events whose value equals the given one (or is in it, for a set,
                list or tuple); ``None`` matches events without the dimension.
            since: Keep roll-up hours from this one (inclusive, rounded down to the hour).
            until: Keep roll-up hours before this one (exclusive, rounded down to the hour).
            granularity: Also group by the UTC hour, day or month (the row's ``period``).

        Returns:
            One `LedgerRow` per group, by cost (highest first), then events, then key.

        Raises:
            ConfigurationError: on a name that is not a lower-case identifier, or a bad
                granularity.
            LedgerError: the store failed.
        """
        group = check_names(by, "by")
        allowed = where_filters(where)
        if granularity is not None and granularity not in GRANULARITIES:
            raise ConfigurationError(f"granularity={granularity!r}: expected one of {GRANULARITIES} or None")
        clauses: list[str] = []
        params: list[object] = []
        if since is not None:
            clauses.append("hour >= ?")
            params.append(hour_of(_ns(since)))
        if until is not None:
            clauses.append("hour < ?")
            params.append(hour_of(_ns(until)))
        for name in EVENT_FIELDS:
            if name in allowed:
                # Columns hold str only ('' for a missing provider or model): other values never match.
                values = [value for value in allowed[name] if type(value) is str and value]
                if None in allowed[name]:
                    values.append("")
                if not values:
                    return []
                clauses.append(name + " IN " + _marks(len(values)))
                params.extend(values)
        dim_names = [name for name in (*group, *allowed) if name not in EVENT_FIELDS]
        try:
            return self._read_totals(group, allowed, clauses, params, granularity, bool(dim_names), True)
        except LedgerError as exc:
            if "overflow" not in str(exc.__cause__):
                raise
            # A group's cost passed 2**63 pico-dollars (9.2 million USD): add up in Python instead.
            return self._read_totals(group, allowed, clauses, params, granularity, bool(dim_names), False)

    def _read_totals(
        self,
        group: tuple[str, ...],
        allowed: Mapping[str, frozenset[object]],
        clauses: list[str],
        params: list[object],
        granularity: Granularity | None,
        with_dims: bool,
        in_sql: bool,
    ) -> list[LedgerRow]:
        period = {None: "NULL", "hour": "hour"}.get(granularity, f"hour - hour % {_DAY}")
        # Only the columns the report needs: fewer, larger groups for SQL to add up.
        keys = [period, "operation"]
        keys += [name for name in EVENT_FIELDS[1:] if name in group or name in allowed]
        if with_dims:
            keys.append("dimensions")
        table = ROLLUPS[0] if with_dims else ROLLUPS[1]
        sums = [f"SUM({name})" if in_sql else name for name in ROLLUP_SUMS]
        sql = f"SELECT {', '.join(keys + sums)} FROM {table}"  # noqa: S608 - constants only
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if in_sql:
            sql += f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 1))}"
        fields: dict[str, int] = {name: keys.index(name) for name in EVENT_FIELDS if name in keys}
        field_at = [(fields[name], i) for i, name in enumerate(group) if name in fields]
        dim_names = [name for name in group if name not in fields]
        dim_filters = [(name, values) for name, values in allowed.items() if name not in EVENT_FIELDS]
        dims_at = len(keys) - 1
        # Per distinct dimensions text: None when filtered out, else the values grouped by.
        by_dims: dict[str, tuple[str | None, ...] | None] = {}
        groups: dict[tuple[tuple[str | None, ...], int | None], list[Any]] = {}
        width = len(ROLLUP_SUMS)
        first_sum = len(keys)
        with self._transaction("totals", "BEGIN") as conn:
            for row in conn.execute(sql, params):
                if with_dims:
                    text = row[dims_at]
                    if text in by_dims:
                        part = by_dims[text]
                    else:
                        dims = dimensions_of(text)
                        keep = all(dims.get(name) in values for name, values in dim_filters)
                        part = by_dims[text] = tuple(dims.get(name) for name in dim_names) if keep else None
                    if part is None:
                        continue
                    if field_at:
                        values = list(part)
                        for at, i in field_at:
                            values.insert(i, row[at] or None)  # '' stands for a missing provider or model
                        key = tuple(values)
                    else:
                        key = part
                else:
                    key = tuple(row[fields[name]] or None for name in group)
                acc = groups.get((key, row[0]))
                if acc is None:
                    acc = groups[key, row[0]] = [0] * width
                if row[1] in NOT_MODEL_CALLS:  # tool usage is informational, never in usage or cost
                    acc[EVENTS] += row[first_sum + EVENTS]
                    acc[SUM_LATENCY] += row[first_sum + SUM_LATENCY]
                    acc[SUM_SAVED] += row[first_sum + SUM_SAVED]
                else:
                    for i in range(width):
                        acc[i] += row[first_sum + i]
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
                for i in range(width):
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

    def event_rows(
        self, *, since: datetime | None = None, until: datetime | None = None, page: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The stored events as raw rows (`EVENT_COLUMNS` order), a page at a time, in id order.

        For bulk readers (the Parquet export): no `UsageEvent` per row; ``dimensions`` and
        ``links`` are JSON text, ``cost`` decimal text or ``None``. Raises `LedgerError`.
        """
        clauses, bounds = _after_id_within(since, until)
        sql = (
            f"SELECT {COLUMNS} FROM meterline_event_rows WHERE {' AND '.join(clauses)}"  # noqa: S608 - constants only
            " ORDER BY id LIMIT ?"
        )
        cursor = ""
        while True:
            with self._transaction("events", "BEGIN") as conn:
                rows = conn.execute(sql, (cursor, *bounds, page)).fetchall()
            if rows:
                yield rows
            if len(rows) < page:
                return
            cursor = rows[-1][ID]

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """Stream the stored events in id (time) order, a page at a time (constant memory).

        Args:
            since: Keep events from this time (inclusive, to the nanosecond).
            until: Keep events before this time (exclusive).
            after_id: Resume after this id (the last one a consumer handled).

        Yields:
            The stored events, rebuilt as `UsageEvent`.

        Raises:
            LedgerError: the store failed (or the ledger was closed while streaming).
        """
        clauses, bounds = _after_id_within(since, until)
        sql = (
            f"SELECT {COLUMNS} FROM meterline_event_rows WHERE {' AND '.join(clauses)}"  # noqa: S608 - constants only
            f" ORDER BY id LIMIT {_PAGE}"
        )
        cursor = "" if after_id is None else after_id
        while True:
            with self._transaction("events", "BEGIN") as conn:
                page = conn.execute(sql, (cursor, *bounds)).fetchall()
            for row in page:
                yield event_from_row(dict(zip(EVENT_COLUMNS, row, strict=True)))
            if len(page) < _PAGE:
                return
            cursor = page[-1][ID]

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored.

        Raises:
            LedgerError: the store failed.
        """
        with self._transaction("stats", "BEGIN") as conn:
            version = sqlite_schema_version(conn, "meterline_meta", LedgerError)
            count, first, last = conn.execute(
                "SELECT COUNT(*), MIN(time_ns), MAX(time_ns) FROM meterline_events"
            ).fetchone()
            (rollup_rows,) = conn.execute("SELECT COUNT(*) FROM meterline_rollup_hour").fetchone()
        return LedgerStats(
            url=self.url,
            schema_version=version,
            events=count,
            first_time=None if first is None else _time(first),
            last_time=None if last is None else _time(last),
            rollup_rows=rollup_rows,
        )

    def close(self) -> None:
        """Close the connection. Idempotent; every other method then raises `LedgerError`."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


def _marks(count: int) -> str:
    """``(?, ?, …)`` with ``count`` parameters."""
    return f"({', '.join('?' * count)})"


def _ns(moment: datetime) -> int:
    """``moment`` (naive taken as UTC) in nanoseconds since the Unix epoch."""
    return (utc(moment) - _EPOCH) // timedelta(microseconds=1) * 1000


def _time(time_ns: int) -> datetime:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)


def _period(start: int, granularity: Granularity | None) -> datetime:
    """The UTC start of the hour or day ``start`` (seconds), or of its month."""
    moment = datetime.fromtimestamp(start, tz=UTC)
    return moment.replace(day=1) if granularity == "month" else moment


def _after_id_within(since: datetime | None, until: datetime | None) -> tuple[list[str], list[object]]:
    """WHERE clauses (constants) and their bounds: after a cursor id, within ``since``/``until``."""
    clauses = ["id > ?"]
    bounds: list[object] = []
    if since is not None:
        clauses.append("time_ns >= ?")
        bounds.append(_ns(since))
    if until is not None:
        clauses.append("time_ns < ?")
        bounds.append(_ns(until))
    return clauses, bounds
