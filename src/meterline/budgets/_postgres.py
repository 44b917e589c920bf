"""The PostgreSQL budget store (extra ``postgres``): processes on many hosts share one database.

Every counter has a row in ``meterline_budget_counters``. A reservation is one call of the
function ``meterline_budget_reserve`` (PL/pgSQL, created by the schema's migrations), one
statement and one transaction (READ COMMITTED): it creates the rows of its counters if they
are missing, inserting them in sorted order, then locks them with ``SELECT … ORDER BY budget,
key FOR UPDATE``, so any two transactions take their locks in the same order and never
deadlock. Only then, in a new statement of the function (and so a new snapshot), it reads each
counter's usage and live holds, checks them by `first_refusal`'s rule, and inserts its holds,
or deletes the counter rows it created and returns the refusal. Whoever reserves or settles
against a counter holds its lock, so no check can read a total that changes before the holds
it books are committed: concurrent reservations cannot overshoot. A settle is one call of
``meterline_budget_settle``: the reservation's holds deleted and the usage added (its usage
rows locked in sorted order), committed together. It takes no counter lock, as a release never
did: a reservation's check sees the settle entirely or not at all, and either outcome is what
running the two one after the other gives, since a settle's effect does not depend on the
holds a reservation books. Settles then never queue behind reservations (measured with 16
processes on one counter: p99.9 of a reserve+settle 115 ms before, 91 to 93 ms after).

One statement per operation is one round trip and one commit, as close as PostgreSQL gets to
the two one-row ``UPDATE`` statements of the floor in ``bench/bench_budget_contention.py``
(the same work as separate statements, even pipelined, took twice as long).

Budget names, keys and reservation ids are stored as JSON text (PostgreSQL text cannot hold
NUL, and JSON keeps every key tuple apart); SQL text is fixed at open, table names are quoted
identifiers, and every value is a parameter.
"""

from __future__ import annotations as _annotations

import json
import os
import select
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
from meterline.budgets._store import COUNTER_MAX, METRICS, Line, Refusal, Vector, ceilings
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
_LOCK_COUNTERS: Final = (
    "INSERT INTO {counters} (budget, key) SELECT DISTINCT b, k FROM unnest(p_budgets, p_keys) AS w(b, k)"
    " ORDER BY b, k ON CONFLICT DO NOTHING"
)
_N: Final = len(METRICS)
_AMOUNTS: Final = ", ".join(f"p_numbers[base + {3 + m}]" for m in range(_N))  # a line's amounts
_RESERVE: Final = f"""
CREATE FUNCTION {{reserve}}(p_rid text, p_budgets text[], p_keys text[], p_numbers bigint[],
    p_now float8, p_expires float8, p_sweep boolean) RETURNS bigint[] LANGUAGE plpgsql AS $body$
-- p_numbers holds, per line: first bucket, last bucket, {_N} amounts, {_N} ceilings (limits).
-- Returns NULL when every line's hold was inserted, else the refusal:
-- (line, metric, limit, used, reserved, requested), lines and metrics counted from 0.
DECLARE
    added_budgets text[];
    added_keys text[];
    used bigint[];
    held bigint[];
    base int;
BEGIN
    WITH added AS ({_LOCK_COUNTERS} RETURNING budget, key)
    SELECT array_agg(budget), array_agg(key) INTO added_budgets, added_keys FROM added;
    PERFORM 1 FROM {{counters}} WHERE (budget, key) IN (SELECT b, k FROM unnest(p_budgets, p_keys) AS w(b, k))
        ORDER BY budget, key FOR UPDATE;
    FOR i IN 1 .. cardinality(p_budgets) LOOP
        base := (i - 1) * {2 + 2 * _N};
        SELECT (SELECT {_SUMS} FROM {{usage}} WHERE budget = p_budgets[i] AND key = p_keys[i]
                    AND bucket BETWEEN p_numbers[base + 1] AND p_numbers[base + 2]),
               (SELECT {_SUMS} FROM {{holds}} WHERE budget = p_budgets[i] AND key = p_keys[i]
                    AND expires > p_now)
            INTO used, held;
        FOR m IN 1 .. {_N} LOOP  -- first_refusal's rule: used + reserved + amount <= limit
            IF used[m]::numeric + held[m] + p_numbers[base + 2 + m] > p_numbers[base + {2 + _N} + m] THEN
                DELETE FROM {{counters}} WHERE (budget, key) IN
                    (SELECT b, k FROM unnest(added_budgets, added_keys) AS w(b, k));
                RETURN ARRAY[i - 1, m - 1, p_numbers[base + {2 + _N} + m], used[m], held[m],
                    p_numbers[base + 2 + m]];
            END IF;
        END LOOP;
    END LOOP;
    FOR i IN 1 .. cardinality(p_budgets) LOOP
        base := (i - 1) * {2 + 2 * _N};
        INSERT INTO {{holds}} (rid, budget, key, {_COLUMNS}, expires)
        VALUES (p_rid, p_budgets[i], p_keys[i], {_AMOUNTS}, p_expires)
        ON CONFLICT (rid, budget, key) DO UPDATE
        SET {", ".join(f"{m} = excluded.{m}" for m in METRICS)}, expires = excluded.expires;
    END LOOP;
    IF p_sweep THEN
        DELETE FROM {{holds}} WHERE expires <= p_now;
        DELETE FROM {{usage}} WHERE expires_at <= p_now;
    END IF;
    RETURN NULL;
END $body$"""  # noqa: S608 - constants only
_SETTLE: Final = f"""
CREATE FUNCTION {{settle}}(p_rid text, p_budgets text[], p_keys text[], p_numbers bigint[],
    p_expires float8[]) RETURNS bigint[] LANGUAGE plpgsql AS $body$
-- p_numbers holds, per line: first bucket, bucket charged (the last), {_N} amounts; p_expires
-- when each line's bucket may be dropped. Returns each line's usage after the charge, {_N} each.
DECLARE
    after bigint[] := ARRAY[]::bigint[];
    used bigint[];
    base int;
    i int;
BEGIN
    {_LOCK_COUNTERS};  -- the rows keys() lists; not locked: see the module's docstring
    IF p_rid IS NOT NULL THEN
        DELETE FROM {{holds}} WHERE rid = p_rid;
    END IF;
    FOR i IN SELECT g FROM generate_subscripts(p_budgets, 1) AS g  -- usage rows locked in one order
            ORDER BY p_budgets[g], p_keys[g], p_numbers[(g - 1) * {2 + _N} + 2] LOOP
        base := (i - 1) * {2 + _N};
        INSERT INTO {{usage}} AS u (budget, key, bucket, {_COLUMNS}, expires_at)
        VALUES (p_budgets[i], p_keys[i], p_numbers[base + 2], {_AMOUNTS}, p_expires[i])
        ON CONFLICT (budget, key, bucket) DO UPDATE SET
        -- Saturating: the counter stops at COUNTER_MAX (each amount is at most that) instead of failing.
        {", ".join(f"{m} = least(u.{m}, {COUNTER_MAX} - excluded.{m}) + excluded.{m}" for m in METRICS)},
        expires_at = excluded.expires_at;
    END LOOP;
    FOR i IN 1 .. cardinality(p_budgets) LOOP
        base := (i - 1) * {2 + _N};
        SELECT {_SUMS} INTO used FROM {{usage}} WHERE budget = p_budgets[i] AND key = p_keys[i]
            AND bucket BETWEEN p_numbers[base + 1] AND p_numbers[base + 2];
        after := after || used;
    END LOOP;
    RETURN after;
END $body$"""  # noqa: S608 - constants only
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
    # One function per reservation and per settle: one statement, one round trip.
    3: (_RESERVE, _SETTLE),
}
"""Forward migrations: the statements that bring the budget tables from version ``n - 1`` to ``n``."""
assert max(_MIGRATIONS) == SCHEMA_VERSION

_LINES: Final = (
    "unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS w(b, k, f, l, i)"
)
_QUERIES: Final = {
    "reserve": "SELECT {reserve}(%s, %s::text[], %s::text[], %s::bigint[], %s, %s, %s)",
    "settle": "SELECT {settle}(%s, %s::text[], %s::text[], %s::bigint[], %s::float8[])",
    "state": f"SELECT (SELECT {_SUMS} FROM {{usage}} u"  # noqa: S608 - fixed text
    " WHERE u.budget = w.b AND u.key = w.k AND u.bucket BETWEEN w.f AND w.l),"
    f" (SELECT {_SUMS} FROM {{holds}} h WHERE h.budget = w.b AND h.key = w.k AND h.expires > %s)"
    f" FROM {_LINES} ORDER BY w.i",
    "drop_holds": "DELETE FROM {holds} WHERE rid = %s",
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
            for name in ("meta", "counters", "usage", "holds", "alerts", "definitions", "reserve", "settle")
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
                self._conninfo, autocommit=True, connect_timeout=self._timeout, prepare_threshold=0
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
        except pg.Error as exc:
            conn.close()
            raise BudgetStoreError(
                scrub(f"cannot prepare the PostgreSQL budget store at {self.url}: {exc}", self._conninfo)
            ) from exc
        return conn

    def _borrow(self) -> tuple[psycopg.Connection[tuple[Any, ...]], bool]:
        """A connection, and whether it was idle in the pool (and so may have gone stale).

        An idle connection whose socket has something to read was closed by the server (a
        restart, an idle timeout, a proxy): it is dropped, never sent a statement that could
        fail halfway, and another is taken.
        """
        while True:
            with self._lock:
                if self._closed:
                    raise BudgetStoreError(f"the budget store at {self.url} is closed")
                if not self._idle:
                    break
                conn = self._idle.pop()
            if not _stale(conn):
                return conn, True
            conn.close()
        return self._connect(), False

    def _return(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        with self._lock:
            if not self._closed and not conn.closed and len(self._idle) < _POOL:
                self._idle.append(conn)
                return
        conn.close()

    def _run(
        self,
        what: str,
        work: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T],
        *,
        single: bool = False,
        repeatable: bool = True,
    ) -> _T:
        """Run ``work``; retry lost races, and a connection that broke before anything was committed.

        Args:
            what: The operation, for messages.
            work: Sends the statements and reads their results.
            single: ``work`` sends one statement, which commits as it ends (autocommit): one
                round trip. Otherwise ``work`` runs in a transaction it does not end.
            repeatable: Whether a single statement may be sent again after its connection
                broke, not knowing whether it ran (true unless running it twice would count
                twice). A transaction is repeated only when it broke before its commit.
        """
        import psycopg as pg  # noqa: PLC0415 - the postgres extra, loaded when used

        attempt = 0
        timeout = None if what == "open" else self.timeout  # a migration may wait for another's
        while True:
            conn, pooled = self._borrow()
            committing = single and not repeatable
            bound: Deadline | None = None
            try:
                with deadline(conn.pgconn.socket, timeout) as bound, conn.cursor() as cur:
                    if single:
                        result = work(cur)
                    else:
                        with conn.transaction():
                            result = work(cur)
                            committing = True
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

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing, in one statement."""
        numbers: list[int] = []
        for line, amount in zip(lines, amounts, strict=True):
            numbers += (line.first_bucket, line.bucket, *amount, *ceilings(line))
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        args = (
            encode(rid),
            [encode(line.budget) for line in lines],
            [encode(line.key) for line in lines],
            numbers,
            now,
            now + lease,
            sweep,
        )

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> Refusal | None:
            (refused,) = cur.execute(self._queries["reserve"], args).fetchone() or (None,)
            return None if refused is None else Refusal(*refused)

        return self._run("reserve", work, single=True)

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` and add ``amounts`` to ``lines``, in one statement."""
        numbers: list[int] = []
        for line, amount in zip(lines, amounts, strict=True):
            numbers += (line.first_bucket, line.bucket, *amount)
        args = (
            None if rid is None else encode(rid),
            [encode(line.budget) for line in lines],
            [encode(line.key) for line in lines],
            numbers,
            [line.expires_at for line in lines],
        )

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[Vector]:
            (after,) = cur.execute(self._queries["settle"], args).fetchone() or ((),)
            return [
                _vector(after[start : start + len(METRICS)]) for start in range(0, len(after), len(METRICS))
            ]

        # Not repeated on a connection that broke: it may have been charged already.
        return self._run("settle", work, single=True, repeatable=False)

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
            cur.execute(self._queries["drop_holds"], (encode(rid),))

        self._run("release", work, single=True)

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

        return self._run("read", work, single=True)

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of ``budget``'s counters that have usage or holds, sorted."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[str, ...]]:
            cur.execute(self._queries["keys"], (encode(budget),))
            return sorted(decode_key(key) for (key,) in cur.fetchall())

        return self._run("keys", work, single=True)

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

        return self._run("claim_alert", work, single=True, repeatable=False)  # True once only

    def define(self, budget: str, spec: str) -> None:
        """Store (or replace) a budget's definition."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
            cur.execute(self._queries["define"], (encode(budget), spec))

        self._run("define", work, single=True)

    def definitions(self) -> dict[str, str]:
        """Every stored budget definition, by name."""

        def work(cur: psycopg.Cursor[tuple[Any, ...]]) -> dict[str, str]:
            cur.execute(self._queries["definitions"])
            return {json.loads(budget): spec for budget, spec in cur.fetchall()}

        return self._run("definitions", work, single=True)

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


def _stale(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """Whether an idle connection was closed by the server: its socket is readable (or gone)."""
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # a connection psycopg already closed
        return True


def _vector(sums: Sequence[int]) -> Vector:
    t, i, o, c, r, k = sums
    return (t, i, o, c, r, k)


_STORES: Final[weakref.WeakSet[PostgresBudgetStore]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
