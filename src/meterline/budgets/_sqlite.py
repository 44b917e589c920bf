r"""The SQLite budget store: every process of one host shares one file (WAL mode).

It may share the ledger's file: its tables are ``meterline_budget_*`` and its schema version
is kept in ``meterline_budget_meta``, apart from the ledger's. A reservation is one
``BEGIN IMMEDIATE`` transaction: SQLite's write lock is taken before the counters are read,
so the check and the holds that follow are atomic across every connection to the file, and
a busy file is waited on up to ``timeout``. A settle is one transaction as well.

The write lock is the whole file's, so what happens while it is held decides the throughput
and, under contention, the wait of every other process: arguments are prepared before the
transaction begins, and each write touches as few B-trees as it can. A hold lives in one
B-tree keyed by its counter and then its reservation (``budget, key, rid``), without indexes:
a reservation writes one B-tree page and a settle two (the holds' and the usage's), as close
as SQLite gets to the two one-row ``UPDATE`` transactions of the floor (measured with
``bench/bench_budget_contention.py``). A hold row also counts the counters its reservation
holds (``lines``), so a settle that charges the same counters deletes its holds by key; only
a settle of other counters and `SQLiteBudgetStore.release` look for the reservation's holds
by id, a scan of the live holds (one row per counter of each call in flight).

Budget names and key tuples are stored as JSON text (``["u1", "s1"]``): unambiguous for any
key (a separator could be forged; ``("x", "y")`` and ``("x\x1fy",)`` stay apart), and safe for
any character. SQL text is made only of the constants of this module; every value is a
parameter.
"""

from __future__ import annotations as _annotations

import functools
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

from meterline._storage import check_timeout, sqlite_connect, sqlite_migrate, sqlite_transaction
from meterline.budgets._store import COUNTER_MAX, METRICS, ZERO, Line, Refusal, Vector, first_refusal
from meterline.exceptions import BudgetStoreError

__all__ = ["SCHEMA_VERSION", "SQLiteBudgetStore"]

SCHEMA_VERSION: Final = 3
"""The version of the budget tables this meterline writes (SQLite and PostgreSQL alike).

Version 2 counts cost in pico-dollars, meterline's one money unit (version 1 counted
nano-dollars): the migration multiplies the stored costs by 1,000. Version 3 keeps SQLite's
holds in one B-tree keyed by counter, and gives PostgreSQL one function per operation."""
_SWEEP_EVERY: Final = 60.0
"""Seconds (of the callers' clock) between deletions of expired holds and buckets, per store."""
_SUMS: Final = ", ".join(f"coalesce(sum({name}), 0)" for name in METRICS)
_COLUMNS: Final = ", ".join(METRICS)
_ADD: Final = ", ".join(  # saturating at COUNTER_MAX (each amount is at most that), never failing
    f"{name} = min({name}, {COUNTER_MAX} - excluded.{name}) + excluded.{name}" for name in METRICS
)
_INT: Final = " INTEGER NOT NULL"


def _capped_sums(rows: Iterable[Sequence[int]]) -> list[tuple[int, ...]]:
    """``(which, *sums)`` of ``(which, *amounts)`` rows, each sum at most `COUNTER_MAX`."""
    sums: dict[int, list[int]] = {}
    for which, *amounts in rows:
        total = sums.setdefault(which, [0] * len(METRICS))
        for metric, amount in enumerate(amounts):
            total[metric] = min(COUNTER_MAX, total[metric] + amount)
    return [(which, *total) for which, total in sorted(sums.items())]


def _schema_v1(conn: sqlite3.Connection) -> None:
    """Version 1: usage by bucket, holds, claimed alerts and definitions."""
    metrics = ", ".join(f"{name}{_INT}" for name in METRICS)
    conn.execute(
        f"CREATE TABLE meterline_budget_usage (budget TEXT NOT NULL, key TEXT NOT NULL, bucket{_INT},"
        f" {metrics}, expires_at REAL, PRIMARY KEY (budget, key, bucket)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE INDEX meterline_budget_usage_expiry ON meterline_budget_usage (expires_at)"
        " WHERE expires_at IS NOT NULL"
    )
    conn.execute(
        "CREATE TABLE meterline_budget_holds (rid TEXT NOT NULL, budget TEXT NOT NULL, key TEXT NOT NULL,"
        f" {metrics}, expires REAL NOT NULL, PRIMARY KEY (rid, budget, key)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE INDEX meterline_budget_holds_counter ON meterline_budget_holds (budget, key, expires)"
    )
    conn.execute("CREATE INDEX meterline_budget_holds_expiry ON meterline_budget_holds (expires)")
    conn.execute(
        "CREATE TABLE meterline_budget_alerts (budget TEXT NOT NULL, key TEXT NOT NULL,"
        f" window_start{_INT}, threshold{_INT}, PRIMARY KEY (budget, key, window_start, threshold))"
        " WITHOUT ROWID"
    )
    conn.execute("CREATE TABLE meterline_budget_definitions (budget TEXT PRIMARY KEY, spec TEXT NOT NULL)")


def _schema_v2(conn: sqlite3.Connection) -> None:
    """Version 2: cost in pico-dollars (was nano-dollars)."""
    for table in ("meterline_budget_usage", "meterline_budget_holds"):
        conn.execute(f"UPDATE {table} SET cost = cost * 1000 WHERE cost != 0")  # noqa: S608 - constants only


def _schema_v3(conn: sqlite3.Connection) -> None:
    """Version 3: holds in one B-tree keyed by counter then reservation, counting their counters.

    ``lines`` defaults to 0 so that a process of an older meterline, still running, books
    holds that a settle finds by id (never by key, which needs their count).
    """
    metrics = ", ".join(f"{name}{_INT}" for name in METRICS)
    conn.execute(
        "CREATE TABLE meterline_budget_holds_v3 (budget TEXT NOT NULL, key TEXT NOT NULL, rid TEXT NOT NULL,"
        f" {metrics}, expires REAL NOT NULL, lines{_INT} DEFAULT 0, PRIMARY KEY (budget, key, rid))"
        " WITHOUT ROWID"
    )
    conn.execute(
        f"INSERT INTO meterline_budget_holds_v3 (budget, key, rid, {_COLUMNS}, expires, lines)"  # noqa: S608
        f" SELECT budget, key, rid, {_COLUMNS}, expires,"
        " (SELECT count(*) FROM meterline_budget_holds o WHERE o.rid = h.rid) FROM meterline_budget_holds h"
    )
    conn.execute("DROP TABLE meterline_budget_holds")
    conn.execute("ALTER TABLE meterline_budget_holds_v3 RENAME TO meterline_budget_holds")


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (_schema_v1, _schema_v2, _schema_v3)
"""Forward migrations: ``MIGRATIONS[n]`` takes the budget tables from version ``n`` to ``n + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION

_STATE: Final = (
    f"SELECT 0, {_SUMS} FROM meterline_budget_usage"  # noqa: S608 - constants only
    " WHERE budget = ? AND key = ? AND bucket BETWEEN ? AND ?"
    f" UNION ALL SELECT 1, {_SUMS} FROM meterline_budget_holds"
    " WHERE budget = ? AND key = ? AND expires > ?"
)
_STATE_ONE: Final = (  # _STATE of a line counting one bucket: its row read as it is, not summed
    f"SELECT 0, {_COLUMNS} FROM meterline_budget_usage"  # noqa: S608 - constants only
    " WHERE budget = ? AND key = ? AND bucket = ?"
    f" UNION ALL SELECT 1, {_SUMS} FROM meterline_budget_holds"
    " WHERE budget = ? AND key = ? AND expires > ?"
)
_STATE_ROWS: Final = (  # the rows _STATE adds up, for sums past what SQLite's sum() holds
    f"SELECT 0, {_COLUMNS} FROM meterline_budget_usage"  # noqa: S608 - constants only
    " WHERE budget = ? AND key = ? AND bucket BETWEEN ? AND ?"
    f" UNION ALL SELECT 1, {_COLUMNS} FROM meterline_budget_holds"
    " WHERE budget = ? AND key = ? AND expires > ?"
)
_BUCKET: Final = (  # one bucket's usage, just charged (so its row is there)
    f"SELECT {_COLUMNS} FROM meterline_budget_usage"  # noqa: S608 - constants only
    " WHERE budget = ? AND key = ? AND bucket = ?"
)
_HOLD: Final = (
    f"INSERT OR REPLACE INTO meterline_budget_holds (budget, key, rid, {_COLUMNS}, expires, lines)"  # noqa: S608
    f" VALUES ({', '.join('?' * (len(METRICS) + 5))})"
)
_CHARGE: Final = (
    f"INSERT INTO meterline_budget_usage (budget, key, bucket, {_COLUMNS}, expires_at)"  # noqa: S608
    f" VALUES ({', '.join('?' * (len(METRICS) + 4))})"
    f" ON CONFLICT (budget, key, bucket) DO UPDATE SET {_ADD}, expires_at = excluded.expires_at"
)
_DROP_HOLDS: Final = "DELETE FROM meterline_budget_holds WHERE rid = ?"  # a scan of the live holds
_DROP_HOLD: Final = (
    "DELETE FROM meterline_budget_holds WHERE budget = ? AND key = ? AND rid = ? AND lines = ?"
)
_KEYS: Final = (
    "SELECT key FROM meterline_budget_usage WHERE budget = ?"
    " UNION SELECT key FROM meterline_budget_holds WHERE budget = ?"
)


@functools.lru_cache(maxsize=4096)
def encode(value: str | tuple[str, ...]) -> str:
    """A budget name or key tuple as JSON text: unambiguous, ASCII, without NUL.

    Memoised (the same few names and keys recur on every call; ``json.dumps`` was a fifth of a
    SQLite reserve+settle's time): at most 4,096 values, the least recently used forgotten.
    """
    return json.dumps(
        value if isinstance(value, str) else list(value), ensure_ascii=True, separators=(",", ":")
    )


def decode_key(text: str | bytes) -> tuple[str, ...]:
    """The key tuple stored as ``text`` by `encode`."""
    return tuple(json.loads(text))


def matches(key: tuple[str, ...], pattern: tuple[str | None, ...]) -> bool:
    """Whether ``key`` matches ``pattern`` (``None`` matches any value at its position)."""
    return len(key) == len(pattern) and all(
        want is None or want == have for want, have in zip(pattern, key, strict=True)
    )


class SQLiteBudgetStore:
    """Budget counters in one SQLite file, shared by every process of one host.

    Thread-safe (one connection per process, under a lock) and fork-safe: a forked child
    opens its own connection on first use and never touches the parent's (SQLite itself
    cannot serve a child forked while another thread is inside a transaction: the child
    sees the file locked until its busy timeout). Opening creates
    the file readable by its owner only (0600), sets WAL mode, and applies forward
    migrations in one transaction; it refuses tables written by a newer meterline.

    Args:
        path: The database file (created, mode 0600, when missing); the ledger's file will do.
        timeout: Longest wait for the file while another connection writes it, in seconds
            (default 5): past it the operation raises `BudgetStoreError` and the budget's
            ``on_store_error`` decides.

    Raises:
        ConfigurationError: when ``timeout`` is not a non-negative number.
        BudgetStoreError: when the file cannot be created or opened, is not a database, or
            its budget tables are newer than this meterline knows.
    """

    url: str
    """``sqlite:///`` followed by the file's absolute path."""

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        seconds = check_timeout(timeout)
        self.path = Path(path).expanduser().absolute()
        """The database file."""
        self.url = f"sqlite:///{self.path}"
        self._timeout = seconds
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._transactions: dict[str, sqlite_transaction] = {}
        """One per operation (``reserve``, ``settle``…) on ``_conn``, each with its cursor."""
        self._closed = False
        self._next_sweep = 0.0
        with self._lock:
            self._connection()
        _STORES.add(self)

    def __repr__(self) -> str:
        return f"SQLiteBudgetStore({str(self.path)!r})"

    # -- plumbing -----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened (and the schema migrated) on first use; the lock held."""
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise BudgetStoreError(f"the budget store {self.url} is closed")
        conn = sqlite_connect(self.path, self._timeout, BudgetStoreError, "budget store", self._migrate)
        # Writers wait for the file by polling (sqlite_transaction's ``poll``), not by SQLite's
        # busy handler, whose growing sleeps starve waiters under contention.
        conn.execute("PRAGMA busy_timeout = 0")
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        sqlite_migrate(
            conn,
            meta="meterline_budget_meta",
            migrations=MIGRATIONS,
            error=BudgetStoreError,
            url=self.url,
            noun="budget schema",
        )

    def _transaction(self, what: str, begin: str = "BEGIN IMMEDIATE") -> sqlite_transaction:
        """One transaction, named ``what`` in messages, on this process's connection; the lock held.

        Used as ``with self._lock, self._transaction(...) as cursor:`` (the connection is
        opened, if need be, once the lock is held). A driver error rolls the transaction back
        and leaves as a `BudgetStoreError`.
        """
        conn = self._connection()
        transaction = self._transactions.get(what)
        if transaction is None:
            transaction = sqlite_transaction(
                conn, BudgetStoreError, what, self.url, begin, poll=self._timeout
            )
            self._transactions[what] = transaction
        return transaction

    def _sweep(self, conn: sqlite3.Cursor, now: float) -> None:
        """Delete expired holds and buckets, at most once a minute (of the callers' clock)."""
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            conn.execute("DELETE FROM meterline_budget_holds WHERE expires <= ?", (now,))
            conn.execute(
                "DELETE FROM meterline_budget_usage WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )

    @staticmethod
    def _state(
        conn: sqlite3.Cursor, counter: tuple[str, str], line: Line, now: float
    ) -> tuple[Vector, Vector]:
        """``(used, reserved)`` of ``line``, whose counter is ``counter`` (its budget and key, encoded)."""
        budget, key = counter
        parameters = (budget, key, line.first_bucket, line.bucket, budget, key, now)
        try:
            if line.first_bucket == line.bucket:
                rows = conn.execute(_STATE_ONE, (budget, key, line.bucket, budget, key, now)).fetchall()
            else:
                rows = conn.execute(_STATE, parameters).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            # Saturated counters (several buckets or holds at COUNTER_MAX): add them up here.
            rows = _capped_sums(conn.execute(_STATE_ROWS, parameters))
        used = reserved = ZERO
        for row in rows:  # (0, *used) and (1, *reserved)
            if row[0]:
                reserved = row[1:]
            else:
                used = row[1:]
        return used, reserved

    # -- BudgetStore --------------------------------------------------------------------

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing, in one transaction."""
        counters = [(encode(line.budget), encode(line.key)) for line in lines]
        count = len(set(counters))
        expires = now + lease
        with self._lock, self._transaction("reserve") as conn:
            self._sweep(conn, now)
            state = [
                self._state(conn, counter, line, now) for counter, line in zip(counters, lines, strict=True)
            ]
            refusal = first_refusal(lines, amounts, state)
            if refusal is None:
                for (budget, key), amount in zip(counters, amounts, strict=True):
                    conn.execute(_HOLD, (budget, key, rid, *amount, expires, count))
            return refusal

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` and add ``amounts`` to ``lines``, in one transaction."""
        counters = [(encode(line.budget), encode(line.key)) for line in lines]
        count = len(set(counters))
        after: list[Vector] = []
        with self._lock, self._transaction("settle") as conn:
            if rid is not None:
                # Held on exactly these counters: ``count`` rows, found by key. Otherwise (the
                # route changed since the reservation) the rest is found by id.
                dropped = 0
                for budget, key in counters:
                    dropped += conn.execute(_DROP_HOLD, (budget, key, rid, count)).rowcount
                if dropped != count:
                    conn.execute(_DROP_HOLDS, (rid,))
            for (budget, key), line, amount in zip(counters, lines, amounts, strict=True):
                conn.execute(_CHARGE, (budget, key, line.bucket, *amount, line.expires_at))
            for counter, line in zip(counters, lines, strict=True):
                if line.first_bucket == line.bucket:
                    (used,) = conn.execute(_BUCKET, (*counter, line.bucket))
                    after.append(used)
                else:  # several buckets: their sum may pass what sum() holds
                    after.append(self._state(conn, counter, line, now)[0])
            self._sweep(conn, now)
            return after

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``."""
        with self._lock, self._transaction("release") as conn:
            conn.execute(_DROP_HOLDS, (rid,))

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        """``(used, reserved)`` of each line at ``now``, from one snapshot."""
        with self._lock, self._transaction("read", "BEGIN") as conn:
            return [self._state(conn, (encode(line.budget), encode(line.key)), line, now) for line in lines]

    def _keys(self, conn: sqlite3.Cursor, budget: str) -> list[tuple[str, ...]]:
        name = encode(budget)
        return sorted(decode_key(key) for (key,) in conn.execute(_KEYS, (name, name)))

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of ``budget``'s counters that have usage or holds, sorted."""
        with self._lock, self._transaction("keys", "BEGIN") as conn:
            return self._keys(conn, budget)

    def forget(self, budget: str, key: tuple[str | None, ...]) -> int:
        """Delete ``budget``'s counters whose key matches (``None`` matches anything)."""
        with self._lock, self._transaction("forget") as conn:
            doomed = [
                (encode(budget), encode(found)) for found in self._keys(conn, budget) if matches(found, key)
            ]
            conn.executemany("DELETE FROM meterline_budget_usage WHERE budget = ? AND key = ?", doomed)
            conn.executemany("DELETE FROM meterline_budget_holds WHERE budget = ? AND key = ?", doomed)
            return len(doomed)

    def claim_alert(self, budget: str, key: tuple[str, ...], window: int, threshold: int) -> bool:
        """``True`` the first time this (budget, key, window, threshold) is claimed, across processes."""
        with self._lock, self._transaction("claim_alert") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO meterline_budget_alerts (budget, key, window_start, threshold)"
                " VALUES (?, ?, ?, ?)",
                (encode(budget), encode(key), window, threshold),
            )
            return cursor.rowcount == 1

    def define(self, budget: str, spec: str) -> None:
        """Store (or replace) a budget's definition."""
        with self._lock, self._transaction("define") as conn:
            conn.execute(
                "INSERT INTO meterline_budget_definitions (budget, spec) VALUES (?, ?)"
                " ON CONFLICT (budget) DO UPDATE SET spec = excluded.spec",
                (encode(budget), spec),
            )

    def definitions(self) -> dict[str, str]:
        """Every stored budget definition, by name."""
        with self._lock, self._transaction("definitions", "BEGIN") as conn:
            rows = conn.execute("SELECT budget, spec FROM meterline_budget_definitions").fetchall()
        return {json.loads(budget): spec for budget, spec in rows}

    def close(self) -> None:
        """Close this process's connection. Idempotent."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            self._transactions = {}
        if conn is not None:
            conn.close()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's connection (never closing it) and the lock another thread may hold."""
        if self._conn is not None:
            _INHERITED.append(self._conn)  # closing it here could disturb the parent's file locks
        self._conn = None
        self._transactions = {}
        self._lock = threading.Lock()


def _vector(sums: Iterable[int]) -> Vector:
    t, i, o, c, r, k = sums
    return (t, i, o, c, r, k)


_STORES: Final[weakref.WeakSet[SQLiteBudgetStore]] = weakref.WeakSet()
_INHERITED: Final[list[sqlite3.Connection]] = []
"""Connections a forked child inherited: kept, unused, so that they are never closed there."""


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
