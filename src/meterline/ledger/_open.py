"""Open a ledger from a URL: ``sqlite:///usage.db``, a plain path, or ``postgresql://…``."""

from __future__ import annotations as _annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

from meterline._events import UsageEvent
from meterline._storage import is_conninfo, redact
from meterline.exceptions import ConfigurationError
from meterline.ledger._backend import Granularity, LedgerBackend, LedgerRow, LedgerStats

__all__ = ["ENV_VAR", "LazyLedger", "is_postgres", "open_ledger"]

ENV_VAR: Final = "METERLINE_LEDGER"
"""The environment variable that names the default ledger's URL."""


def open_ledger(url: str | Path | None = None, *, durable: bool = False) -> LedgerBackend:
    """Open (creating and migrating as needed) the ledger at ``url``.

    Args:
        url: ``sqlite:///relative/or/absolute.db``, ``sqlite:////abs/path.db``, a plain file
            path, or ``postgresql://user@host/db`` or a libpq ``host=… dbname=…`` string
            (extra ``postgres``). ``None`` reads the
            ``METERLINE_LEDGER`` environment variable.
        durable: Every commit on stable storage before it returns (see `SQLiteLedger` and
            `PostgresLedger`); a meter with ``durability="sync"`` opens its ledger so.

    Raises:
        ConfigurationError: when no URL is given or its scheme is unknown.
        LedgerError: when the store cannot be opened or was written by a newer meterline.
        MissingExtraError: for PostgreSQL without the ``postgres`` extra.
    """
    if url is None:
        url = os.environ.get(ENV_VAR)
        if not url:
            raise ConfigurationError(
                f"no ledger URL given and ${ENV_VAR} is not set (e.g. sqlite:///usage.db)"
            )
    if isinstance(url, Path):
        url = str(url)
    if type(url) is not str or not url.strip():
        raise ConfigurationError(
            f"ledger={url!r}: expected a URL such as 'sqlite:///usage.db' or 'postgresql://…'"
        )
    scheme = _scheme(url)
    if is_postgres(url):
        from meterline.ledger._postgres import PostgresLedger  # noqa: PLC0415 - needs the postgres extra

        return PostgresLedger(url, durable=durable)
    if scheme in ("sqlite", ""):
        path = url[len("sqlite:///") :] if scheme else url
        if scheme and not url.startswith("sqlite:///"):
            raise ConfigurationError(f"ledger={url!r}: a SQLite URL has three slashes: sqlite:///usage.db")
        if not path or path == ":memory:":
            raise ConfigurationError(f"ledger={url!r}: a ledger must be a file (it is durable)")
        from meterline.ledger._sqlite import SQLiteLedger  # noqa: PLC0415 - loaded when used

        return SQLiteLedger(Path(path), durable=durable)
    raise ConfigurationError(
        f"ledger={redact(url)!r}: unknown scheme {scheme!r}; expected sqlite:/// or postgresql://"
    )


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL ledger (``postgresql://…``, ``postgres://…``, ``host=…``)."""
    scheme = _scheme(url)
    return scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+") or is_conninfo(url)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


class LazyLedger:
    """A ledger opened on first use, for a meter whose store is down when it starts.

    Every call tries to open the store until it succeeds, and raises `LedgerError` until
    then; the meter's writer spools what it cannot write and replays it once a write works,
    so nothing recorded meanwhile is lost.
    """

    def __init__(self, url: str, *, durable: bool = False) -> None:
        self._durable = durable
        self._target = url
        self.url = redact(url)
        self._backend: LedgerBackend | None = None
        self._lock = threading.Lock()

    def _open(self) -> LedgerBackend:
        backend = self._backend
        if backend is None:
            with self._lock:
                backend = self._backend
                if backend is None:
                    backend = self._backend = open_ledger(self._target, durable=self._durable)
        return backend

    def write(self, events: Sequence[UsageEvent]) -> int:
        """See `LedgerBackend.write`."""
        return self._open().write(events)

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
        """See `LedgerBackend.totals`."""
        return self._open().totals(
            by=by, where=where, since=since, until=until, granularity=granularity, limit=limit
        )

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, after_id: str | None = None
    ) -> Iterator[UsageEvent]:
        """See `LedgerBackend.events`."""
        return self._open().events(since=since, until=until, after_id=after_id)

    def prune(self, before: datetime) -> int:
        """See `LedgerBackend.prune`."""
        return self._open().prune(before)

    def reprice(self, events: Sequence[tuple[str, Decimal | None, str | None]]) -> int:
        """See `LedgerBackend.reprice`."""
        return self._open().reprice(events)

    def stats(self) -> LedgerStats:
        """See `LedgerBackend.stats`."""
        return self._open().stats()

    def close(self) -> None:
        """Close the store if it was opened. Idempotent."""
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
