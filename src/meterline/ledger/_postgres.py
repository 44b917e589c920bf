"""The PostgreSQL ledger (extra ``postgres``): many processes and hosts share one store.

One connection per ledger, guarded by a lock; every method is one transaction, and a broken
connection is reopened once. A batch is copied into a temporary table, then a single
statement inserts the events that are new (``ON CONFLICT (id) DO NOTHING``) and adds *only
those* to the hourly roll-ups, so concurrent writers of overlapping batches store and count
every event once. The tables and their fixed SQL are `meterline.ledger._postgres_schema`'s;
the COPY text of a batch is `meterline.ledger._postgres_copy`'s.
"""

from __future__ import annotations as _annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar

from meterline._dimensions import check_names, where_filters
from meterline._money import tidy, to_usd
from meterline._storage import (
    META_QUERIES,
    Deadline,
    check_bound,
    deadline,
    is_lost_race,
    postgres_migrate,
    postgres_options,
    postgres_rollback,
    postgres_schema_version,
    scrub,
)
from meterline._usage import USAGE_FIELDS, Usage
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import Granularity, LedgerRow, LedgerStats
from meterline.ledger._postgres_copy import TEXT_COLUMNS, copy_line, escape, field_value, unescape
from meterline.ledger._postgres_schema import (
    BYTE_ORDER,
    EVENT_TYPES,
    FIELDS,
    MIGRATIONS,
    OPTIONAL_FIELDS,
    PERIODS,
    REPRICE,
    TOTAL_SUMS,
    VERSION,
    WRITE,
)
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
    dimensions_of,
    event_from_row,
    hour_of,
    pico_of,
    utc,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from meterline._events import UsageEvent

__all__ = ["PostgresLedger"]

_T = TypeVar("_T")

"""Dimension and schema names: identifiers (never put in SQL text unquoted)."""
_LOCK_KEY: Final = 0x6D65_7465_726C_696E  # "meterlin": serialises migrations of every process
_PAGE: Final = 1000
"""Events per page of `PostgresLedger.events` (keyset pagination: constant memory)."""
_COPY_CHUNK: Final = 500
"""Events formatted and sent at a time while copying a batch."""
_RETRIES: Final = 3
"""Attempts of a transaction that lost a deadlock or serialisation race."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class PostgresLedger:
    """A `LedgerBackend` on PostgreSQL, through psycopg 3.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?options]``.
        schema: A PostgreSQL schema to keep the tables in (created if missing), for example
            one per tenant or per test; ``None`` uses the connection's ``search_path``.
        connect_timeout: Seconds to wait for the server (at least 2, libpq's minimum).
        timeout: Longest a `write` (or `stats`, the writer's probe) may wait for the server,
            in seconds (``None``: no bound).
            A server that does not answer in time (stopped, paused, partitioned) has its
            connection cut: the write raises `LedgerError` and the writer spools the batch.
        durable: ``True``: each session sets ``synchronous_commit = on``, so a commit returns
            only once the server has flushed it to its WAL (and to synchronous standbys), even
            where a server, database or role default turned it off. ``False`` (default): the
            server's own setting applies (``on`` unless changed).

    Raises:
        ConfigurationError: when ``schema`` is not an identifier.
        LedgerError: when the server cannot be reached, or the store was written by a newer
            meterline.
        MissingExtraError: when psycopg is not installed (extra ``postgres``).
    """

    url: str
    """Where the ledger is, without the password."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
        timeout: float | None = 5.0,
        durable: bool = False,
    ) -> None:
        if type(durable) is not bool:
            raise ConfigurationError(f"durable={durable!r}: expected True or False")
        self.timeout = check_bound(timeout)
        """Longest a write waits for the server, in seconds (``None``: no bound)."""
        self.durable = durable
        """Whether each session insists on ``synchronous_commit = on``."""
        self._conninfo, self.url, self._schema, self._timeout = postgres_options(url, schema, connect_timeout)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._closed = False
        self._queries: dict[str, bytes] = {}
        self._names: dict[str, sql.Composable] = {}
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
            raise LedgerError(
                scrub(f"cannot connect to the PostgreSQL ledger at {self.url}: {exc}", self._conninfo)
            ) from exc
        try:
            self._prepare(conn)
        except pg.Error as exc:
            conn.close()
            raise LedgerError(
                scrub(f"cannot prepare the PostgreSQL ledger at {self.url}: {exc}", self._conninfo)
            ) from exc
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
            "events_pkey": table("meterline_events_pkey"),
            "events_v3": table("meterline_events_v3"),
            "ensure_partition": table("meterline_ensure_partition"),
            "drop_partitions": table("meterline_drop_partitions"),
            "schema": pgsql.Identifier(schema or "public"),
            "schema_name": pgsql.Literal(schema or "public"),
        }

        def render(text: str) -> bytes:
            return bytes(pgsql.SQL(text).format(**names).as_bytes(conn))

        if not self._queries:
            queries = {
                **META_QUERIES,
                "write": WRITE,
                "reprice": REPRICE,
                "copy": f"COPY pg_temp.meterline_incoming ({', '.join(EVENT_COLUMNS)}) FROM STDIN",
                "copy_reprice": "COPY pg_temp.meterline_repricing"
                " (id, cost, cost_pico, price_version) FROM STDIN",
                "prune_events": "DELETE FROM {events} WHERE time_ns < %s",
                "ensure_partition": "SELECT {ensure_partition}(%s)",
                "drop_partitions": "SELECT {drop_partitions}(%s)",
                "prune_rollup": "DELETE FROM {rollup} WHERE hour < %s",
                "stats": "SELECT count(*), min(time_ns), max(time_ns), (SELECT count(*) FROM {rollup})"
                " FROM {events}",
            }
            for version, statements in MIGRATIONS.items():
                for index, statement in enumerate(statements):
                    queries[f"migrate_{version}_{index}"] = statement
            self._queries = {name: render(text) for name, text in queries.items()}
            self._names = names
        incoming = ", ".join(
            f"{name} {kind}{BYTE_ORDER if name == 'id' else ''}" for name, kind in EVENT_TYPES.items()
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
            if self.durable:
                cur.execute("SET synchronous_commit = on")
        conn.commit()

    def _run_locked(
        self, work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T], *, timeout: float | None = None
    ) -> _T:
        """Run ``work`` in one transaction (the lock held); reconnect once, retry lost races.

        ``timeout`` bounds the transaction (`deadline`): past it the connection is cut, and
        the work is not repeated.
        """
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        if self._closed:
            raise LedgerError(f"the ledger at {self.url} is closed")
        reconnected = False
        attempt = 0
        while True:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            conn = self._conn
            bound: Deadline | None = None
            try:
                with deadline(conn.pgconn.socket, timeout) as bound, conn.cursor() as cur:
                    result = work(cur)
                    conn.commit()
            except pg.Error as exc:
                postgres_rollback(conn)
                if bound is not None and bound.cut:
                    conn.close()
                    raise LedgerError(
                        f"the PostgreSQL ledger at {self.url} did not answer within {bound.seconds:g} s"
                        " (timeout=): the connection was cut"
                    ) from exc
                if is_lost_race(exc):
                    attempt += 1
                    if attempt < _RETRIES:
                        continue
                elif isinstance(exc, pg.OperationalError) and conn.broken and not reconnected:
                    # The server went away (restart, idle timeout, failover): one fresh connection.
                    # Safe to repeat: writes are idempotent and re-pricing skips unchanged events.
                    conn.close()
                    self._conn = None
                    reconnected = True
                    continue
                message = scrub(f"PostgreSQL ledger at {self.url}: {exc}", self._conninfo)
                raise LedgerError(message) from exc
            except (UnicodeError, OverflowError) as exc:  # a value the driver cannot send (a lone surrogate)
                postgres_rollback(conn)
                raise LedgerError(f"PostgreSQL ledger at {self.url}: {exc}") from exc
            except BaseException:
                postgres_rollback(conn)
                raise
            else:
                return result

    def _run(
        self, work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T], *, timeout: float | None = None
    ) -> _T:
        with self._lock:
            return self._run_locked(work, timeout=timeout)

    # ----------------------------------------------------------------------------------------
    # schema

    def _migrate(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        """Apply the forward migrations, once, however many processes open the store at once."""
        postgres_migrate(
            cur,
            queries=self._queries,
            migrations=MIGRATIONS,
            lock_key=_LOCK_KEY,
            create_schema=self._schema is not None,
            error=LedgerError,
            what=f"the ledger at {self.url}",
        )

    # ----------------------------------------------------------------------------------------
    # LedgerBackend

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once; return how many were new."""
        if not events:
            return 0
        unique = list({event.id: event for event in reversed(events)}.values())  # first of each id

        months = sorted({_month_of(event.time_ns) for event in unique})

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            for month in months:  # the monthly partitions the batch needs (one query each, usually one)
                cur.execute(self._queries["ensure_partition"], (month,))
            dims_json: dict[int, tuple[Mapping[str, str], str]] = {}  # a scope's events share dimensions
            texts: dict[str, str] = {}  # and their model, provider, price version…
            with cur.copy(self._queries["copy"]) as copy:
                # In chunks: the server parses one while Python formats the next.
                for start in range(0, len(unique), _COPY_CHUNK):
                    chunk = unique[start : start + _COPY_CHUNK]
                    copy.write("".join([copy_line(event, dims_json, texts) for event in chunk]))
            result = cur.execute(self._queries["write"]).fetchone()
            return 0 if result is None else int(result[0])

        return self._run(work, timeout=self.timeout)

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
        if granularity is not None and granularity not in PERIODS:
            raise ConfigurationError(f"granularity={granularity!r}: expected 'hour', 'day', 'month' or None")
        fields = [name for name in by if name in FIELDS]
        dims_needed = any(name not in FIELDS for name in (*by, *filters))
        select = [
            PERIODS[granularity] if granularity else "NULL::bigint",
            *fields,
            "dimensions" if dims_needed else "NULL::text",
            *TOTAL_SUMS,
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
            if name in FIELDS:
                # Columns hold strings only ('' for a missing provider or model).
                values = [escape(value) for value in allowed if type(value) is str and value]
                if None in allowed and name in OPTIONAL_FIELDS:
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
        # Fixed text: column names come from FIELDS and ROLLUP_SUMS, never from the caller.
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
        cursor = "" if after_id is None else escape(after_id)
        while True:

            def page(cur: psycopg.Cursor[tuple[Any, ...]], after: str = cursor) -> list[tuple[Any, ...]]:
                return cur.execute(query, [after, *bounds]).fetchall()

            rows = self._run(page)
            for row in rows:
                data = dict(zip(EVENT_COLUMNS, row, strict=True))
                for name in TEXT_COLUMNS:
                    data[name] = unescape(data[name])
                if data["cost"] is not None:
                    data["cost"] = tidy(data["cost"])
                yield event_from_row(data)
            if len(rows) < _PAGE:
                return
            cursor = rows[-1][0]

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``, and the roll-up hours that end by then.

        The months that end by then go whole: their partitions are dropped (no row by row
        delete, no table bloat); the rest of the events before ``before`` are deleted.
        """
        before_ns = _ns(before)

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            row = cur.execute(self._queries["drop_partitions"], (before_ns,)).fetchone()
            dropped = 0 if row is None else int(row[0])  # whole months: their partitions dropped
            cur.execute(self._queries["prune_events"], (before_ns,))
            removed = dropped + cur.rowcount
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
                            escape(event_id),
                            None if cost is None else str(cost),
                            pico_of(cost),
                            None if version is None else escape(version),
                        )
                    )
            result = cur.execute(self._queries["reprice"]).fetchone()
            return 0 if result is None else int(result[0])

        return self._run(work)

    def stats(self) -> LedgerStats:
        """Counts and time range of what is stored."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> tuple[int, tuple[Any, ...]]:
            version = postgres_schema_version(
                cur,
                queries=self._queries,
                latest=VERSION,
                error=LedgerError,
                what=f"the ledger at {self.url}",
            )
            version = version or 0
            row = cur.execute(self._queries["stats"]).fetchone()
            assert row is not None
            return version, row

        version, (events, first, last, rollup_rows) = self._run(work, timeout=self.timeout)
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


def _month_of(time_ns: int) -> int:
    """The first second of the UTC month of ``time_ns`` (the partition the event goes in)."""
    moment = datetime.fromtimestamp(time_ns // 1_000_000_000, tz=UTC)
    return int(moment.replace(day=1, hour=0, minute=0, second=0).timestamp())


def _compose(text: str, names: Mapping[str, sql.Composable]) -> sql.Composed:
    """``text`` (fixed SQL, never caller input) with the quoted table names filled in."""
    from psycopg import sql as pgsql  # noqa: PLC0415 - the postgres extra, loaded when used

    return pgsql.SQL(text).format(**names)


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
    dim_filters = {name: allowed for name, allowed in filters.items() if name not in FIELDS}
    parsed: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        dims: dict[str, Any] = {}
        if record[dims_index] is not None:
            text = record[dims_index]
            dims = parsed[text] if text in parsed else parsed.setdefault(text, dimensions_of(text))
            if any(dims.get(name) not in allowed for name, allowed in dim_filters.items()):
                continue
        key = tuple(
            field_value(name, record[field_index[name]]) if name in field_index else dims.get(name)
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
        cost=to_usd(int(pico)),
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
