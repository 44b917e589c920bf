"""Open a budget store from a URL: ``memory://``, ``sqlite:///f.db``, ``postgresql://…``, ``redis://…``."""

from __future__ import annotations as _annotations

from pathlib import Path
from typing import Final

from meterline._extras import require
from meterline._storage import is_conninfo, redact
from meterline.budgets._memory import MemoryBudgetStore
from meterline.budgets._store import BudgetStore
from meterline.exceptions import ConfigurationError

__all__ = ["ENV_VAR", "open_budget_store"]

ENV_VAR: Final = "METERLINE_BUDGET_STORE"
"""The environment variable that names the default budget store's URL."""


def open_budget_store(url: str | Path | BudgetStore | None = None) -> BudgetStore:
    """The budget store at ``url`` (created and migrated as needed), or ``url`` if it is a store.

    Args:
        url: ``None`` or ``"memory://"`` for this process only; ``"sqlite:///relative.db"``,
            ``"sqlite:////absolute.db"`` or a plain file path for the processes of one host;
            ``"postgresql://…"`` or a libpq ``"host=… dbname=…"`` string (extra ``postgres``)
            or ``"redis://…"`` / ``"rediss://…"`` (extra ``redis``) for many hosts; a
            `BudgetStore` is returned unchanged.

    Raises:
        ConfigurationError: when the URL's scheme is unknown or it names no file.
        BudgetStoreError: when the store cannot be opened.
        MissingExtraError: for PostgreSQL or Redis without their extra.
    """
    if url is None:
        return MemoryBudgetStore()
    if isinstance(url, Path):
        url = str(url)
    if not isinstance(url, str):
        if isinstance(url, BudgetStore):
            return url
        raise ConfigurationError(
            f"budget_store={url!r}: expected a BudgetStore or a URL such as 'sqlite:///budgets.db'"
        )
    if not url.strip():
        raise ConfigurationError(f"budget_store={url!r}: expected a URL such as 'sqlite:///budgets.db'")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        if url.lower() != "memory://":
            raise ConfigurationError(f"budget_store={url!r}: the in-memory store is just 'memory://'")
        return MemoryBudgetStore()
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+") or is_conninfo(url):
        require("postgres", "psycopg")
        from meterline.budgets._postgres import PostgresBudgetStore  # noqa: PLC0415 - needs the extra

        return PostgresBudgetStore(url)
    if scheme in ("redis", "rediss"):
        require("redis", "redis")
        from meterline.budgets._redis import RedisBudgetStore  # noqa: PLC0415 - needs the extra

        return RedisBudgetStore(url)
    if scheme in ("sqlite", ""):
        if scheme and not url.startswith("sqlite:///"):
            raise ConfigurationError(
                f"budget_store={url!r}: a SQLite URL has three slashes: sqlite:///budgets.db"
            )
        path = url[len("sqlite:///") :] if scheme else url
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"budget_store={url!r}: a SQLite budget store is a file (for one process, use memory://)"
            )
        from meterline.budgets._sqlite import SQLiteBudgetStore  # noqa: PLC0415 - loaded when used

        return SQLiteBudgetStore(path)
    raise ConfigurationError(
        f"budget_store={redact(url)!r}: unknown scheme {scheme!r}; expected memory://, sqlite:///,"
        " postgresql:// or redis://"
    )
