"""What the ledger and the budget store share about a SQLite file: privacy, pragmas, migrations, transactions.

Both create their file readable by its owner only, run it in WAL mode with
``synchronous=NORMAL``, and keep a schema version in a meta table of their own
(``meterline_meta``, ``meterline_budget_meta``) that forward migrations advance and that a
newer meterline's version makes this one refuse.
"""

from __future__ import annotations as _annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from meterline._storage._errors import SQLITE_ERRORS, failure
from meterline.exceptions import ConfigurationError, MeterlineError

__all__ = [
    "begin_polling",
    "check_timeout",
    "sqlite_connect",
    "sqlite_migrate",
    "sqlite_rollback",
    "sqlite_schema_version",
    "sqlite_transaction",
]

META_TABLES = frozenset({"meterline_meta", "meterline_budget_meta"})
"""The meta tables there are: a table name is taken from here, never from a caller's string."""


def check_timeout(timeout: object) -> float:
    """``timeout`` (seconds to wait for a busy file) as a float.

    Raises:
        ConfigurationError: when it is not a non-negative number (bools and NaN included).
    """
    if type(timeout) not in (int, float) or not timeout >= 0:  # type: ignore[operator]
        raise ConfigurationError(f"timeout={timeout!r}: expected a non-negative number of seconds")
    return float(timeout)  # type: ignore[arg-type]


def sqlite_connect(
    path: Path,
    timeout: float,
    error: type[MeterlineError],
    what: str,
    prepare: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """Open ``path`` (created with mode 0600 if missing) in WAL mode and ``prepare`` it.

    The file is created here, before SQLite opens it, so it is never readable by others even
    briefly; the WAL and shared-memory files SQLite makes beside it are restricted the same
    way once they exist (after ``prepare``, which writes).

    Args:
        path: The database file.
        timeout: Seconds to wait for the file while another connection writes it.
        error: The error to raise (``LedgerError``, ``BudgetStoreError``), with the driver's
            error as its cause.
        what: What the file is, for messages (``ledger``, ``budget store``).
        prepare: Run on the new connection (migrations, pragmas); its driver errors close the
            connection and become ``error``.
    """
    url = f"sqlite:///{path}"
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
    except OSError as exc:
        raise error(f"cannot create the {what} file {path}: {exc}") from exc
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise error(f"cannot open {url}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        prepare(conn)
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # UnicodeDecodeError: a damaged schema's text
        conn.close()
        raise error(f"cannot open {url}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):  # absent, or not ours to change
            os.chmod(f"{path}{suffix}", 0o600)
    return conn


def sqlite_schema_version(conn: sqlite3.Connection, meta: str, error: type[MeterlineError]) -> int:
    """The version kept in the meta table ``meta`` (0 when the table or the row is missing)."""
    if meta not in META_TABLES:
        raise ValueError(f"meta={meta!r}: not a meta table of meterline's")
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (meta,)).fetchone()
    if found is None:
        return 0
    row = conn.execute(f"SELECT value FROM {meta} WHERE key = 'schema_version'").fetchone()  # noqa: S608
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError:
        raise error(f"schema_version={row[0]!r} in {meta}: expected an integer") from None


def sqlite_migrate(
    conn: sqlite3.Connection,
    *,
    meta: str,
    migrations: Sequence[Callable[[sqlite3.Connection], None]],
    error: type[MeterlineError],
    url: str,
    noun: str = "schema",
) -> None:
    """Bring the tables to ``len(migrations)`` in one transaction, or refuse a newer version.

    ``migrations[n]`` takes the tables from version ``n`` to ``n + 1``.

    Raises:
        error: when the tables were written by a newer meterline (nothing is changed).
    """
    latest = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = sqlite_schema_version(conn, meta, error)
        if version > latest:
            raise error(
                f"{url} has {noun} version {version}, written by a newer meterline;"
                f" this meterline knows {noun} version {latest}: upgrade meterline to use it"
            )
        for step in migrations[version:]:
            step(conn)
        if version < latest:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                f"INSERT INTO {meta} (key, value) VALUES ('schema_version', ?)"  # noqa: S608 - META_TABLES
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(latest),),
            )
        conn.execute("COMMIT")
    except BaseException:
        sqlite_rollback(conn)
        raise


def sqlite_rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any; a failure to do so is not the error to report."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


_POLL_FIRST: Final = 0.0001
"""The first pause of `begin_polling`, in seconds; each next one is twice as long, up to `_POLL_MAX`."""
_POLL_MAX: Final = 0.002


def begin_polling(conn: sqlite3.Connection | sqlite3.Cursor, begin: str, timeout: float) -> None:
    """Run ``begin`` on ``conn`` (busy timeout 0), trying again while the file is busy, up to ``timeout`` s.

    SQLite's own busy handler sleeps longer and longer between tries, up to 100 ms, so under
    contention a writer that has waited long tries least often and starves (measured: 1.5 s
    with 16 processes on one budget counter). Here the pause doubles from 0.1 ms but stops at
    2 ms, with jitter: every waiter tries again at least every 2 ms, so none waits for
    seconds, and few enough tries are wasted to keep the throughput.

    Raises:
        sqlite3.OperationalError: the file stayed busy for ``timeout`` seconds, or another error.
    """
    deadline = 0.0
    pause = _POLL_FIRST
    while True:
        try:
            conn.execute(begin)
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            elif now >= deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not a secret
        pause = min(pause * 2, _POLL_MAX)


class sqlite_transaction:  # noqa: N801 - used like the function it replaced: ``with sqlite_transaction(...)``
    """One transaction on ``conn``: committed when the block ends, rolled back when it raises.

    A driver error (``OverflowError`` included: an int past 64 bits) becomes ``error``, naming
    ``what`` failed on ``url``; anything else leaves unchanged, the transaction rolled back.

    The block gets a cursor of ``conn``, the same one each time the object is used: a budget
    store keeps one object per operation and connection, and runs a reserve+settle's seven
    statements with neither a new cursor for each (``Connection.execute`` makes one) nor a
    generator's machinery under ``contextlib.contextmanager``, which together cost as much as
    two of those statements (measured with callgrind: 16,000 of 252,000 instructions).

    Args:
        conn: The connection.
        error: The store's error class.
        what: What is being done, for messages.
        url: Where the store is, for messages.
        begin: The statement that opens the transaction.
        poll: For a connection whose busy timeout is 0: wait for a busy file up to this many
            seconds by trying again every fraction of a millisecond (`begin_polling`).
    """

    __slots__ = ("_begin", "_conn", "_cursor", "_error", "_poll", "_url", "_what")

    def __init__(
        self,
        conn: sqlite3.Connection,
        error: type[MeterlineError],
        what: str,
        url: str,
        begin: str = "BEGIN IMMEDIATE",
        *,
        poll: float | None = None,
    ) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        self._error = error
        self._what = what
        self._url = url
        self._begin = begin
        self._poll = poll

    def __enter__(self) -> sqlite3.Cursor:
        cursor = self._cursor
        try:
            if self._poll is None:
                cursor.execute(self._begin)
            else:
                begin_polling(cursor, self._begin, self._poll)
        except SQLITE_ERRORS as exc:
            raise failure(self._error, self._what, self._url, exc) from exc
        return cursor

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            try:
                self._cursor.execute("COMMIT")
                return
            except SQLITE_ERRORS as failed:
                exc = failed
        sqlite_rollback(self._conn)
        if isinstance(exc, SQLITE_ERRORS):
            raise failure(self._error, self._what, self._url, exc) from exc
