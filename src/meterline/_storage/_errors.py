"""Driver errors, mapped to meterline's: the one place that knows what sqlite3 and psycopg raise.

A store calls its driver inside `mapped`; whatever the driver raises leaves as the store's own
error (`LedgerError`, `BudgetStoreError`) naming what failed and where, with the driver's error
as its cause. Errors that are not the driver's (a bug, ``KeyboardInterrupt``) pass unchanged.
"""

from __future__ import annotations as _annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from typing import Final

from meterline.exceptions import MeterlineError

__all__ = ["SQLITE_ERRORS", "driver_errors", "failure", "is_lost_race", "is_value_error", "mapped"]


def driver_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a store's driver raises for a failed statement or connection.

    SQLite's ``sqlite3.Error``, ``OverflowError`` (what sqlite3 raises when it binds an int
    past 64 bits) and ``UnicodeError`` (binding text with a lone surrogate, or reading text a
    damaged file holds); psycopg's ``psycopg.Error`` once psycopg is loaded (it is never
    loaded here: a process without the ``postgres`` extra has no such errors to map).
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return SQLITE_ERRORS
    return (*SQLITE_ERRORS, psycopg.Error)


SQLITE_ERRORS: Final = (sqlite3.Error, OverflowError, UnicodeError)
"""What sqlite3 raises for a failed statement or a value it cannot bind (see `driver_errors`)."""


@contextlib.contextmanager
def mapped(error: type[MeterlineError], what: str, url: str) -> Iterator[None]:
    """Raise a driver error from the block as ``error("<what> failed on <url>: <cause>")``.

    Args:
        error: The store's error class.
        what: What was being done (``write``, ``reserve``…), for the message.
        url: Where the store is, already without its password.
    """
    try:
        yield
    except MeterlineError:
        raise
    except driver_errors() as exc:
        raise failure(error, what, url, exc) from exc


def failure(error: type[MeterlineError], what: str, url: str, exc: BaseException) -> MeterlineError:
    """The store's error for a driver error ``exc``: ``"<what> failed on <url>: <cause>"``."""
    return error(f"{what} failed on {url}: {exc}")


def is_lost_race(exc: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction for a deadlock or a serialisation race.

    Such a transaction left nothing behind and may be run again.
    """
    errors = getattr(sys.modules.get("psycopg"), "errors", None)
    return errors is not None and isinstance(exc, (errors.DeadlockDetected, errors.SerializationFailure))


def is_value_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the values were at fault, not the store.

    A value the driver cannot send (``OverflowError`` past 64 bits, ``UnicodeError`` for a lone
    surrogate), a constraint or data error (SQLite's ``IntegrityError`` and ``DataError``,
    parameters it cannot bind; PostgreSQL's classes 22 and 23), or a value past a limit of the
    server (PostgreSQL's class 54, such as an index row too large). A full disk, a lost
    connection, a locked file or a timeout is the store's condition, not the values': those are
    not value errors, and what was being written should wait for the store, not be set aside.
    """
    psycopg = sys.modules.get("psycopg")
    value_errors: tuple[type[BaseException], ...] = (
        OverflowError,
        UnicodeError,
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.InterfaceError,  # a parameter it cannot bind
    )
    if psycopg is not None:
        errors = psycopg.errors
        value_errors += (psycopg.DataError, psycopg.IntegrityError, errors.ProgramLimitExceeded)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, value_errors):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
