"""The SQLite ledger: the embedded default, standard library only, one file in WAL mode.

One connection per `SQLiteLedger`, shared by the writer thread and readers under a lock.
Several ledgers (threads or processes) may open the same file: every write is one
``BEGIN IMMEDIATE`` transaction, so the check for already-stored ids and the inserts that
follow are atomic across connections, and a busy file is waited on up to ``timeout``.
The tables, their SQL and the roll-ups' upkeep are `meterline.ledger._sqlite_schema`'s, and
their forward migrations `meterline.ledger._sqlite_migrations`'; binding a batch of events as
rows is `meterline.ledger._sqlite_rows`'s, with the ids of `meterline.ledger._sqlite_keys`;
choosing what answers a report is `meterline.ledger._sqlite_reports`'s.
"""

from __future__ import annotations as _annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from meterline._events import UsageEvent
from meterline._storage import (
    check_timeout,
    sqlite_connect,
    sqlite_migrate,
    sqlite_schema_version,
    sqlite_transaction,
)
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import Granularity, LedgerRow, LedgerStats
from meterline.ledger._groups import DAY, Query, accumulate, month_of
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    event_from_row,
    hour_of,
    json_pages,
    nanoseconds,
    pico_of,
)
from meterline.ledger._sqlite_arrow import event_batches, fast_reader_installed, json_texts
from meterline.ledger._sqlite_folds import (
    CORRECT_DAY_TOTAL,
    CORRECT_MONTH,
    DAY_TOTALS,
    ROLL_UP_FOLDED,
    TAKE_OUT_FOLDED,
    UNFOLD_MONTHS,
    fold_days,
)
from meterline.ledger._sqlite_keys import Dictionaries, prune_values, value_ids
from meterline.ledger._sqlite_migrations import MIGRATIONS
from meterline.ledger._sqlite_reports import read_totals
from meterline.ledger._sqlite_rows import bind_rows
from meterline.ledger._sqlite_schema import (
    ALL_EVENTS,
    CORRECT_DIM,
    CORRECT_NODIMS,
    COUNT_NEW,
    EVENT_ROWS,
    ID,
    LAST_ROWID,
    LOW_BITS,
    NOT_MODEL_CALLS,
    RECENT,
    RECENT_ROWS,
    REPRICE_EVENT,
    ROLL_UP_DIMS,
    ROLL_UP_NODIMS,
    ROLLUPS,
    SELECT_FOR_REPRICE,
    TAKE_OUT_DAYS,
    TAKE_OUT_NODIMS,
    TIME_AT,
    WIDTH,
    after_id_within,
    folded_until,
    insert_events,
    merge_recent,
    stored_id,
)

__all__ = ["SQLiteLedger"]

_MAX_PARAMS: Final = 500
"""Ids per ``IN (...)`` query (well under SQLite's smallest limit of 999 parameters)."""
_PAGE: Final = 1000
"""Events per page of `SQLiteLedger.events`."""
_DIMENSIONS: Final = EVENT_COLUMNS.index("dimensions")
_NS: Final = 1_000_000_000
_WAL_CHECKPOINT_PAGES: Final = 4000
"""Pages of WAL after which a commit checkpoints (SQLite's default: 1000)."""
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
        self._names = Dictionaries()
        """The ids of keys and dimension values, cached (used under the lock)."""
        self._sorts_in_memory = False
        """Whether the connection sorts in memory now (`_sort_in_memory`)."""
        self._conn: sqlite3.Connection | None = sqlite_connect(
            self.path, seconds, LedgerError, "ledger", self._prepare
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Checkpoint (copy the WAL into the file, and sync it) every ~16 MB of WAL at the
        # default 4 KiB pages rather than SQLite's ~4 MB: fewer syncs for a steady writer.
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        conn.execute("PRAGMA temp_store=FILE")  # see `_sort_in_memory`
        self._sorts_in_memory = False
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
    def _transaction(
        self, what: str, begin: str = "BEGIN IMMEDIATE", *, names: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one transaction; a driver error rolls it back and becomes a `LedgerError`.

        ``names``: the transaction may store new keys and dimension values, which the
        ledger's `Dictionaries` keep once it commits and forget if it rolls back.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                raise LedgerError(f"{what}: the ledger {self.url} is closed")
            self._sort_in_memory(conn, what == "write")
            try:
                with sqlite_transaction(conn, LedgerError, what, self.url, begin):
                    self._names.sync(conn)  # inside the transaction: no prune can come between
                    if names:
                        self._names.begin(conn)
                    yield conn
            except BaseException:
                if names:
                    self._names.rollback()
                raise
            if names:
                self._names.commit()

    def _sort_in_memory(self, conn: sqlite3.Connection, in_memory: bool) -> None:
        """Where SQLite sorts what a GROUP BY cannot take in index order: memory, or temporary files.

        A write's roll-ups group a batch (a few thousand rows): in memory, the write of
        product-shaped events is 10 % faster (`bench/bench_ledger_scale.py`'s workload, 100,000
        events into 100,000; two runs each). Everything else sorts through temporary files,
        past SQLite's page cache, so that its memory stays bounded however large the ledger:
        in memory, a report by user and day at 1M events grew the process by 124 MB (its
        600,000 daily rows sorted), by user x agent over the whole ledger by 245 MB; through
        files, 75 and 135 MB (what remains is the report's own rows), in the same time. Set
        between transactions (SQLite refuses to change it inside one), when it changes.
        """
        if self._sorts_in_memory is not in_memory:
            conn.execute("PRAGMA temp_store=MEMORY" if in_memory else "PRAGMA temp_store=FILE")
            self._sorts_in_memory = in_memory

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
        names = self._names
        with self._transaction("write", names=True) as conn:
            values = bind_rows(events, names.key_ids, names.key_id, names.dims, names.dims_ids)
            return self._insert(conn, values, count)

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
        if inserted:
            # The rows inserted are those past the largest rowid before the insert (the write
            # lock is held, and SQLite gives a new row the largest rowid plus one; rowids are
            # only drawn at random once 2**63 - 1 is taken, which the count check turns into
            # a failure). Ids already stored, or repeated in the batch, were skipped.
            ((found,),) = conn.execute(COUNT_NEW, (last,))
            if found != inserted:
                raise LedgerError(
                    f"write failed on {self.url}: {inserted} events inserted but"
                    f" {found} found past rowid {last}; nothing of the batch was written"
                )
            conn.execute(ROLL_UP_NODIMS, (last,))
            for statement in ROLL_UP_DIMS:
                conn.execute(statement, (last,))
            ((recent,),) = conn.execute(f"SELECT COUNT(*) FROM {RECENT}")  # noqa: S608 - constants only
            if recent > RECENT_ROWS:
                merge_recent(conn)
            times = values[TIME_AT::WIDTH]
            folded = folded_until(conn)
            if min(times) < folded * _NS:  # events of days already folded
                for statement in ROLL_UP_FOLDED:
                    conn.execute(statement, (last, folded * _NS))
            fold_days(conn, max(times))
        return inserted

    def prune(self, before: datetime) -> int:
        """Delete the events older than ``before``, and take them out of every roll-up.

        The roll-ups then hold exactly the events kept, whatever the time of ``before``: the
        deleted events of the hour, day and month that contain it are subtracted from their
        rows, and the rows of earlier periods are deleted.

        Returns:
            How many events were deleted.
        """
        before_ns = nanoseconds(before)
        hour = hour_of(before_ns)
        day = hour - hour % DAY
        with self._transaction("prune") as conn:
            merge_recent(conn)
            folded = folded_until(conn)
            conn.execute(UNFOLD_MONTHS, (min(day, folded),))  # the whole days before ``day``
            conn.execute(TAKE_OUT_NODIMS, (hour * _NS, before_ns))
            conn.execute(TAKE_OUT_DAYS, (day * _NS, before_ns))
            if day < folded:
                for statement in TAKE_OUT_FOLDED:
                    conn.execute(statement, (day * _NS, before_ns))
            deleted = conn.execute("DELETE FROM meterline_events WHERE time_ns < ?", (before_ns,)).rowcount
            conn.execute(f"DELETE FROM {ROLLUPS[0]} WHERE hour < ? OR events = 0", (hour,))  # noqa: S608
            conn.execute(f"DELETE FROM {ROLLUPS[1]} WHERE day < ? OR events = 0", (day,))  # noqa: S608
            conn.execute(f"DELETE FROM {ROLLUPS[2]} WHERE events = 0")  # noqa: S608 - constants only
            conn.execute(f"DELETE FROM {DAY_TOTALS} WHERE day < ? OR events = 0", (day,))  # noqa: S608
            prune_values(conn)
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
        for event_id, cost, price_version in events:
            wanted[event_id] = (cost, price_version)
        if not wanted:
            return 0
        with self._transaction("reprice", names=True) as conn:
            return self._reprice(conn, wanted)

    def _reprice(
        self, conn: sqlite3.Connection, wanted: Mapping[str, tuple[Decimal | None, str | None]]
    ) -> int:
        names = self._names
        repriced: list[tuple[str | None, str | None, int | None, int, str | bytes]] = []
        nodims: dict[tuple[Any, ...], list[int]] = {}
        by_value: dict[tuple[Any, ...], list[int]] = {}
        by_month: dict[tuple[Any, ...], list[int]] = {}
        by_day: dict[tuple[Any, ...], list[int]] = {}
        merge_recent(conn)  # the daily roll-up's rows are corrected where they are
        folded = folded_until(conn)
        ids = [stored_id(event_id) for event_id in wanted]
        for start in range(0, len(ids), _MAX_PARAMS):
            chunk = ids[start : start + _MAX_PARAMS]
            found = conn.execute(SELECT_FOR_REPRICE + _marks(len(chunk)), chunk).fetchall()
            names.load_keys(conn, [row[6] for row in found])
            for text_id, old_cost, old_pico, old_version, measured, time_ns, key_id, dims in found:
                cost, price_version = wanted[text_id]
                old = None if old_cost is None else Decimal(old_cost)
                if old == cost and old_version == price_version:
                    continue
                pico = pico_of(cost)
                operation, status, provider, model, request_model, _ = names.key_fields[key_id]
                new_key = names.key_id((operation, status, provider, model, request_model, price_version))
                new_cost = None if cost is None else str(cost)
                repriced.append((old_cost, new_cost, pico, new_key, stored_id(text_id)))
                model_call = operation not in NOT_MODEL_CALLS
                unpriced = (cost is None) - (old_cost is None) if measured and model_call else 0
                new, old_value = pico or 0, old_pico or 0
                hour = hour_of(time_ns)
                accumulate(
                    nodims,
                    (hour, operation, status, provider or "", model or ""),
                    (new - old_value, unpriced),
                )
                if model_call:  # a tool's cost is not kept by value
                    # The roll-ups by value keep a cost's low 32 bits and the rest apart (BY_VALUE_SUMS).
                    split = (
                        (new & LOW_BITS) - (old_value & LOW_BITS),
                        (new >> 32) - (old_value >> 32),
                        unpriced,
                    )
                    day, rollup_id = hour - hour % DAY, names.rollup_ids[key_id]
                    for value_id in (ALL_EVENTS, *value_ids(dims)):
                        accumulate(by_value, (value_id, day, rollup_id), split)
                        if day < folded:
                            accumulate(by_month, (value_id, month_of(day)), split)
                            accumulate(by_day, (value_id, day), split)
        conn.executemany(REPRICE_EVENT, repriced)
        conn.executemany(CORRECT_NODIMS, [(*delta, *key) for key, delta in nodims.items()])
        conn.executemany(CORRECT_DIM, [(*delta, *key) for key, delta in sorted(by_value.items())])
        conn.executemany(CORRECT_MONTH, [(*delta, *key) for key, delta in sorted(by_month.items())])
        conn.executemany(CORRECT_DAY_TOTAL, [(*delta, *key) for key, delta in sorted(by_day.items())])
        return len(repriced)

    # -- reading ------------------------------------------------------------------------

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
        """Add up the stored events inside SQLite, from the roll-ups wherever they can answer.

        Without a dimension, the hourly roll-up; by one dimension, the roll-ups by value
        (months, days, and the events of partial days); otherwise the events of the range,
        through their time index. Memory grows with the rows returned, not with the events.
        A row's ``usage`` and ``cost`` are those of its model calls, as in `meterline.Totals`
        (a tool's reported usage is informational); ``events``, ``latency_ms`` and
        ``tokens_saved`` count every event of the group.

        Args:
            by: Names to group by: ``operation``, ``status``, ``provider``, ``model`` or a
                dimension (``user``, ``agent``, ``tool``…).
            where: Keep only events whose value equals the given one (or is in it, for a set,
                list or tuple); ``None`` matches events without the dimension. A provider is
                matched by its canonical name (``"gemini"`` finds ``"gcp.gemini"``).
            since: Keep roll-up hours from this one (inclusive, rounded down to the hour).
            until: Keep roll-up hours before this one (exclusive, rounded down to the hour).
            granularity: Also group by the UTC hour, day or month (the row's ``period``).
            limit: Return only the first rows by cost (a top ``limit``); ``None``: all.

        Returns:
            One `LedgerRow` per group, by cost (highest first), then events, then key.

        Raises:
            ConfigurationError: on a name that is not a lower-case identifier, or a bad
                granularity.
            LedgerError: the store failed.
        """
        query = Query.checked(by, where, since, until, granularity, limit)
        with self._transaction("totals", "BEGIN") as conn:
            return read_totals(conn, self._names, query)

    def event_rows(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: str | None = None,
        page: int = 10_000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The stored events as raw rows (`EVENT_COLUMNS` order), a page at a time, in id order.

        For bulk readers (the Parquet and JSON lines exports): no `UsageEvent` per row;
        ``dimensions`` and ``links`` are JSON text, ``cost`` decimal text or ``None``; the
        bounds as `events`'. Raises `LedgerError`.
        """
        return self._pages(since, until, "" if after_id is None else after_id, page)

    def arrow_batches(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[Any]:
        """The stored events as Arrow record batches, in id order (extra ``analytics``).

        The batches have the Parquet export's columns and types (`arrow_schema`, without the
        ``day`` partition). They are read on a read-only connection of their own by ADBC's
        SQLite driver, in one snapshot (`meterline.ledger._sqlite_arrow`); the bounds are
        `events`'.

        Raises:
            MissingExtraError: ADBC's SQLite driver or pyarrow is not installed.
            LedgerError: the file cannot be read.
        """
        return event_batches(self.path, since=since, until=until)

    def json_lines(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[str]:
        """The stored events as JSON lines, many lines per string, in id order (constant memory).

        Each line is ``json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True)`` of
        the event `events` would give, written from its row (`event_json_line`): with the
        extra ``analytics``, by Arrow kernels over columns that ADBC's SQLite driver read, in
        one snapshot (`meterline.ledger._sqlite_arrow`; about three times faster); else from
        raw rows, a page per transaction. The bounds are `events`'. Raises `LedgerError`.
        """
        if fast_reader_installed():
            return json_texts(self.path, since=since, until=until, after_id=after_id or "")
        return json_pages(self.event_rows(since=since, until=until, after_id=after_id, page=_PAGE))

    def _pages(
        self, since: datetime | None, until: datetime | None, after_id: str, size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of `event_rows`: each read in a transaction of its own, the dimensions made JSON.

        A range of at most `NARROW` is read through the time index (`after_id_within`).
        """
        clauses, bounds, order = after_id_within(since, until)
        sql = f"{EVENT_ROWS} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT ?"
        cursor = after_id
        while True:
            with self._transaction("events", "BEGIN") as conn:
                rows = conn.execute(sql, (stored_id(cursor), *bounds, size)).fetchall()
                known = self._names.json  # the JSON of each distinct set of value ids
                for index, row in enumerate(rows):
                    ids = row[_DIMENSIONS]
                    text = known.get(ids)
                    if text is None:
                        text = self._names.dimensions_json(conn, ids)
                    rows[index] = (*row[:_DIMENSIONS], text, *row[_DIMENSIONS + 1 :])
            if rows:
                yield rows
            if len(rows) < size:
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
        for page in self._pages(since, until, "" if after_id is None else after_id, _PAGE):
            for row in page:
                yield event_from_row(dict(zip(EVENT_COLUMNS, row, strict=True)))

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
            (rollup_rows,) = conn.execute(f"SELECT COUNT(*) FROM {ROLLUPS[0]}").fetchone()  # noqa: S608
            (values,) = conn.execute("SELECT COUNT(*) FROM meterline_dim_values").fetchone()
        return LedgerStats(
            url=self.url,
            schema_version=version,
            events=count,
            first_time=None if first is None else _time(first),
            last_time=None if last is None else _time(last),
            rollup_rows=rollup_rows,
            dimension_values=values,
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


def _time(time_ns: int) -> datetime:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
