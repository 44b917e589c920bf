"""The PostgreSQL budget store (extra ``postgres``): processes on many hosts share one database.

Every counter has a row in ``meterline_budget_counters``. A reservation is one transaction
(READ COMMITTED) that creates the rows of its counters if they are missing, inserting them in
sorted order, then locks them with ``SELECT … ORDER BY budget, key FOR UPDATE``, so any two
transactions take their locks in the same order and never deadlock. Only then, in a new
statement (and so a new snapshot), it reads each counter's usage and live holds, checks, and
inserts its holds. Whoever reserves or settles against a counter holds its lock, so no check
can read a total that changes before the holds it books are committed: concurrent
reservations cannot overshoot. A settle takes the same locks, deletes the reservation's holds
and adds the usage in one transaction.

Budget names, keys and reservation ids are stored as JSON text (PostgreSQL text cannot hold
NUL, and JSON keeps every key tuple apart); SQL text is fixed at open, table names are quoted
identifiers, and every value is a parameter.
"""

from __future__ import annotations as _annotations

import json
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from meterline._storage import (
    META_QUERIES,
    Deadline,
    check_bound,
    deadline,
    is_lost_race,
    postgres_migrate,
    postgres_options,
    postgres_rollback,
    scrub,
)
from meterline.budgets._sqlite import SCHEMA_VERSION, decode_key, encode, matches
from meterline.budgets._store import COUNTER_MAX, METRICS, Line, Refusal, Vector, first_refusal
from meterline.exceptions import BudgetStoreError

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresBudgetStore"]

_T = TypeVar("_T")
_LOCK_KEY: Final = 0x6D65_7465_726C_6E62  # serialises migrations of every process
_RETRIES: Final = 3
"""Attempts of a transaction that lost a deadlock or serialisation race (a safety net)."""
_POOL: Final = 4
"""Idle connections kept per store and process."""
_SWEEP_EVERY: Final = 60.0
"""Seconds (of the callers' clock) between deletions of expired holds and buckets, per store."""

_BIGINTS: Final = ", ".join(f"{name} BIGINT NOT NULL" for name in METRICS)
# Sums saturate at COUNTER_MAX (sum() of bigints is numeric: it cannot overflow itself).
_SUMS: Final = (
    f"ARRAY[{', '.join(f'least(coalesce(sum({name}), 0), {COUNTER_MAX})' for name in METRICS)}]::bigint[]"
)
_COLUMNS: Final = ", ".join(METRICS)
_C: Final = ' COLLATE "C"'
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        f"CREATE TABLE {{counters}} (budget TEXT{_C} NOT NULL, key TEXT{_C} NOT NULL,"
        " PRIMARY KEY (budget, key))",
        f"CREATE TABLE {{usage}} (budget TEXT{_C} NOT NULL, key TEXT{_C} NOT NULL, bucket BIGINT NOT NULL,"
        f" {_BIGINTS}, expires_at DOUBLE PRECISION, PRIMARY KEY (budget, key, bucket))",
        "CREATE INDEX ON {usage} (expires_at) WHERE expires_at IS NOT NULL",
        f"CREATE TABLE {{holds}} (rid TEXT{_C} NOT NULL, budget TEXT{_C} NOT NULL, key TEXT{_C} NOT NULL,"
        f" {_BIGINTS}, expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (rid, budget, key))",
        "CREATE INDEX ON {holds} (budget, key, expires)",
        "CREATE INDEX ON {holds} (expires)",
        f"CREATE TABLE {{alerts}} (budget TEXT{_C} NOT NULL, key TEXT{_C} NOT NULL,"
        " window_start BIGINT NOT NULL,"
        " threshold BIGINT NOT NULL, PRIMARY KEY (budget, key, window_start, threshold))",
        f"CREATE TABLE {{definitions}} (budget TEXT{_C} PRIMARY KEY, spec TEXT NOT NULL)",
    ),
    # Cost in pico-dollars, meterline's one money unit (version 1 counted nano-dollars).
    2: (
        "UPDATE {usage} SET cost = cost * 1000 WHERE cost <> 0",
        "UPDATE {holds} SET cost = cost * 1000 WHERE cost <> 0",
    ),
}
"""Forward migrations: the statements that bring the budget tables from version ``n - 1`` to ``n``."""
assert max(_MIGRATIONS) == SCHEMA_VERSION

_LINES: Final = (
    "unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS w(b, k, f, l, i)"
)
_QUERIES: Final = {
    # Counter rows are created, then locked, in one order: (budget, key) in byte order.
    "add_counters": "INSERT INTO {counters} (budget, key) SELECT DISTINCT b, k"
    " FROM unnest(%s::text[], %s::text[]) AS w(b, k) ORDER BY b, k ON CONFLICT DO NOTHING",
    "lock_counters": "SELECT 1 FROM {counters} WHERE (budget, key) IN"
    " (SELECT b, k FROM unnest(%s::text[], %s::text[]) AS w(b, k)) ORDER BY budget, key FOR UPDATE",
    "state": f"SELECT (SELECT {_SUMS} FROM {{usage}} u"  # noqa: S608 - fixed text
    " WHERE u.budget = w.b AND u.key = w.k AND u.bucket BETWEEN w.f AND w.l),"
    f" (SELECT {_SUMS} FROM {{holds}} h WHERE h.budget = w.b AND h.key = w.k AND h.expires > %s)"
    f" FROM {_LINES} ORDER BY w.i",
    "used": f"SELECT (SELECT {_SUMS} FROM {{usage}} u"  # noqa: S608 - fixed text
    " WHERE u.budget = w.b AND u.key = w.k AND u.bucket BETWEEN w.f AND w.l)"
    f" FROM {_LINES} ORDER BY w.i",
    "hold": f"INSERT INTO {{holds}} (rid, budget, key, {_COLUMNS}, expires)"  # noqa: S608 - fixed text
    f" SELECT %s, b, k, {_COLUMNS}, %s FROM unnest(%s::text[], %s::text[],"
    f" {', '.join(['%s::bigint[]'] * len(METRICS))}) AS w(b, k, {_COLUMNS})"
    f" ON CONFLICT (rid, budget, key) DO UPDATE SET {', '.join(f'{m} = excluded.{m}' for m in METRICS)},"
    " expires = excluded.expires",
    "charge": f"INSERT INTO {{usage}} AS u (budget, key, bucket, {_COLUMNS}, expires_at)"  # noqa: S608
    f" SELECT b, k, bucket, {_COLUMNS}, e FROM unnest(%s::text[], %s::text[], %s::bigint[],"
    f" {', '.join(['%s::bigint[]'] * len(METRICS))}, %s::float8[]) AS w(b, k, bucket, {_COLUMNS}, e)"
    " ORDER BY b, k, bucket"
    " ON CONFLICT (budget, key, bucket) DO UPDATE SET"
    # Saturating: the counter stops at COUNTER_MAX (each amount is at most that) instead of failing.
    f" {', '.join(f'{m} = least(u.{m}, {COUNTER_MAX} - excluded.{m}) + excluded.{m}' for m in METRICS)},"
    " expires_at = excluded.expires_at",
    "drop_holds": "DELETE FROM {holds} WHERE rid = %s",
    "sweep_holds": "DELETE FROM {holds} WHERE expires <= %s",
    "sweep_usage": "DELETE FROM {usage} WHERE expires_at <= %s",
    "keys": "SELECT key FROM {counters} c WHERE budget = %s AND (EXISTS (SELECT 1 FROM {usage} u"
    " WHERE u.budget = c.budget AND u.key = c.key) OR EXISTS (SELECT 1 FROM {holds} h"
    " WHERE h.budget = c.budget AND h.key = c.key))",
    "lock_budget": "SELECT key FROM {counters} WHERE budget = %s ORDER BY key FOR UPDATE",
    "forget_usage": "DELETE FROM {usage} WHERE budget = %s AND key = ANY(%s::text[])",
    "forget_holds": "DELETE FROM {holds} WHERE budget = %s AND key = ANY(%s::text[])",
    "forget_counters": "DELETE FROM {counters} WHERE budget = %s AND key = ANY(%s::text[]) RETURNING 1",
    "claim_alert": "INSERT INTO {alerts} (budget, key, window_start, threshold) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING RETURNING 1",
    "define": "INSERT INTO {definitions} (budget, spec) VALUES (%s, %s)"
    " ON CONFLICT (budget) DO UPDATE SET spec = excluded.spec",
    "definitions": "SELECT budget, spec FROM {definitions}",
}


class PostgresBudgetStore:
    """Budget counters in PostgreSQL, through psycopg 3: atomic across every process and host.

    Thread-safe: each call borrows a connection from a small pool (one per concurrent
    thread, up to four kept idle). Fork-safe: a forked child starts with an empty pool and
    never uses, nor closes, the parent's connections. Opening applies forward migrations
    (once, under an advisory lock) and refuses tables written by a newer meterline.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?options]``.
        schema: A PostgreSQL schema to keep the tables in (created if missing); ``None`` uses
            the connection's ``search_path``.
        connect_timeout: Seconds to wait for the server (at least 2, libpq's minimum).
        timeout: Longest one operation (a reservation, a settle) may wait for the server, in
            seconds (``None``: no bound). A server that does not answer in time (stopped,
            paused, partitioned) has its connection cut and the operation raises
            `BudgetStoreError`: the budget's ``on_store_error`` decides what the call does.

    Raises:
        ConfigurationError: when ``schema`` is not an identifier.
        BudgetStoreError: when the server cannot be reached, or the tables were written by a
            newer meterline.
        MissingExtraError: when psycopg is not installed (extra ``postgres``).
    """

    url: str
    """Where the store is, without the password."""

    def __init__(
        self,
        url: str,
        schema: str | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float | None = 5.0,
    ) -> None:
        self.timeout = check_bound(timeout)
        """Longest one operation waits for the server, in seconds (``None``: no bound)."""
        self._conninfo, self.url, self._schema, self._timeout = postgres_options(url, schema, connect_timeout)
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[tuple[Any, ...]]] = []
        self._closed = False
        self._next_sweep = 0.0
        self._queries = self._render()
        self._run("open", self._migrate)
        _STORES.add(self)

    def __repr__(self) -> str:
        return f"PostgresBudgetStore({self.url!r}, schema={self._schema!r})"

    # -- connections and transactions --------------------------------------------------

    def _render(self) -> dict[str, bytes]:
        from psycopg import sql  # noqa: PLC0415 - the postgres extra, loaded when used

        schema = self._schema

        def table(name: str) -> sql.Identifier:
            return sql.Identifier(schema, name) if schema else sql.Identifier(name)

        names = {
            name: table(f"meterline_budget_{name}")
            for name in ("meta", "counters", "usage", "holds", "alerts", "definitions")
        }
        names["schema"] = sql.Identifier(schema or "public")
        texts = {**META_QUERIES, **_QUERIES}
        for version, statements in _MIGRATIONS.items():
            for index, statement in enumerate(statements):
                texts[f"migrate_{version}_{index}"] = statement
        return {name: sql.SQL(text).format(**names).as_string().encode() for name, text in texts.items()}

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        try:
            conn: psycopg.Connection[tuple[Any, ...]] = pg.connect(
                self._conninfo, autocommit=False, connect_timeout=self._timeout, prepare_threshold=0
            )
        except pg.Error as exc:
            raise BudgetStoreError(
                scrub(f"cannot connect to the PostgreSQL budget store at {self.url}: {exc}", self._conninfo)
            ) from exc
        try:
            # Every statement is prepared; planned once, not at each call: planning the
            # reservation's queries took three times as long as running them (0.16 ms against
            # 0.06), the planner choosing a custom plan for each new set of arguments.
            with deadline(conn.pgconn.socket, self.timeout):
                conn.execute("SET plan_cache_mode = force_generic_plan")
                conn.commit()
        except pg.Error as exc:
            conn.close()
            raise BudgetStoreError(
                scrub(f"cannot prepare the PostgreSQL budget store at {self.url}: {exc}", self._conninfo)
            ) from exc
        return conn

    def _borrow(self) -> tuple[psycopg.Connection[tuple[Any, ...]], bool]:
        """A connection, and whether it was idle in the pool (and so may have gone stale)."""
        with self._lock:
            if self._closed:
                raise BudgetStoreError(f"the budget store at {self.url} is closed")
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _return(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        with self._lock:
            if not self._closed and not conn.closed and len(self._idle) < _POOL:
                self._idle.append(conn)
                return
        conn.close()

    def _run(self, what: str, work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T]) -> _T:
        """Run ``work`` in one transaction; retry lost races, and a stale pooled connection once.

        A failure before ``COMMIT`` leaves nothing behind (the server rolls the transaction
        back), so it is safe to repeat; a failure during the commit is not, and is raised.
        """
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        attempt = 0
        timeout = None if what == "open" else self.timeout  # a migration may wait for another's
        while True:
            conn, pooled = self._borrow()
            committing = False
            bound: Deadline | None = None
            try:
                # Pipeline mode: statements are sent without waiting for each reply, so a
                # reservation costs two round trips (lock and read, then book and commit) and
                # holds its counters' locks for about one.
                with deadline(conn.pgconn.socket, timeout) as bound, conn.pipeline(), conn.cursor() as cur:
                    result = work(cur)
                    committing = True
                    conn.commit()
            except pg.Error as exc:
                postgres_rollback(conn)
                if bound is not None and bound.cut:
                    conn.close()
                    raise BudgetStoreError(
                        f"{what} on {self.url}: no answer within {bound.seconds:g} s (timeout=),"
                        " the connection was cut"
                    ) from exc
                if is_lost_race(exc):
                    self._return(conn)
                    attempt += 1
                    if attempt < _RETRIES:
                        continue
                    raise BudgetStoreError(
                        scrub(f"{what} failed on {self.url}: {exc}", self._conninfo)
                    ) from exc
                if conn.broken or conn.closed:
                    conn.close()
                    if pooled and not committing:  # the server went away meanwhile: a fresh connection
                        continue
                else:
                    self._return(conn)
                message = scrub(f"{what} failed on {self.url}: {exc}", self._conninfo)
                raise BudgetStoreError(message) from exc
            except BaseException:
                postgres_rollback(conn)
                conn.close()
                raise
            else:
                self._return(conn)
                return result

    # -- schema -------------------------------------------------------------------------

    def _migrate(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        """Apply the forward migrations, once, however many processes open the store at once."""
        postgres_migrate(
            cur,
            queries=self._queries,
            migrations=_MIGRATIONS,
            lock_key=_LOCK_KEY,
            create_schema=self._schema is not None,
            error=BudgetStoreError,
            what=f"the budget store at {self.url}",
        )

    # -- BudgetStore --------------------------------------------------------------------

    def _lock_counters(
        self, cur: psycopg.Cursor[tuple[Any, ...]], budgets: list[str], keys: list[str]
    ) -> None:
        cur.execute(self._queries["add_counters"], (budgets, keys))
        cur.execute(self._queries["lock_counters"], (budgets, keys))

    def _sweep(self, cur: psycopg.Cursor[tuple[Any, ...]], now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            cur.execute(self._queries["sweep_holds"], (now,))
            cur.execute(self._queries["sweep_usage"], (now,))

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing, in one transaction."""
        budgets = [encode(line.budget) for line in lines]
        keys = [encode(line.key) for line in lines]
        firsts = [line.first_bucket for line in lines]
        lasts = [line.bucket for line in lines]
        held = {(budget, key): amount for budget, key, amount in zip(budgets, keys, amounts, strict=True)}
        hold = (
            [budget for budget, _ in held],
            [key for _, key in held],
            *([amount[metric] for amount in held.values()] for metric in range(len(METRICS))),
        )

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> Refusal | None:
            self._lock_counters(cur, budgets, keys)
            rows = cur.connection.execute(
                self._queries["state"], (now, budgets, keys, firsts, lasts)
            ).fetchall()
            state = [(_vector(used), _vector(held)) for used, held in rows]
            refusal = first_refusal(lines, amounts, state)
            if refusal is not None:
                cur.connection.rollback()  # nothing booked, not even the new counter rows
                return refusal
            cur.execute(self._queries["hold"], (encode(rid), now + lease, *hold))
            self._sweep(cur, now)
            return None

        return self._run("reserve", work)

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` and add ``amounts`` to ``lines``, in one transaction."""
        budgets = [encode(line.budget) for line in lines]
        keys = [encode(line.key) for line in lines]
        # One row per (counter, bucket): an upsert cannot touch a row twice.
        charges: dict[tuple[str, str, int], tuple[list[int], float | None]] = {}
        for budget, key, line, amount in zip(budgets, keys, lines, amounts, strict=True):
            found = charges.get((budget, key, line.bucket))
            if found is None:
                charges[budget, key, line.bucket] = (list(amount), line.expires_at)
            else:
                found[0][:] = [a + b for a, b in zip(found[0], amount, strict=True)]
        charge = [
            [budget for budget, _, _ in charges],
            [key for _, key, _ in charges],
            [bucket for _, _, bucket in charges],
            *([sums[metric] for sums, _ in charges.values()] for metric in range(len(METRICS))),
            [expires for _, expires in charges.values()],
        ]
        firsts = [line.first_bucket for line in lines]
        lasts = [line.bucket for line in lines]

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[Vector]:
            self._lock_counters(cur, budgets, keys)
            if rid is not None:
                cur.execute(self._queries["drop_holds"], (encode(rid),))
            if lines:
                cur.execute(self._queries["charge"], charge)
            rows = cur.connection.execute(self._queries["used"], (budgets, keys, firsts, lasts)).fetchall()
            return [_vector(used) for (used,) in rows]

        return self._run("settle", work)

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
            cur.execute(self._queries["drop_holds"], (encode(rid),))

        self._run("release", work)

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        """``(used, reserved)`` of each line at ``now``, from one snapshot."""
        args = (
            now,
            [encode(line.budget) for line in lines],
            [encode(line.key) for line in lines],
            [line.first_bucket for line in lines],
            [line.bucket for line in lines],
        )

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[Vector, Vector]]:
            cur.execute(self._queries["state"], args)
            return [(_vector(used), _vector(held)) for used, held in cur.fetchall()]

        return self._run("read", work)

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of ``budget``'s counters that have usage or holds, sorted."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[str, ...]]:
            cur.execute(self._queries["keys"], (encode(budget),))
            return sorted(decode_key(key) for (key,) in cur.fetchall())

        return self._run("keys", work)

    def forget(self, budget: str, key: tuple[str | None, ...]) -> int:
        """Delete ``budget``'s counters whose key matches (``None`` matches anything)."""
        name = encode(budget)

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
            cur.execute(self._queries["lock_budget"], (name,))
            found = [(text, decode_key(text)) for (text,) in cur.fetchall()]
            doomed = [text for text, have in found if matches(have, key)]
            cur.execute(self._queries["forget_usage"], (name, doomed))
            cur.execute(self._queries["forget_holds"], (name, doomed))
            return len(cur.execute(self._queries["forget_counters"], (name, doomed)).fetchall())

        return self._run("forget", work)

    def claim_alert(self, budget: str, key: tuple[str, ...], window: int, threshold: int) -> bool:
        """``True`` the first time this (budget, key, window, threshold) is claimed, across hosts."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> bool:
            claim = (encode(budget), encode(key), window, threshold)
            return cur.execute(self._queries["claim_alert"], claim).fetchone() is not None

        return self._run("claim_alert", work)

    def define(self, budget: str, spec: str) -> None:
        """Store (or replace) a budget's definition."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
            cur.execute(self._queries["define"], (encode(budget), spec))

        self._run("define", work)

    def definitions(self) -> dict[str, str]:
        """Every stored budget definition, by name."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> dict[str, str]:
            cur.execute(self._queries["definitions"])
            return {json.loads(budget): spec for budget, spec in cur.fetchall()}

        return self._run("definitions", work)

    def close(self) -> None:
        """Close the idle connections; calls after this raise `BudgetStoreError`. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _after_fork_in_child(self) -> None:
        """Drop the parent's connections (psycopg never closes them in another process) and lock."""
        self._idle = []
        self._lock = threading.Lock()


def _vector(sums: Sequence[int]) -> Vector:
    t, i, o, c, r, k = sums
    return (t, i, o, c, r, k)


_STORES: Final[weakref.WeakSet[PostgresBudgetStore]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
