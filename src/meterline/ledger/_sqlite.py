"""The SQLite ledger: the embedded default, standard library only, one file in WAL mode.

One connection per `SQLiteLedger`, shared by the writer thread and readers under a lock.
Several ledgers (threads or processes) may open the same file: every write is one
``BEGIN IMMEDIATE`` transaction, so the check for already-stored ids and the inserts that
follow are atomic across connections, and a busy file is waited on up to ``timeout``.

The schema is shared with the PostgreSQL backend: ``meterline_meta`` (the schema version),
``meterline_events`` (one row per event, `EVENT_COLUMNS` plus the previous cost and price
version of a re-priced event) and ``meterline_rollup_hour`` (sums per hour and
(operation, status, provider, model, dimensions); a missing provider or model is stored as
``''`` there, because a primary key column cannot hold NULL usefully, and read back as
``None``).

SQLite stores the fields that repeat from event to event apart: ``meterline_event_keys``
holds each distinct (operation, status, provider, model, request model, price version,
dimensions) once, and an event row refers to it by ``key_id`` (schema version 3). Binding
those seven texts for every event cost the writer more than SQLite's own work, and the file
is smaller for it. The view ``meterline_event_rows`` joins them back into the rows of
`EVENT_COLUMNS`, which is what every reader reads.

SQLite adds a roll-up table too, ``meterline_rollup_hour_nodims``: the same sums keyed by
(hour, operation, status, provider, model) only, maintained in the same transactions. With
dimensions in the key, the hourly roll-up has nearly as many rows as there are events once
users times models is large (540,000 rows for a million events of 50 users and 20 models
over 30 days), and SQLite adds those up in about a second; reports that neither group nor
filter by a dimension read this table instead (20 models: 14,400 rows) and answer in
milliseconds.

SQL text is made only of the constants of this module; every value is a parameter, and
dimension names never reach SQL: reports group and filter by dimensions in Python, over
roll-up rows that SQL has already added up.
"""

from __future__ import annotations as _annotations

import contextlib
import functools
import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Final

from meterline._events import (
    CACHE_OPERATION,
    TOOL_OPERATION,
    Dimensions,
    UsageEvent,
    check_names,
    where_filters,
)
from meterline._pricing import tidy
from meterline._sqlite_file import check_timeout, connect_private, migrate, rollback, schema_version
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._base import (
    _PLAN_OF,
    EVENT_COLUMNS,
    GRANULARITIES,
    ROLLUP_SUMS,
    SCHEMA_VERSION,
    Granularity,
    LedgerRow,
    LedgerStats,
    cost_columns,
    event_from_row,
    event_id,
    hour_of,
    pico_of,
    utc,
)

__all__ = ["SQLiteLedger"]

_EVENT_FIELDS: Final = ("operation", "status", "provider", "model")
"""Fields of the roll-up key that are columns (filtered in SQL); other names are dimensions."""
_NOT_MODEL_CALLS: Final = (TOOL_OPERATION, CACHE_OPERATION)
_MAX_PARAMS: Final = 500
"""Ids per ``IN (...)`` query (well under SQLite's smallest limit of 999 parameters)."""
_PAGE: Final = 1000
"""Events per page of `SQLiteLedger.events`."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY: Final = 86_400

_KEY_COLUMNS: Final = ("hour", "operation", "status", "provider", "model", "dimensions")
_ROLLUPS: Final = ("meterline_rollup_hour", "meterline_rollup_hour_nodims")
"""The roll-up tables: with dimensions in the key, and without."""
_COLUMNS: Final = ", ".join(EVENT_COLUMNS)
_WAL_CHECKPOINT_PAGES: Final = 4000
"""Pages of WAL after which a commit checkpoints (SQLite's default: 1000)."""
_MAX_CACHED_KEYS: Final = 100_000
"""Key ids a ledger remembers (past it, it starts again: they are looked up on the next write)."""
_MAX_ROWS_PER_INSERT: Final = 1024
"""Rows per ``INSERT`` statement at most (a power of two; fewer when SQLite allows fewer parameters)."""


_KEY_FIELDS: Final = (
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "price_version",
    "dimensions",
)
"""The event fields stored once per distinct combination, in ``meterline_event_keys``."""
STORED_COLUMNS: Final = (
    "id",
    "time_ns",
    "hour",
    "key_id",
    *(name for name in EVENT_COLUMNS if name not in _KEY_FIELDS and name not in ("id", "time_ns", "hour")),
)
"""The columns of an event row as stored (`EVENT_COLUMNS` with the key fields replaced by ``key_id``)."""
_NULLABLE_TEXT: Final = frozenset({"cost", "operation_id", "response_id"})
"""Text columns that may be NULL: `_bind_rows` passes the integer 0 for NULL (see `_insert_events`)."""


@functools.cache
def _insert_events(count: int) -> str:
    """The statement that stores ``count`` rows of `_bind_rows`, skipping ids already stored (or repeated).

    Many rows per statement: the driver releases and retakes the GIL around each statement
    it runs, which costs the threads recording events far more than SQLite's own work.
    Binding ``None`` costs the driver ten times what an int does (it looks for an adapter),
    so a NULL text column is bound as the integer 0 and turned into NULL by ``nullif`` (a
    text ``'0'`` never equals the integer 0), and a missing latency as NaN (which SQLite
    stores as NULL).
    """
    row = "({})".format(
        ", ".join("nullif(?, 0)" if name in _NULLABLE_TEXT else "?" for name in STORED_COLUMNS)
    )
    return (
        f"INSERT INTO meterline_events ({', '.join(STORED_COLUMNS)})"  # noqa: S608 - constants only
        f" VALUES {', '.join([row] * count)} ON CONFLICT(id) DO NOTHING"
    )


def _correct(table: str, key: Sequence[str]) -> str:
    """The statement that corrects the cost and unpriced count of one row of ``table``."""
    return (
        f"UPDATE {table} SET cost_pico = cost_pico + ?, unpriced = unpriced + ?"  # noqa: S608 - constants only
        f" WHERE {' AND '.join(f'{name} = ?' for name in key)}"
    )


def _upsert(table: str, key: Sequence[str]) -> str:
    """The statement that adds one row of sums into ``table`` (a constant of this module)."""
    return (
        f"INSERT INTO {table} ({', '.join((*key, *ROLLUP_SUMS))})"  # noqa: S608 - constants only
        f" VALUES ({', '.join('?' * (len(key) + len(ROLLUP_SUMS)))})"
        f" ON CONFLICT({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{name} = {name} + excluded.{name}" for name in ROLLUP_SUMS)
    )


_UPSERT_ROLLUP: Final = _upsert(_ROLLUPS[0], _KEY_COLUMNS)
_UPSERT_NODIMS: Final = _upsert(_ROLLUPS[1], _KEY_COLUMNS[:-1])
_LAST_ROWID: Final = "SELECT coalesce(max(rowid), 0) FROM meterline_events"
_NEW_IDS: Final = "SELECT id FROM meterline_events WHERE rowid > ?"
_CORRECT_ROLLUP: Final = _correct(_ROLLUPS[0], _KEY_COLUMNS)
_CORRECT_NODIMS: Final = _correct(_ROLLUPS[1], _KEY_COLUMNS[:-1])
_SELECT_FOR_REPRICE: Final = (
    "SELECT id, cost, cost_pico, price_version, measured, hour, operation, status, provider, model,"
    " dimensions, request_model FROM meterline_event_rows WHERE id IN "
)
_REPRICE_EVENT: Final = (
    "UPDATE meterline_events SET previous_cost = cost, previous_price_version ="
    " (SELECT price_version FROM meterline_event_keys AS k WHERE k.key_id = meterline_events.key_id),"
    " cost = ?, cost_pico = ?, key_id = ? WHERE id = ?"
)
_ADD_KEY: Final = (
    f"INSERT INTO meterline_event_keys (key, {', '.join(_KEY_FIELDS)})"  # noqa: S608 - constants only
    f" VALUES ({', '.join('?' * (len(_KEY_FIELDS) + 1))}) ON CONFLICT(key) DO NOTHING"
)
_KEY_ID: Final = "SELECT key_id FROM meterline_event_keys WHERE key = ?"

# Positions in a row of `_bind_rows`, for adding rows into roll-ups without re-deriving them.
_WIDTH: Final = len(STORED_COLUMNS)
_ID: Final = STORED_COLUMNS.index("id")
_HOUR_AT: Final = STORED_COLUMNS.index("hour")
_KEY_ID_AT: Final = STORED_COLUMNS.index("key_id")
_MEASURED: Final = STORED_COLUMNS.index("measured")
_USAGE_AT: Final = tuple(STORED_COLUMNS.index(name) for name in USAGE_FIELDS)
_PICO_AT: Final = STORED_COLUMNS.index("cost_pico")
_LATENCY_AT: Final = STORED_COLUMNS.index("latency_ms")
_SAVED_AT: Final = STORED_COLUMNS.index("tokens_saved")
# Positions in a list of `ROLLUP_SUMS`.
_EVENTS, _UNMEASURED, _UNPRICED = 0, 1, 2
_SUM_USAGE: Final = tuple(ROLLUP_SUMS.index(name) for name in USAGE_FIELDS)
_SUM_PICO: Final = ROLLUP_SUMS.index("cost_pico")
_SUM_LATENCY: Final = ROLLUP_SUMS.index("latency_ms")
_SUM_SAVED: Final = ROLLUP_SUMS.index("tokens_saved")


def _schema_v1(conn: sqlite3.Connection) -> None:
    """Version 1: metadata, events and the hourly roll-up."""
    types = {"id": "TEXT PRIMARY KEY", "cost": "TEXT", "latency_ms": "REAL"}
    texts = {"operation", "status", "provider", "model", "request_model", "price_version"}
    texts |= {"dimensions", "operation_id", "response_id", "links"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in EVENT_COLUMNS
    )
    sums = ", ".join(
        f"{name} {'REAL' if name == 'latency_ms' else 'INTEGER'} NOT NULL" for name in ROLLUP_SUMS
    )
    conn.execute("CREATE TABLE IF NOT EXISTS meterline_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        f"CREATE TABLE meterline_events ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    conn.execute("CREATE INDEX meterline_events_hour ON meterline_events (hour)")
    conn.execute(
        "CREATE TABLE meterline_rollup_hour (hour INTEGER NOT NULL, operation TEXT NOT NULL,"
        " status TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, dimensions TEXT NOT NULL,"
        f" {sums}, PRIMARY KEY ({', '.join(_KEY_COLUMNS)})) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE meterline_rollup_hour_nodims (hour INTEGER NOT NULL, operation TEXT NOT NULL,"
        " status TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,"
        f" {sums}, PRIMARY KEY ({', '.join(_KEY_COLUMNS[:-1])})) WITHOUT ROWID"
    )


def _schema_v2(conn: sqlite3.Connection) -> None:
    """Version 2: no index of the events by hour (no query used it, and every insert paid for it)."""
    conn.execute("DROP INDEX IF EXISTS meterline_events_hour")


_COST_TEXT: Final = (
    "CASE WHEN e.cost IS NOT NULL OR e.cost_pico IS NULL THEN e.cost ELSE"
    " rtrim(rtrim((e.cost_pico / 1000000000000) || '.' || printf('%012d', e.cost_pico % 1000000000000),"
    " '0'), '.') END AS cost"
)
"""The cost as text, for the view: a row whose cost is exact in pico-dollars stores no text (see
`_bind_rows`), and this writes it out as `usd_text` would (``0.00575``, ``2``, ``0``)."""


def key_text(key: Sequence[object]) -> str:
    """The unique text of a key's fields in ``meterline_event_keys`` (JSON, ASCII, NULLs kept)."""
    return json.dumps(list(key), ensure_ascii=True, separators=(",", ":"))


def _schema_v3(conn: sqlite3.Connection) -> None:
    """Version 3: the fields that repeat from event to event stored once, in ``meterline_event_keys``."""
    fields = ", ".join(_KEY_FIELDS)
    conn.execute(
        "CREATE TABLE meterline_event_keys (key_id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
        " operation TEXT, status TEXT, provider TEXT, model TEXT, request_model TEXT, price_version TEXT,"
        " dimensions TEXT)"
    )
    distinct = conn.execute(f"SELECT DISTINCT {fields} FROM meterline_events").fetchall()  # noqa: S608
    conn.executemany(_ADD_KEY, [(key_text(key), *key) for key in distinct])
    texts = {"id", "cost", "operation_id", "response_id", "links"}
    types = {"id": "TEXT PRIMARY KEY", "latency_ms": "REAL", "key_id": "INTEGER NOT NULL"}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in STORED_COLUMNS
    )
    conn.execute(
        f"CREATE TABLE meterline_events_v3 ({columns}, previous_cost TEXT, previous_price_version TEXT)"
    )
    picked = ", ".join("k.key_id" if name == "key_id" else f"e.{name}" for name in STORED_COLUMNS)
    same = " AND ".join(f"k.{name} IS e.{name}" for name in _KEY_FIELDS)
    stored = ", ".join(STORED_COLUMNS)
    conn.execute(
        f"INSERT INTO meterline_events_v3 ({stored}, previous_cost, previous_price_version)"  # noqa: S608
        f" SELECT {picked}, e.previous_cost, e.previous_price_version"
        f" FROM meterline_events AS e JOIN meterline_event_keys AS k ON {same} ORDER BY e.rowid"
    )
    conn.execute("DROP TABLE meterline_events")
    conn.execute("ALTER TABLE meterline_events_v3 RENAME TO meterline_events")
    shown = ", ".join(
        f"k.{name}" if name in _KEY_FIELDS else _COST_TEXT if name == "cost" else f"e.{name}"
        for name in EVENT_COLUMNS
    )
    conn.execute(
        f"CREATE VIEW meterline_event_rows AS SELECT {shown}, e.previous_cost, e.previous_price_version"  # noqa: S608
        " FROM meterline_events AS e JOIN meterline_event_keys AS k ON k.key_id = e.key_id"
    )


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (_schema_v1, _schema_v2, _schema_v3)
"""Forward migrations: ``MIGRATIONS[n]`` takes a store from version ``n`` to ``n + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION


class SQLiteLedger:
    """A ledger in one SQLite file (WAL, ``synchronous=NORMAL``), created readable by its owner only.

    Opening applies forward migrations in one transaction and refuses a store written by a
    newer meterline. Thread-safe: one connection, shared under a lock.

    Args:
        path: The database file (created, mode 0600, when missing).
        timeout: Seconds to wait for a file another connection is writing.

    Raises:
        LedgerError: when the file cannot be created or opened, is not a database, or its
            schema is newer than this meterline knows.
    """

    url: str
    """``sqlite:///`` followed by the file's absolute path."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        seconds = check_timeout(timeout)
        self.path = Path(path).expanduser().absolute()
        """The database file."""
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._rows_per_insert = _MAX_ROWS_PER_INSERT
        self._key_ids: dict[tuple[Any, ...], int] = {}
        """Key fields -> their ``key_id`` in ``meterline_event_keys`` (those committed)."""
        self._key_fields: dict[int, tuple[Any, ...]] = {}
        """The inverse of ``_key_ids``."""
        self._conn: sqlite3.Connection | None = connect_private(
            self.path, seconds, LedgerError, "ledger", self._prepare
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Checkpoint (copy the WAL into the file, and sync it) every ~16 MB of WAL at the
        # default 4 KiB pages rather than SQLite's ~4 MB: fewer syncs for a steady writer.
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        migrate(conn, meta="meterline_meta", migrations=MIGRATIONS, error=LedgerError, url=self.url)
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
            try:
                conn.execute(begin)
                yield conn
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int past 64 bits
                rollback(conn)
                raise LedgerError(f"{what} failed on {self.url}: {exc}") from exc
            except BaseException:
                rollback(conn)
                raise

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
                values = _bind_rows(events, self._key_ids, self._key_resolver(conn, added))
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
            conn.execute(_ADD_KEY, (text, *fields))
            ((new,),) = conn.execute(_KEY_ID, (text,))
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
        ((last,),) = conn.execute(_LAST_ROWID)
        inserted = 0
        size = self._rows_per_insert
        at = 0
        while at < count:
            while at + size > count:  # the rest in halves: few distinct statements to cache
                size //= 2
            chunk = values[at * _WIDTH : (at + size) * _WIDTH]
            inserted += conn.execute(_insert_events(size), chunk).rowcount
            at += size
        if inserted != count:
            # Some ids were stored already, or repeated in the batch: the rows inserted are
            # those past the largest rowid before the insert (the write lock is held, and
            # SQLite gives a new row the largest rowid plus one; rowids are only drawn at
            # random once 2**63 - 1 is taken, which the count check turns into a failure).
            new_ids = {stored for (stored,) in conn.execute(_NEW_IDS, (last,))}
            if len(new_ids) != inserted:
                raise LedgerError(
                    f"write failed on {self.url}: {inserted} events inserted but"
                    f" {len(new_ids)} found past rowid {last}; nothing of the batch was written"
                )
            kept: list[Any] = []
            for start in range(0, len(values), _WIDTH):
                if values[start + _ID] in new_ids:
                    new_ids.discard(values[start + _ID])  # the first of repeated ids is stored
                    kept += values[start : start + _WIDTH]
            values = kept
        if values:
            sums = _rollup(values, self._key_fields)
            conn.executemany(_UPSERT_ROLLUP, [(*key, *total) for key, total in sums.items()])
            conn.executemany(_UPSERT_NODIMS, [(*key, *total) for key, total in _drop_dims(sums).items()])
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
                found = conn.execute(_SELECT_FOR_REPRICE + _marks(len(chunk)), chunk)
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
                    if measured and operation not in _NOT_MODEL_CALLS:
                        delta[1] += (cost is None) - (old_cost is None)
            key_id = self._key_resolver(conn, added)
            updates = [(cost, pico, key_id(fields), stored_id) for cost, pico, fields, stored_id in repriced]
            conn.executemany(_REPRICE_EVENT, updates)
            conn.executemany(_CORRECT_ROLLUP, [(*delta, *key) for key, delta in deltas.items()])
            conn.executemany(_CORRECT_NODIMS, [(*delta, *key) for key, delta in _drop_dims(deltas).items()])
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
        for name in _EVENT_FIELDS:
            if name in allowed:
                # Columns hold str only ('' for a missing provider or model): other values never match.
                values = [value for value in allowed[name] if type(value) is str and value]
                if None in allowed[name]:
                    values.append("")
                if not values:
                    return []
                clauses.append(name + " IN " + _marks(len(values)))
                params.extend(values)
        dim_names = [name for name in (*group, *allowed) if name not in _EVENT_FIELDS]
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
        keys += [name for name in _EVENT_FIELDS[1:] if name in group or name in allowed]
        if with_dims:
            keys.append("dimensions")
        table = _ROLLUPS[0] if with_dims else _ROLLUPS[1]
        sums = [f"SUM({name})" if in_sql else name for name in ROLLUP_SUMS]
        sql = f"SELECT {', '.join(keys + sums)} FROM {table}"  # noqa: S608 - constants only
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if in_sql:
            sql += f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 1))}"
        fields: dict[str, int] = {name: keys.index(name) for name in _EVENT_FIELDS if name in keys}
        field_at = [(fields[name], i) for i, name in enumerate(group) if name in fields]
        dim_names = [name for name in group if name not in fields]
        dim_filters = [(name, values) for name, values in allowed.items() if name not in _EVENT_FIELDS]
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
                        dims = json.loads(text)
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
                if row[1] in _NOT_MODEL_CALLS:  # tool usage is informational, never in usage or cost
                    acc[_EVENTS] += row[first_sum + _EVENTS]
                    acc[_SUM_LATENCY] += row[first_sum + _SUM_LATENCY]
                    acc[_SUM_SAVED] += row[first_sum + _SUM_SAVED]
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
                events=acc[_EVENTS],
                unmeasured=acc[_UNMEASURED],
                unpriced=acc[_UNPRICED],
                usage=Usage(**{name: acc[i] for name, i in zip(USAGE_FIELDS, _SUM_USAGE, strict=True)}),
                cost=tidy(Decimal(acc[_SUM_PICO]).scaleb(-12)),
                latency_ms=float(acc[_SUM_LATENCY]),
                tokens_saved=acc[_SUM_SAVED],
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
        clauses = ["id > ?"]
        bounds: list[object] = []
        if since is not None:
            clauses.append("time_ns >= ?")
            bounds.append(_ns(since))
        if until is not None:
            clauses.append("time_ns < ?")
            bounds.append(_ns(until))
        sql = (
            f"SELECT {_COLUMNS} FROM meterline_event_rows WHERE {' AND '.join(clauses)}"  # noqa: S608 - constants only
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
            cursor = page[-1][_ID]

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored.

        Raises:
            LedgerError: the store failed.
        """
        with self._transaction("stats", "BEGIN") as conn:
            version = schema_version(conn, "meterline_meta", LedgerError)
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


_FIELDS_OF: Final = attrgetter(
    "time_ns",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "usage",
    "price_version",
    "latency_ms",
    "dimensions",
    "operation_id",
    "attempt",
    "response_id",
    "links",
    "tokens_saved",
)
_USAGE_OF: Final = attrgetter(*USAGE_FIELDS)
_NO_USAGE: Final = (0,) * (1 + len(USAGE_FIELDS))  # measured, then the counts
_NAN: Final = float("nan")
_EXACT_IN_PICO: Final = "exact in pico-dollars"
"""A marker: the cost text is not stored (the view derives it from ``cost_pico``)."""


def _bind_rows(
    events: Sequence[UsageEvent],
    known: Mapping[tuple[Any, ...], int],
    key_id: Callable[[tuple[Any, ...]], int],
) -> list[Any]:
    """The parameters of `_insert_events` for ``events``: their rows, one after the other, in one list.

    The values of `event_to_row` (a test checks it) in the order of `STORED_COLUMNS`: the
    key fields replaced by their id (``known[fields]``, else ``key_id(fields)``); ``None``
    bound as the integer 0 in a text column and as NaN for the latency (see
    `_insert_events`); a cost exact in pico-dollars stored as the integer alone. Written out inline, into one
    flat list: it runs for every event on the writer thread, which shares the GIL with the
    threads recording them.
    """
    values: list[Any] = []
    extend = values.extend
    for event in events:
        (
            time_ns,
            operation,
            status,
            provider,
            model,
            request_model,
            usage,
            price_version,
            latency,
            dimensions,
            operation_id,
            attempt,
            response_id,
            links,
            tokens_saved,
        ) = _FIELDS_OF(event)
        try:
            # The common case: priced by a compiled plan, exact to the pico-dollar. Only the
            # integer is stored; the view writes the text out (formatting it here cost a
            # tenth of this loop).
            atto = _PLAN_OF(event).atto(usage)
            pico, rest = divmod(atto, 1_000_000)
            cost: str | None = _EXACT_IN_PICO if rest == 0 and atto >= 0 else None
            if cost is None:
                cost, pico = cost_columns(event)
        except AttributeError:
            cost, pico = cost_columns(event)
        dims = (
            dimensions.json()
            if type(dimensions) is Dimensions
            else json.dumps(dict(dimensions), sort_keys=True, separators=(",", ":"))
        )
        fields = (operation, status, provider, model, request_model, price_version, dims)
        found = known.get(fields)
        extend(
            (
                event_id(event),
                time_ns,
                time_ns // 3_600_000_000_000 * 3600,  # hour_of(time_ns)
                key_id(fields) if found is None else found,
            )
        )
        extend(_NO_USAGE if usage is None else (1, *_USAGE_OF(usage)))
        extend(
            (
                0 if cost is None or cost is _EXACT_IN_PICO else cost,
                pico,
                _NAN if latency is None else latency,
                0 if operation_id is None else operation_id,
                attempt,
                0 if response_id is None else response_id,
                "[]" if not links else json.dumps(list(links), separators=(",", ":")),
                tokens_saved,
            )
        )
    return values


def _rollup(values: list[Any], fields: Mapping[int, tuple[Any, ...]]) -> dict[tuple[Any, ...], list[Any]]:
    """Add rows of `_bind_rows` up per roll-up key (hour, operation, status, provider, model, dimensions).

    Rows are grouped by (hour, key_id) first, then each group lands on its roll-up key, taken
    from ``fields`` (key_id -> the key's fields, in the order of ``meterline_event_keys``).
    A column of the rows is a slice of ``values``; the rows of a group are picked out of each
    column, and added up by ``sum`` (in C): integers stay exact, and a sum past 64 bits fails
    the write when bound (`OverflowError`). A batch is often of one group (one scope's events).
    """
    columns = [values[at::_WIDTH] for at in range(_WIDTH)]
    keys = list(zip(columns[_HOUR_AT], columns[_KEY_ID_AT], strict=True))
    first = keys[0]
    groups: dict[tuple[Any, ...], list[int] | None]
    if keys.count(first) == len(keys):
        groups = {first: None}  # every row
    else:
        groups = {}
        for index, key in enumerate(keys):
            rows = groups.get(key)
            if rows is None:
                groups[key] = [index]
            else:
                rows.append(index)
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for (hour, key_id), rows in groups.items():
        operation, status, provider, model, _, _, dims = fields[key_id]
        picked: Sequence[Sequence[Any]]
        if rows is None:
            picked = columns
        elif len(rows) == 1:
            (row,) = rows
            picked = [(column[row],) for column in columns]
        else:
            pick = itemgetter(*rows)
            picked = [pick(column) for column in columns]
        measured = picked[_MEASURED]
        picos = picked[_PICO_AT]
        count = len(measured)
        unmeasured = unpriced = 0
        if operation not in _NOT_MODEL_CALLS:
            unmeasured = count - sum(measured)
            if None in picos:
                unpriced = sum(1 for flag, pico in zip(measured, picos, strict=True) if flag and pico is None)
        latency = sum(picked[_LATENCY_AT])
        if math.isnan(latency):  # some latencies are missing (NaN in the rows)
            latency = sum(value for value in picked[_LATENCY_AT] if not math.isnan(value))
        total = [
            count,
            unmeasured,
            unpriced,
            *(sum(picked[at]) for at in _USAGE_AT),  # zeros when unmeasured
            sum(filter(None, picos)),  # None when unpriced
            float(latency),
            sum(picked[_SAVED_AT]),
        ]
        # The key as stored: '' for a missing provider or model. Several keys (request model,
        # price version; a missing provider and '') land on one roll-up row.
        rollup_key = (hour, operation, status, provider or "", model or "", dims)
        merged = sums.get(rollup_key)
        if merged is None:
            sums[rollup_key] = total
        else:
            for i, value in enumerate(total):
                merged[i] += value
    return sums


def _drop_dims(sums: Mapping[tuple[Any, ...], list[Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """Sums per roll-up key added up over the dimensions (the key's last part)."""
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for key, values in sums.items():
        total = merged.get(key[:-1])
        if total is None:
            merged[key[:-1]] = list(values)
        else:
            for i, value in enumerate(values):
                total[i] += value
    return merged


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
