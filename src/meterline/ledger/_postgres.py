"""The PostgreSQL ledger (extra ``postgres``): many processes and hosts share one store.

One connection per ledger, guarded by a lock; every method is one transaction, and a broken
connection is reopened once. A batch is copied into a temporary table (its dimension sets
and their values into two others) and the values and keys not stored yet are stored, then a
single statement inserts the events that are new (``ON CONFLICT DO NOTHING``) and adds *only
those* to the roll-ups, so concurrent writers of overlapping batches store and count every
event once. The tables and their fixed SQL are `meterline.ledger._postgres_schema`'s, their
migrations `meterline.ledger._postgres_migrations`', the COPY text of a batch
`meterline.ledger._postgres_copy`'s, the reports `meterline.ledger._postgres_reports`'.
"""

from __future__ import annotations as _annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar

from meterline._money import tidy
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
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import Granularity, LedgerRow, LedgerStats
from meterline.ledger._groups import DAY, WIDTH, Query, month_of
from meterline.ledger._postgres_arrow import event_batches, fast_reader_installed, json_texts
from meterline.ledger._postgres_copy import TEXT_COLUMNS, DimensionSets, copy_row, escape, unescape
from meterline.ledger._postgres_migrations import ADD_DAYS_V5, ADD_MONTHS_V5, MIGRATIONS, OLD_ROLLUP_DAYS
from meterline.ledger._postgres_reports import read_totals
from meterline.ledger._postgres_rollups import SPREAD_QUERIES, Spread, fold_days, migrate_v5
from meterline.ledger._postgres_schema import EVENT_READ, FOLDED, QUERIES, TEMPORARY_TABLES, VERSION
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    ROLLUP_SUMS,
    event_from_row,
    hour_of,
    json_pages,
    nanoseconds,
    pico_of,
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
_RETRIES: Final = 3
"""Attempts of a transaction that lost a deadlock or serialisation race."""
_NS: Final = 1_000_000_000
_DAY_NS: Final = DAY * _NS
_log: Final = logging.getLogger("meterline")
_UNPRICED: Final = ROLLUP_SUMS.index("unpriced")
_TEXT_AT: Final = tuple(EVENT_COLUMNS.index(name) for name in TEXT_COLUMNS)
_COST_AT: Final = EVENT_COLUMNS.index("cost")
_PICO: Final = ROLLUP_SUMS.index("cost_pico")


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
            "rollup": table("meterline_rollup_hour"),  # version 4's, keyed by the dimension set
            "nodims": table("meterline_rollup_hour_nodims"),
            "dim_day": table("meterline_rollup_dim_day"),
            "dim_month": table("meterline_rollup_dim_month"),
            "day_total": table("meterline_rollup_dim_day_total"),
            "dim_values": table("meterline_dim_values"),
            "rollup_keys": table("meterline_rollup_keys"),
            "dim_day_pkey": table("meterline_rollup_dim_day_pkey"),  # versions 5 to 7's, renamed by 8
            "dim_month_pkey": table("meterline_rollup_dim_month_pkey"),
            "dim_day_by_day": table("meterline_rollup_dim_day_by_day"),
            "dim_day_v7": table("meterline_rollup_dim_day_v7"),
            "dim_month_v7": table("meterline_rollup_dim_month_v7"),
            "meta": table("meterline_meta"),
            "hour_index": table("meterline_events_hour"),
            "events_pkey": table("meterline_events_pkey"),
            "events_v3": table("meterline_events_v3"),
            "ensure_partition": table("meterline_ensure_partition"),
            "drop_partitions": table("meterline_drop_partitions"),
            "day_brin": table("meterline_rollup_dim_day_days"),  # versions 8 to 10's, dropped by 11
            "schema": pgsql.Identifier(schema or "public"),
            "schema_name": pgsql.Literal(schema or "public"),
        }

        def render(text: str) -> bytes:
            return bytes(pgsql.SQL(text).format(**names).as_bytes(conn))

        if not self._queries:
            queries = {
                **META_QUERIES,
                **QUERIES,
                **SPREAD_QUERIES,
                "add_days_v5": ADD_DAYS_V5,
                "add_months_v5": ADD_MONTHS_V5,
                "old_rollup_days": OLD_ROLLUP_DAYS,
                "drop_old_rollup": "DROP TABLE {rollup}",
            }
            for version, statements in MIGRATIONS.items():
                for index, statement in enumerate(statements):
                    queries[f"migrate_{version}_{index}"] = statement
            self._queries = {name: render(text) for name, text in queries.items()}
            self._names = names
        with conn.cursor() as cur:
            for temporary in TEMPORARY_TABLES:  # fixed text: column lists from constants
                cur.execute(pgsql.SQL(f"CREATE TEMP TABLE IF NOT EXISTS {temporary} ON COMMIT DELETE ROWS"))
            # No JIT: the write's one statement over temporary tables (no statistics) is
            # estimated dear enough to compile, which took 0.75 s of its 1.05 s per 5,000 events.
            cur.execute("SET jit = off")
            # Reports read their rows through server-side cursors (bounded memory) but want
            # them all: plan for the whole result, not for the first rows.
            cur.execute("SET cursor_tuple_fraction = 1.0")
            # A write sorts each event once per value (5,000 events: 22,000 rows) to add them up
            # by value in key order: within the default 4 MB they spilled to disk (41 → 13 ms).
            cur.execute("SET work_mem = '32MB'")
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
            steps={5: lambda cur: migrate_v5(cur, self._queries)},
        )

    # ----------------------------------------------------------------------------------------
    # LedgerBackend

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once; return how many were new."""
        if not events:
            return 0
        unique = list({event.id: event for event in reversed(events)}.values())  # first of each id

        times = [event.time_ns for event in unique]
        days = {time_ns // _DAY_NS for time_ns in times}  # a batch's few days: a month each, not an event
        months = sorted({month_of(day * DAY) for day in days})
        oldest = min(times) // _NS

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> tuple[int, int]:
            # Shared with other writers, exclusive to a fold, a prune and re-pricing, and
            # taken first (their order too): no day is folded while a batch that adds to it is
            # uncommitted (a fold would not see its rows), and no value this batch finds
            # stored is deleted by a prune before the batch's rows refer to it.
            folded = self._folded(cur, "folded_share")
            for month in months:  # the monthly partitions the batch needs (one query each, usually one)
                cur.execute(self._queries["ensure_partition"], (month,))
            sets = DimensionSets()  # a scope's events share dimensions
            texts: dict[str, str] = {}  # and their model, provider, price version…
            with cur.copy(self._queries["copy"]) as copy:
                # psycopg sends the rows as its buffer fills: the server parses while we go on.
                for event in unique:
                    copy.write_row(copy_row(event, sets, texts))
            if sets.lines:
                with cur.copy(self._queries["copy_dims"]) as copy:
                    copy.write("".join(sets.lines))
                with cur.copy(self._queries["copy_values"]) as copy:
                    copy.write("".join(sets.values))
                cur.execute(self._queries["new_values"])
                cur.execute(self._queries["new_keys"])
            if oldest < folded:
                result = cur.execute(self._queries["write_late"], (folded, folded)).fetchone()
            else:
                result = cur.execute(self._queries["write"]).fetchone()
            return (0 if result is None else int(result[0])), folded

        stored, folded = self._run(work, timeout=self.timeout)
        newest = max(times) // _NS
        today = newest - newest % DAY
        if today > folded:  # a day has passed since the last fold: add the days before it into months

            def fold(cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
                start = self._folded(cur, "folded_update")  # waits for the writers holding it shared
                if today > start:
                    fold_days(cur, self._queries, start, today)

            try:
                self._run(fold, timeout=self.timeout)
            except LedgerError as exc:  # the batch is stored: the next write folds these days
                _log.warning("meterline: folding days into the PostgreSQL monthly roll-up failed: %s", exc)
        return stored

    def _folded(self, cur: psycopg.Cursor[tuple[Any, ...]], query: str) -> int:
        """The first day (seconds) not yet in the monthly roll-up, its row locked by ``query``."""
        row = cur.execute(self._queries[query]).fetchone()
        if row is None:
            raise LedgerError(f"the ledger at {self.url} has no {FOLDED!r} in its meta table")
        return int(row[0])

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
        """Add up the stored events (from the roll-ups where they answer), sorted by cost, highest first."""
        query = Query.checked(by, where, since, until, granularity, limit)
        names = self._names

        def compose(text: str) -> sql.Composed:
            return _compose(text, names)

        return self._run(lambda cur: read_totals(cur, compose, query, self._folded(cur, "folded")))

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """Stream the stored events in id (time) order, a page at a time (constant memory)."""
        for page in self.event_rows(since=since, until=until, after_id=after_id, page=_PAGE):
            for row in page:
                yield event_from_row(dict(zip(EVENT_COLUMNS, row, strict=True)))

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
        ``dimensions`` and ``links`` are JSON text, ``cost`` decimal text or ``None``, text
        columns as written (their NUL escape undone); the bounds as `events`'. Each page is
        read in a transaction of its own (keyset pagination: constant memory).
        Raises `LedgerError`.
        """
        conditions = ["id > %s"]
        bounds: list[Any] = []
        if since is not None:
            conditions.append("time_ns >= %s")
            bounds.append(nanoseconds(since))
        if until is not None:
            conditions.append("time_ns < %s")
            bounds.append(nanoseconds(until))
        text = (  # column names from constants, values are parameters
            f"SELECT {EVENT_READ} FROM {{events}} WHERE {' AND '.join(conditions)}"  # noqa: S608
            " ORDER BY id LIMIT %s"
        )
        query = _compose(text, self._names)
        cursor = "" if after_id is None else escape(after_id)
        while True:

            def read(cur: psycopg.Cursor[tuple[Any, ...]], after: str = cursor) -> list[tuple[Any, ...]]:
                return cur.execute(query, [after, *bounds, page]).fetchall()

            rows = self._run(read)
            if not rows:
                return
            last = rows[-1][0]
            for index, row in enumerate(rows):
                values = list(row)
                for at in _TEXT_AT:
                    values[at] = unescape(values[at])
                if values[_COST_AT] is not None:
                    values[_COST_AT] = str(tidy(values[_COST_AT]))
                rows[index] = tuple(values)
            yield rows
            if len(rows) < page:
                return
            cursor = last

    def arrow_batches(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[Any]:
        """The stored events as Arrow record batches, in id order (extra ``analytics``).

        The batches have the Parquet export's columns and types (`arrow_schema`, without the
        ``day`` partition). They are read in one snapshot, on a connection of their own, by
        ADBC's PostgreSQL driver (`meterline.ledger._postgres_arrow`); the bounds are `events`'.

        Raises:
            MissingExtraError: ADBC's PostgreSQL driver or pyarrow is not installed.
            LedgerError: the server failed or cannot be reached.
        """
        events, values, conditions = self._arrow_query(since, until)
        return event_batches(self._conninfo, events, values, conditions=conditions)

    def _arrow_query(self, since: datetime | None, until: datetime | None) -> tuple[str, str, list[str]]:
        """The quoted events and values tables, and the conditions of a range (integers written in)."""
        conditions = [
            f"time_ns {operator} {int(nanoseconds(bound))}"
            for bound, operator in ((since, ">="), (until, "<"))
            if bound is not None
        ]
        events, values = (self._names[name].as_string(None) for name in ("events", "dim_values"))
        return events, values, conditions

    def json_lines(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[str]:
        """The stored events as JSON lines, many lines per string, in id order (constant memory).

        Each line is ``json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True)`` of
        the event `events` would give, written from its row (`event_json_line`): with the extra
        ``analytics`` and no ``after_id``, by Arrow kernels over columns ADBC's PostgreSQL driver
        read in one snapshot (`meterline.ledger._postgres_arrow`); else from raw rows, a page
        per transaction. The bounds are `events`'. Raises `LedgerError`.
        """
        if after_id is not None or not fast_reader_installed():  # an id is a parameter: pages of rows
            return json_pages(self.event_rows(since=since, until=until, after_id=after_id, page=_PAGE))
        events, values, conditions = self._arrow_query(since, until)
        return json_texts(self._conninfo, events, values, conditions=conditions)

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``, and take them out of every roll-up.

        The months that end by then go whole: their partitions are dropped (no row by row
        delete, no table bloat); the rest of the events before ``before`` are deleted. Roll-up
        rows of hours, days and months that end by then are deleted; those of the hour, day
        and month ``before`` falls in lose the events before it (read from the events of that
        month up to ``before``), so reports equal the events kept.
        """
        before_ns = nanoseconds(before)
        seconds = before_ns // 1_000_000_000
        hour, day, month = hour_of(before_ns), seconds - seconds % DAY, month_of(seconds)

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            spread = Spread(days_from=day, months_until=self._folded(cur, "folded_update"))
            if month * _NS < before_ns:
                for record in cur.execute(self._queries["prune_spread"], (month * _NS, before_ns)):
                    spread.add(record)
                cur.execute(self._queries["prune_hour"], (hour * _NS, before_ns))
            cur.execute(self._queries["prune_hours"], (hour,))
            spread.apply(cur, self._queries)
            cur.execute(self._queries["prune_days"], (day, day))
            cur.execute(self._queries["prune_months"], (month, month))
            cur.execute(self._queries["prune_day_totals"], (day, day))
            row = cur.execute(self._queries["drop_partitions"], (before_ns,)).fetchone()
            dropped = 0 if row is None else int(row[0])  # whole months: their partitions dropped
            cur.execute(self._queries["prune_events"], (before_ns,))
            dropped += cur.rowcount
            cur.execute(self._queries["prune_values"])
            return dropped

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
            changed = 0
            spread = Spread(months_until=self._folded(cur, "folded_update"))
            for day, operation, status, provider, model, dims, count, unpriced, pico in cur.execute(
                self._queries["reprice"]
            ):
                changed += count
                sums: list[Any] = [0] * WIDTH
                sums[_UNPRICED], sums[_PICO] = unpriced, pico
                spread.add((day, operation, status, provider, model, dims, *sums))
            spread.apply(cur, self._queries)
            return changed

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

        version, (events, first, last, rollup_rows, values) = self._run(work, timeout=self.timeout)
        return LedgerStats(
            url=self.url,
            schema_version=version,
            events=int(events),
            first_time=None if first is None else _time(int(first)),
            last_time=None if last is None else _time(int(last)),
            rollup_rows=int(rollup_rows),
            dimension_values=int(values),
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


def _compose(text: str, names: Mapping[str, sql.Composable]) -> sql.Composed:
    """``text`` (fixed SQL, never caller input) with the quoted table names filled in."""
    from psycopg import sql as pgsql  # noqa: PLC0415 - the postgres extra, loaded when used

    return pgsql.SQL(text).format(**names)


def _time(time_ns: int) -> datetime:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
