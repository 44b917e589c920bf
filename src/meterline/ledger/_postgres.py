"""The PostgreSQL ledger (extra ``postgres``): many processes and hosts share one store.

One connection per ledger, guarded by a lock; every method is one transaction, and a broken
connection is reopened once. A batch is copied into a temporary table, then a single
statement inserts the events that are new (``ON CONFLICT (id) DO NOTHING``) and adds *only
those* to the hourly roll-ups, so concurrent writers of overlapping batches store and count
every event once. SQL text is fixed at open: table names are quoted identifiers, values are
parameters, and dimension names never reach SQL (dimensions are grouped and filtered in
Python over roll-up rows).
"""

from __future__ import annotations as _annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from meterline._events import CACHE_OPERATION, DIMENSION_NAME, TOOL_OPERATION, check_names, where_filters
from meterline._extras import require
from meterline._pricing import atto_to_decimal, tidy
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._base import (
    EVENT_COLUMNS,
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

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from meterline._events import UsageEvent

__all__ = ["PostgresLedger", "connection_options"]

_T = TypeVar("_T")

"""Dimension and schema names: identifiers (never put in SQL text unquoted)."""
_FIELDS: Final = ("operation", "status", "provider", "model")
"""Event fields the roll-ups are keyed by (besides hour and dimensions)."""
_OPTIONAL_FIELDS: Final = frozenset({"provider", "model"})
"""Roll-up key fields stored as '' for ``None`` (a primary key has no NULLs)."""
_LOCK_KEY: Final = 0x6D65_7465_726C_696E  # "meterlin": serialises migrations of every process
_PAGE: Final = 1000
"""Events per page of `PostgresLedger.events` (keyset pagination: constant memory)."""
_COPY_CHUNK: Final = 500
"""Events formatted and sent at a time while copying a batch."""
_RETRIES: Final = 3
"""Attempts of a transaction that lost a deadlock or serialisation race."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_ATTO_PER_PICO: Final = 1_000_000

_EVENT_TYPES: Final = {
    "id": "TEXT",
    "time_ns": "BIGINT",
    "hour": "BIGINT",
    "operation": "TEXT",
    "status": "TEXT",
    "provider": "TEXT",
    "model": "TEXT",
    "request_model": "TEXT",
    "measured": "SMALLINT",
    **dict.fromkeys(USAGE_FIELDS, "BIGINT"),
    "cost": "NUMERIC",
    "cost_pico": "NUMERIC",
    "price_version": "TEXT",
    "latency_ms": "DOUBLE PRECISION",
    # TEXT, not JSONB: the JSON is kept verbatim (JSONB reorders keys and refuses \u0000).
    "dimensions": "TEXT",
    "operation_id": "TEXT",
    "attempt": "BIGINT",
    "response_id": "TEXT",
    "links": "TEXT",
    "tokens_saved": "BIGINT",
}
assert tuple(_EVENT_TYPES) == EVENT_COLUMNS
_NOT_NULL: Final = frozenset(
    {"time_ns", "hour", "operation", "status", "measured", *USAGE_FIELDS}
    | {"dimensions", "attempt", "links", "tokens_saved"}
)
_ROLLUP_TYPES: Final = {
    name: "NUMERIC" if name == "cost_pico" else "DOUBLE PRECISION" if name == "latency_ms" else "BIGINT"
    for name in ROLLUP_SUMS
}
_ROLLUP_KEY: Final = ("hour", *_FIELDS, "dimensions")
_BYTE_ORDER: Final = ' COLLATE "C"'

# PostgreSQL text cannot hold NUL: the text columns store "\x00" as ESC "0" and ESC itself as
# ESC ESC (ESC is U+FFFF, a noncharacter), which is reversible; JSON columns escape NUL already.
_ESC: Final = "\uffff"
_ESCAPED: Final = re.compile("\uffff(.)", re.DOTALL)
_TEXT_COLUMNS: Final = (
    "id",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "price_version",
    "operation_id",
    "response_id",
)
_TEXT_INDEXES: Final = frozenset(EVENT_COLUMNS.index(name) for name in _TEXT_COLUMNS)


def _event_ddl() -> str:
    def column(name: str, kind: str) -> str:
        if name == "id":  # byte order, as Python sorts ids (and a faster index)
            return f"id {kind}{_BYTE_ORDER} PRIMARY KEY"
        return f"{name} {kind}{' NOT NULL' if name in _NOT_NULL else ''}"

    columns = [column(name, kind) for name, kind in _EVENT_TYPES.items()]
    return ", ".join([*columns, "previous_cost NUMERIC", "previous_price_version TEXT"])


def _rollup_ddl() -> str:
    return ", ".join(
        [
            "hour BIGINT NOT NULL",
            "operation TEXT NOT NULL",
            "status TEXT NOT NULL",
            "provider TEXT NOT NULL DEFAULT ''",
            "model TEXT NOT NULL DEFAULT ''",
            "dimensions TEXT NOT NULL",
            *(f"{name} {kind} NOT NULL DEFAULT 0" for name, kind in _ROLLUP_TYPES.items()),
            f"PRIMARY KEY ({', '.join(_ROLLUP_KEY)})",
        ]
    )


# Fixed SQL text; {events}, {rollup}, {meta} and {schema} are quoted identifiers filled in at open.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        f"CREATE TABLE IF NOT EXISTS {{events}} ({_event_ddl()})",
        "CREATE INDEX IF NOT EXISTS meterline_events_hour ON {events} (hour)",
        f"CREATE TABLE IF NOT EXISTS {{rollup}} ({_rollup_ddl()})",
    ),
    # No index of the events by hour: stats() scans the table anyway (to count it), and
    # every stored event paid for the index.
    2: ("DROP INDEX IF EXISTS {hour_index}",),
    # Version 3 changes the SQLite layout only (key fields stored once per combination);
    # PostgreSQL keeps its rows as they are.
    3: (),
}
"""Forward migrations: the statements that bring a store from version ``n - 1`` to ``n``."""
assert max(_MIGRATIONS) == SCHEMA_VERSION


def _unpriced(table: str = "") -> str:
    """SQL: the event (of ``table``, if named) is a measured model call without a cost."""
    prefix = f"{table}." if table else ""
    return (
        f"{prefix}measured = 1 AND {prefix}cost IS NULL"
        f" AND {prefix}operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
    )


_UNMEASURED: Final = f"measured = 0 AND operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')"
_UNPRICED: Final = _unpriced()

_WRITE: Final = (
    "WITH ins AS ("  # noqa: S608 - fixed text: column names from constants, values are parameters
    f" INSERT INTO {{events}} ({', '.join(EVENT_COLUMNS)})"
    f" SELECT {', '.join(EVENT_COLUMNS)} FROM pg_temp.meterline_incoming ORDER BY id"
    " ON CONFLICT (id) DO NOTHING"
    " RETURNING hour, operation, status, provider, model, dimensions, measured, cost,"
    f" {', '.join(USAGE_FIELDS)},"
    " cost_pico, latency_ms, tokens_saved"
    "), roll AS ("
    f" INSERT INTO {{rollup}} AS r ({', '.join(_ROLLUP_KEY)}, {', '.join(ROLLUP_SUMS)})"
    " SELECT hour, operation, status, coalesce(provider, ''), coalesce(model, ''), dimensions, count(*),"
    f" count(*) FILTER (WHERE {_UNMEASURED}), count(*) FILTER (WHERE {_UNPRICED}),"
    f" {', '.join(f'sum({name})' for name in USAGE_FIELDS)},"
    " coalesce(sum(cost_pico), 0), coalesce(sum(latency_ms), 0), sum(tokens_saved)"
    " FROM ins GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
    f" ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = r.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    + ") SELECT count(*) FROM ins"
)

# Re-pricing locks the events first (so the old values it reads are the latest), then moves
# each changed event's old cost to previous_cost and corrects its roll-up row by the difference.
_REPRICE: Final = (
    "WITH old AS ("  # noqa: S608 - fixed text: column names from constants, values are parameters
    " SELECT e.id, e.cost AS old_cost, e.cost_pico AS old_pico, e.price_version AS old_version,"
    f" CASE WHEN {_unpriced('e')} THEN 1 ELSE 0 END"
    " AS old_unpriced, n.cost, n.cost_pico, n.price_version"
    " FROM {events} e JOIN pg_temp.meterline_repricing n ON n.id = e.id"
    " WHERE e.cost IS DISTINCT FROM n.cost OR e.price_version IS DISTINCT FROM n.price_version"
    " ORDER BY e.id FOR UPDATE OF e"
    "), upd AS ("
    " UPDATE {events} e SET previous_cost = old.old_cost, previous_price_version = old.old_version,"
    " cost = old.cost, cost_pico = old.cost_pico, price_version = old.price_version"
    " FROM old WHERE e.id = old.id"
    " RETURNING e.hour, e.operation, e.status, coalesce(e.provider, '') AS provider,"
    " coalesce(e.model, '') AS model, e.dimensions,"
    f" (CASE WHEN {_unpriced('e')} THEN 1 ELSE 0 END)"
    " - old.old_unpriced AS unpriced, coalesce(e.cost_pico, 0) - coalesce(old.old_pico, 0) AS cost_pico"
    "), delta AS ("
    " SELECT hour, operation, status, provider, model, dimensions, sum(unpriced) AS unpriced,"
    " sum(cost_pico) AS cost_pico FROM upd GROUP BY 1, 2, 3, 4, 5, 6"
    "), fix AS ("
    " UPDATE {rollup} r SET unpriced = r.unpriced + delta.unpriced, cost_pico = r.cost_pico + delta.cost_pico"
    " FROM delta WHERE (r.hour, r.operation, r.status, r.provider, r.model, r.dimensions)"
    " = (delta.hour, delta.operation, delta.status, delta.provider, delta.model, delta.dimensions)"
    ") SELECT count(*) FROM upd"
)

_MODEL_SUMS: Final = frozenset({"unmeasured", "unpriced", *USAGE_FIELDS, "cost_pico"})
_TOTAL_SUMS: Final = tuple(
    # A tool's reported usage is informational (as in meterline.Totals): never in usage or cost.
    f"coalesce(sum({name}) FILTER (WHERE operation NOT IN ('{TOOL_OPERATION}', '{CACHE_OPERATION}')), 0)"
    if name in _MODEL_SUMS
    else f"sum({name})"
    for name in ROLLUP_SUMS
)

_PERIODS: Final = {
    "hour": "hour",
    "day": "floor(hour / 86400.0)::bigint * 86400",
    "month": "extract(epoch FROM date_trunc('month', to_timestamp(hour) AT TIME ZONE 'UTC'))::bigint",
}
"""Start of a roll-up row's period, in seconds since the epoch (fixed SQL, chosen by name)."""


class PostgresLedger:
    """A `LedgerBackend` on PostgreSQL, through psycopg 3.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?options]``.
        schema: A PostgreSQL schema to keep the tables in (created if missing), for example
            one per tenant or per test; ``None`` uses the connection's ``search_path``.
        connect_timeout: Seconds to wait for the server (at least 2, libpq's minimum).

    Raises:
        ConfigurationError: when ``schema`` is not an identifier.
        LedgerError: when the server cannot be reached, or the store was written by a newer
            meterline.
        MissingExtraError: when psycopg is not installed (extra ``postgres``).
    """

    url: str
    """Where the ledger is, without the password."""

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 5.0) -> None:
        self._conninfo, self.url, self._schema, self._timeout = connection_options(
            url, schema, connect_timeout
        )
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._closed = False
        self._queries: dict[str, bytes] = {}
        self._names: dict[str, sql.Identifier] = {}
        with self._lock:
            try:
                self._run_locked(self._migrate)
            except BaseException:
                self._release()
                raise

    # ----------------------------------------------------------------------------------------
    # connection and transactions

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        try:
            conn: psycopg.Connection[tuple[Any, ...]] = pg.connect(
                self._conninfo, autocommit=False, connect_timeout=self._timeout
            )
        except pg.Error as exc:
            raise LedgerError(f"cannot connect to the PostgreSQL ledger at {self.url}: {exc}") from exc
        try:
            self._prepare(conn)
        except pg.Error as exc:
            conn.close()
            raise LedgerError(f"cannot prepare the PostgreSQL ledger at {self.url}: {exc}") from exc
        return conn

    def _prepare(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Render the fixed SQL for this connection and create its temporary tables."""
        from psycopg import sql as pgsql  # noqa: PLC0415 - the postgres extra, loaded when used

        schema = self._schema

        def table(name: str) -> sql.Identifier:
            return pgsql.Identifier(schema, name) if schema else pgsql.Identifier(name)

        names = {
            "events": table("meterline_events"),
            "rollup": table("meterline_rollup_hour"),
            "meta": table("meterline_meta"),
            "hour_index": table("meterline_events_hour"),
            "schema": pgsql.Identifier(schema or "public"),
        }

        def render(text: str) -> bytes:
            return bytes(pgsql.SQL(text).format(**names).as_bytes(conn))

        if not self._queries:
            queries = {
                "write": _WRITE,
                "reprice": _REPRICE,
                "version": "SELECT value FROM {meta} WHERE key = 'schema_version'",
                "set_version": "INSERT INTO {meta} (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                "create_schema": "CREATE SCHEMA IF NOT EXISTS {schema}",
                "create_meta": "CREATE TABLE IF NOT EXISTS {meta}"
                " (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "copy": f"COPY pg_temp.meterline_incoming ({', '.join(EVENT_COLUMNS)}) FROM STDIN",
                "copy_reprice": "COPY pg_temp.meterline_repricing"
                " (id, cost, cost_pico, price_version) FROM STDIN",
                "prune_events": "DELETE FROM {events} WHERE time_ns < %s",
                "prune_rollup": "DELETE FROM {rollup} WHERE hour < %s",
                "stats": "SELECT count(*), min(time_ns), max(time_ns), (SELECT count(*) FROM {rollup})"
                " FROM {events}",
            }
            for version, statements in _MIGRATIONS.items():
                for index, statement in enumerate(statements):
                    queries[f"migrate_{version}_{index}"] = statement
            self._queries = {name: render(text) for name, text in queries.items()}
            self._names = names
        incoming = ", ".join(
            f"{name} {kind}{_BYTE_ORDER if name == 'id' else ''}" for name, kind in _EVENT_TYPES.items()
        )
        with conn.cursor() as cur:
            cur.execute(
                pgsql.SQL(  # fixed text: the column list comes from EVENT_COLUMNS
                    f"CREATE TEMP TABLE IF NOT EXISTS meterline_incoming ({incoming}) ON COMMIT DELETE ROWS"
                )
            )
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS meterline_repricing"
                " (id TEXT, cost NUMERIC, cost_pico NUMERIC, price_version TEXT) ON COMMIT DELETE ROWS"
            )
        conn.commit()

    def _run_locked(self, work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T]) -> _T:
        """Run ``work`` in one transaction (the lock held); reconnect once, retry lost races."""
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        if self._closed:
            raise LedgerError(f"the ledger at {self.url} is closed")
        reconnected = False
        attempt = 0
        while True:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            conn = self._conn
            try:
                with conn.cursor() as cur:
                    result = work(cur)
                conn.commit()
            except (pg.errors.DeadlockDetected, pg.errors.SerializationFailure) as exc:
                _rollback(conn)
                attempt += 1
                if attempt >= _RETRIES:
                    raise LedgerError(f"PostgreSQL ledger at {self.url}: {exc}") from exc
            except pg.OperationalError as exc:
                _rollback(conn)
                if conn.broken and not reconnected:
                    # The server went away (restart, idle timeout, failover): one fresh connection.
                    # Safe to repeat: writes are idempotent and re-pricing skips unchanged events.
                    conn.close()
                    self._conn = None
                    reconnected = True
                    continue
                raise LedgerError(f"PostgreSQL ledger at {self.url}: {exc}") from exc
            except pg.Error as exc:
                _rollback(conn)
                raise LedgerError(f"PostgreSQL ledger at {self.url}: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise
            else:
                return result

    def _run(self, work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T]) -> _T:
        with self._lock:
            return self._run_locked(work)

    # ----------------------------------------------------------------------------------------
    # schema

    def _version(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> int | None:
        row = cur.execute(self._queries["version"]).fetchone()
        if row is None:
            return None
        try:
            return int(row[0])
        except ValueError:
            raise LedgerError(
                f"the ledger at {self.url} has schema_version {row[0]!r}, which is not a number"
            ) from None

    def _refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger at {self.url} has schema version {version}, written by a newer meterline "
                f"(this one knows version {SCHEMA_VERSION}); upgrade meterline to use it"
            )

    def _migrate(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        """Apply the forward migrations, once, however many processes open the store at once."""
        from psycopg import errors  # noqa: PLC0415 - the postgres extra, loaded when used

        try:
            with cur.connection.transaction():  # a savepoint: a missing table is not an error here
                version = self._version(cur)
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            version = None
        self._refuse_newer(version)
        if version == SCHEMA_VERSION:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        if self._schema:
            try:
                with cur.connection.transaction():
                    cur.execute(self._queries["create_schema"])
            except (errors.DuplicateSchema, errors.UniqueViolation):
                # Created meanwhile: an advisory lock does not refresh this session's catalog
                # cache, so IF NOT EXISTS may miss a schema another process just committed.
                pass
        cur.execute(self._queries["create_meta"])
        version = self._version(cur) or 0  # again: another process may have migrated meanwhile
        self._refuse_newer(version)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for index in range(len(_MIGRATIONS[target])):
                cur.execute(self._queries[f"migrate_{target}_{index}"])
        cur.execute(self._queries["set_version"], (str(SCHEMA_VERSION),))

    # ----------------------------------------------------------------------------------------
    # LedgerBackend

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once; return how many were new."""
        if not events:
            return 0
        unique = list({event.id: event for event in reversed(events)}.values())  # first of each id

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            dims_json: dict[int, tuple[Mapping[str, str], str]] = {}  # a scope's events share dimensions
            texts: dict[str, str] = {}  # and their model, provider, price version…
            with cur.copy(self._queries["copy"]) as copy:
                # In chunks: the server parses one while Python formats the next.
                for start in range(0, len(unique), _COPY_CHUNK):
                    chunk = unique[start : start + _COPY_CHUNK]
                    copy.write("".join([_copy_line(event, dims_json, texts) for event in chunk]))
            result = cur.execute(self._queries["write"]).fetchone()
            return 0 if result is None else int(result[0])

        return self._run(work)

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Granularity | None = None,
    ) -> list[LedgerRow]:
        """Add up the stored events from the hourly roll-ups, sorted by cost, highest first."""
        by = check_names(by, "by")
        filters = where_filters(where)
        if granularity is not None and granularity not in _PERIODS:
            raise ConfigurationError(f"granularity={granularity!r}: expected 'hour', 'day', 'month' or None")
        fields = [name for name in by if name in _FIELDS]
        dims_needed = any(name not in _FIELDS for name in (*by, *filters))
        select = [
            _PERIODS[granularity] if granularity else "NULL::bigint",
            *fields,
            "dimensions" if dims_needed else "NULL::text",
            *_TOTAL_SUMS,
        ]
        conditions: list[str] = []
        params: list[Any] = []
        if since is not None:
            conditions.append("hour >= %s")
            params.append(hour_of(_ns(since)))
        if until is not None:
            conditions.append("hour < %s")
            params.append(hour_of(_ns(until)))
        for name, allowed in filters.items():
            if name in _FIELDS:
                # Columns hold strings only ('' for a missing provider or model).
                values = [_escape(value) for value in allowed if type(value) is str and value]
                if None in allowed and name in _OPTIONAL_FIELDS:
                    values.append("")
                if not values:
                    return []
                conditions.append(f"{name} = ANY(%s)")
                params.append(values)
        groups = ", ".join(str(index) for index in range(1, len(fields) + 3))
        text = (
            f"SELECT {', '.join(select)} FROM {{rollup}}"  # noqa: S608 - column names from constants
            f"{' WHERE ' + ' AND '.join(conditions) if conditions else ''} GROUP BY {groups}"
        )
        # Fixed text: column names come from _FIELDS and ROLLUP_SUMS, never from the caller.
        query = _compose(text, self._names)

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return cur.execute(query, params).fetchall()

        return _rows(self._run(work), by, filters, fields)

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """Stream the stored events in id (time) order, a page at a time (constant memory)."""
        conditions = ["id > %s"]
        bounds: list[Any] = []
        if since is not None:
            conditions.append("time_ns >= %s")
            bounds.append(_ns(since))
        if until is not None:
            conditions.append("time_ns < %s")
            bounds.append(_ns(until))
        text = (  # column names from constants, values are parameters
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM {{events}} WHERE {' AND '.join(conditions)}"  # noqa: S608
            f" ORDER BY id LIMIT {_PAGE}"
        )
        query = _compose(text, self._names)
        cursor = "" if after_id is None else _escape(after_id)
        while True:

            def page(cur: psycopg.Cursor[tuple[Any, ...]], after: str = cursor) -> list[tuple[Any, ...]]:
                return cur.execute(query, [after, *bounds]).fetchall()

            rows = self._run(page)
            for row in rows:
                data = dict(zip(EVENT_COLUMNS, row, strict=True))
                for name in _TEXT_COLUMNS:
                    data[name] = _unescape(data[name])
                if data["cost"] is not None:
                    data["cost"] = tidy(data["cost"])
                yield event_from_row(data)
            if len(rows) < _PAGE:
                return
            cursor = rows[-1][0]

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``, and the roll-up hours that end by then."""
        before_ns = _ns(before)

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            cur.execute(self._queries["prune_events"], (before_ns,))
            removed = cur.rowcount
            cur.execute(self._queries["prune_rollup"], (hour_of(before_ns),))
            return removed

        return self._run(work)

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """Set new (id, cost, price_version) on stored events, keeping the previous ones for audit."""
        if not events:
            return 0
        latest = {event_id: (cost, version) for event_id, cost, version in events}

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            with cur.copy(self._queries["copy_reprice"]) as copy:
                for event_id, (cost, version) in latest.items():
                    copy.write_row(
                        (
                            _escape(event_id),
                            None if cost is None else str(cost),
                            pico_of(cost),
                            None if version is None else _escape(version),
                        )
                    )
            result = cur.execute(self._queries["reprice"]).fetchone()
            return 0 if result is None else int(result[0])

        return self._run(work)

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> tuple[int, tuple[Any, ...]]:
            version = self._version(cur) or 0
            row = cur.execute(self._queries["stats"]).fetchone()
            assert row is not None
            return version, row

        version, (events, first, last, rollup_rows) = self._run(work)
        return LedgerStats(
            url=self.url,
            schema_version=version,
            events=int(events),
            first_time=None if first is None else _time(int(first)),
            last_time=None if last is None else _time(int(last)),
            rollup_rows=int(rollup_rows),
        )

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        """Close the connection for good (the lock held)."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"PostgresLedger({self.url!r}, schema={self._schema!r})"


# --------------------------------------------------------------------------------------------
# helpers


def _compose(text: str, names: Mapping[str, sql.Identifier]) -> sql.Composed:
    """``text`` (fixed SQL, never caller input) with the quoted table names filled in."""
    from psycopg import sql as pgsql  # noqa: PLC0415 - the postgres extra, loaded when used

    return pgsql.SQL(text).format(**names)


def _rollback(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    if not conn.closed:
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a broken connection cannot roll back; it is replaced
            conn.close()


def connection_options(
    url: str, schema: str | None, connect_timeout: float
) -> tuple[str, str, str | None, int]:
    """``(driver URL, public URL, schema, timeout in whole seconds)`` for a PostgreSQL store.

    Shared by the ledger and the budget store. The schema is an identifier (it is quoted
    into SQL as one); the extra ``postgres`` must be installed.

    Raises:
        ConfigurationError: on a schema that is not a lower-case identifier.
        MissingExtraError: without psycopg.
    """
    if schema is not None and (type(schema) is not str or not DIMENSION_NAME.fullmatch(schema)):
        raise ConfigurationError(
            f"schema={schema!r}: expected an identifier ([a-z_][a-z0-9_]*, at most 63 characters)"
        )
    require("postgres", "psycopg")  # a clear MissingExtraError; later imports are then local
    return _driver_url(url), _public_url(url), schema, max(2, round(connect_timeout))


def _driver_url(url: str) -> str:
    """``url`` as libpq takes it (``postgresql+psycopg://`` becomes ``postgresql://``)."""
    if type(url) is not str or not url.strip():
        raise ConfigurationError(f"url={url!r}: expected postgresql://user@host/database")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().startswith("postgresql+"):
        return "postgresql://" + rest
    return url


def _public_url(url: str) -> str:
    """``url`` without its password (in the authority or a ``password`` parameter)."""
    url = _driver_url(url)
    if "://" not in url:  # a key=value conninfo string
        from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415 - extra loaded

        try:
            params = conninfo_to_dict(url)
        except Exception:  # noqa: BLE001 - an unparsable string is reported by connect; hide it all
            return "postgresql://?"
        params.pop("password", None)
        return make_conninfo("", **params)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _ns(moment: datetime) -> int:
    """``moment`` in nanoseconds since the epoch (a naive datetime is UTC)."""
    return (utc(moment) - _EPOCH) // _MICROSECOND * 1000


def _time(time_ns: int) -> datetime:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)


def _rows(
    records: list[tuple[Any, ...]],
    by: tuple[str, ...],
    filters: Mapping[str, frozenset[object]],
    fields: list[str],
) -> list[LedgerRow]:
    """Group roll-up records by period and ``by``, keeping those the dimension filters allow."""
    field_index = {name: 1 + index for index, name in enumerate(fields)}
    dims_index = 1 + len(fields)
    sums_index = dims_index + 1
    dim_filters = {name: allowed for name, allowed in filters.items() if name not in _FIELDS}
    parsed: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        dims: dict[str, Any] = {}
        if record[dims_index] is not None:
            text = record[dims_index]
            dims = parsed[text] if text in parsed else parsed.setdefault(text, json.loads(text))
            if any(dims.get(name) not in allowed for name, allowed in dim_filters.items()):
                continue
        key = tuple(
            _field_value(name, record[field_index[name]]) if name in field_index else dims.get(name)
            for name in by
        )
        sums = record[sums_index:]
        group = groups.get((record[0], key))
        if group is None:
            groups[(record[0], key)] = list(sums)
        else:
            for index, value in enumerate(sums):
                group[index] += value
    rows = [_row(period, key, sums) for (period, key), sums in groups.items()]
    rows.sort(key=_order)
    return rows


def _field_value(name: str, value: str) -> str | None:
    return None if name in _OPTIONAL_FIELDS and value == "" else _unescape(value)


def _escape(text: str) -> str:
    """``text`` as a text column stores it (see `_ESC`)."""
    if "\x00" in text or _ESC in text:
        return text.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")
    return text


def _unescape(text: str | None) -> str | None:
    """The inverse of `_escape`."""
    if text is None or _ESC not in text:
        return text
    return _ESCAPED.sub(lambda match: "\x00" if match[1] == "0" else match[1], text)


_COPY_TEXT: Final = {
    ord("\\"): "\\\\",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    0: _ESC + "0",
    ord(_ESC): _ESC + _ESC,
}
"""COPY's text format escapes, plus `_escape`'s (a no-op on JSON, which escapes NUL and U+FFFF)."""
_COPY_SPECIAL: Final = re.compile("[\\\\\t\n\r\x00\uffff]")
_USAGE_OF: Final = attrgetter(*USAGE_FIELDS)
_NO_USAGE: Final = "\t".join("0" * (1 + len(USAGE_FIELDS)))  # measured, then the counts


def _copy_line(
    event: UsageEvent, dims_json: dict[int, tuple[Mapping[str, str], str]], texts: dict[str, str]
) -> str:
    """The line of COPY text that stores ``event``: `event_to_row`'s row, written out fast.

    Equal to formatting ``event_to_row(event)`` (a test checks it), but the dimensions' JSON
    is made once per dimensions object of the batch (``dims_json``), the fields that repeat
    from event to event (operation, status, provider, model, price version) are escaped once
    per batch (``texts``), and the cost columns come from integers (`cost_columns`).
    """
    usage = event.usage
    cost, pico = cost_columns(event)
    dims = event.dimensions
    cached = dims_json.get(id(dims))
    if cached is not None and cached[0] is dims:
        dimensions = cached[1]
    else:
        dimensions = _copy_text(json.dumps(dict(dims), sort_keys=True, separators=(",", ":")))
        dims_json[id(dims)] = (dims, dimensions)  # holding dims keeps its id unique
    repeated = []
    for value in (event.operation, event.status, event.provider, event.model, event.price_version):
        if value is None:
            repeated.append(_NULL)
            continue
        text = texts.get(value)
        if text is None:
            text = texts[value] = _copy_text(value)
        repeated.append(text)
    operation, status, provider, model, price_version = repeated
    links = event.links
    latency = event.latency_ms
    time_ns = event.time_ns
    return (
        f"{_copy_text(event_id(event))}\t{time_ns}\t{hour_of(time_ns)}\t{operation}\t{status}"
        f"\t{provider}\t{model}\t{_copy_text(event.request_model)}"
        f"\t{_NO_USAGE if usage is None else _USAGE_LINE % _USAGE_OF(usage)}"
        f"\t{_NULL if cost is None else cost}\t{_NULL if pico is None else pico}"
        f"\t{price_version}\t{_NULL if latency is None else repr(float(latency))}"
        f"\t{dimensions}\t{_copy_text(event.operation_id)}\t{event.attempt}"
        f"\t{_copy_text(event.response_id)}"
        f"\t{_copy_text(json.dumps(list(links), separators=(',', ':'))) if links else '[]'}"
        f"\t{event.tokens_saved}\n"
    )


_NULL: Final = "\\N"
_USAGE_LINE: Final = "1\t" + "\t".join(["%d"] * len(USAGE_FIELDS))


def _copy_text(value: str | None) -> str:
    if value is None:
        return _NULL
    return value.translate(_COPY_TEXT) if _COPY_SPECIAL.search(value) else value


def _row(period: int | None, key: tuple[str | None, ...], sums: list[Any]) -> LedgerRow:
    values = dict(zip(ROLLUP_SUMS, sums, strict=True))
    pico = values["cost_pico"]
    return LedgerRow(
        key=key,
        period=None if period is None else datetime.fromtimestamp(int(period), tz=UTC),
        events=int(values["events"]),
        unmeasured=int(values["unmeasured"]),
        unpriced=int(values["unpriced"]),
        usage=Usage(**{name: int(values[name]) for name in USAGE_FIELDS}),
        cost=atto_to_decimal(int(pico) * _ATTO_PER_PICO),
        latency_ms=float(values["latency_ms"] or 0.0),
        tokens_saved=int(values["tokens_saved"]),
    )


def _order(row: LedgerRow) -> tuple[Any, ...]:
    """Highest cost first, then most events, then key (``None`` first) and period: a stable order."""
    return (
        -row.cost,
        -row.events,
        tuple((value is not None, value or "") for value in row.key),
        row.period or _EPOCH,
    )
