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

__all__ = ["driver_errors", "is_lost_race", "mapped"]


def driver_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a store's driver raises for a failed statement or connection.

    SQLite's ``sqlite3.Error``, ``OverflowError`` (what sqlite3 raises when it binds an int
    past 64 bits) and ``UnicodeError`` (binding text with a lone surrogate, or reading text a
    damaged file holds); psycopg's ``psycopg.Error`` once psycopg is loaded (it is never
    loaded here: a process without the ``postgres`` extra has no such errors to map).
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _SQLITE_ERRORS
    return (*_SQLITE_ERRORS, psycopg.Error)


_SQLITE_ERRORS: Final = (sqlite3.Error, OverflowError, UnicodeError)


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
        raise error(f"{what} failed on {url}: {exc}") from exc


def is_lost_race(exc: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction for a deadlock or a serialisation race.

    Such a transaction left nothing behind and may be run again.
    """
    errors = getattr(sys.modules.get("psycopg"), "errors", None)
    return errors is not None and isinstance(exc, (errors.DeadlockDetected, errors.SerializationFailure))
