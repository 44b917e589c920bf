"""What the ledger and the budget store share about PostgreSQL: options, migrations, rollback.

Both keep a schema version in a meta table of their own (``meterline_meta``,
``meterline_budget_meta``), apply forward migrations once under an advisory lock however many
processes open the store at once, and refuse tables written by a newer meterline. SQL text is
rendered by the store, with its quoted table names, from the fixed texts here.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from meterline._dimensions import DIMENSION_NAME
from meterline._extras import require
from meterline._storage._urls import postgres_driver_url, postgres_public_url
from meterline.exceptions import ConfigurationError, MeterlineError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "META_QUERIES",
    "postgres_migrate",
    "postgres_options",
    "postgres_rollback",
    "postgres_schema_version",
]

META_QUERIES: Final = {
    "version": "SELECT value FROM {meta} WHERE key = 'schema_version'",
    "set_version": "INSERT INTO {meta} (key, value) VALUES ('schema_version', %s)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    "create_schema": "CREATE SCHEMA IF NOT EXISTS {schema}",
    "create_meta": "CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
}
"""Fixed SQL for the schema version; ``{meta}`` and ``{schema}`` are quoted identifiers."""


def postgres_options(
    url: str, schema: str | None, connect_timeout: float
) -> tuple[str, str, str | None, int]:
    """``(driver URL, public URL, schema, timeout in whole seconds)`` for a PostgreSQL store.

    The schema is an identifier (it is quoted into SQL as one); the extra ``postgres`` must be
    installed.

    Raises:
        ConfigurationError: on a schema that is not a lower-case identifier, or a blank URL.
        MissingExtraError: without psycopg.
    """
    if schema is not None and (type(schema) is not str or not DIMENSION_NAME.fullmatch(schema)):
        raise ConfigurationError(
            f"schema={schema!r}: expected an identifier ([a-z_][a-z0-9_]*, at most 63 characters)"
        )
    require("postgres", "psycopg")  # a clear MissingExtraError; later imports are then local
    return postgres_driver_url(url), postgres_public_url(url), schema, max(2, round(connect_timeout))


def postgres_rollback(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Roll back the open transaction; a connection too broken to do so is closed instead."""
    if not conn.closed:
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a broken connection cannot roll back; it is replaced
            conn.close()


def postgres_schema_version(
    cur: psycopg.Cursor[tuple[Any, ...]],
    *,
    queries: Mapping[str, bytes],
    latest: int,
    error: type[MeterlineError],
    what: str,
) -> int | None:
    """The version in the store's meta table, ``None`` when it has none.

    Raises:
        error: when the version is not a number, or is newer than ``latest`` (the tables were
            written by a newer meterline).
    """
    row = cur.execute(queries["version"]).fetchone()
    if row is None:
        return None
    try:
        found = int(row[0])
    except ValueError:
        raise error(f"{what} has schema_version {row[0]!r}, which is not a number") from None
    if found > latest:
        raise error(
            f"{what} has schema version {found}, written by a newer meterline"
            f" (this one knows version {latest}); upgrade meterline to use it"
        )
    return found


def postgres_migrate(
    cur: psycopg.Cursor[tuple[Any, ...]],
    *,
    queries: Mapping[str, bytes],
    migrations: Mapping[int, Sequence[str]],
    lock_key: int,
    create_schema: bool,
    error: type[MeterlineError],
    what: str,
    steps: Mapping[int, Callable[[psycopg.Cursor[tuple[Any, ...]]], None]] | None = None,
) -> None:
    """Bring the tables to version ``max(migrations)``, once, however many processes try at once.

    Args:
        cur: A cursor in the transaction to migrate in (committed by the caller).
        queries: The rendered `META_QUERIES`, and ``migrate_<version>_<index>`` for the
            ``index``-th statement of ``migrations[version]``.
        migrations: The statements that bring the tables from version ``n - 1`` to ``n``.
        lock_key: The advisory lock that serialises the migrations of every process.
        create_schema: Whether to create the schema the tables live in.
        error: The store's error class.
        what: The store and where it is, for messages (``the ledger at postgresql://db/x``).
        steps: Work done in Python after the statements of a version (moving data SQL
            cannot), in the same transaction.

    Raises:
        error: when the tables were written by a newer meterline, or their version is not a
            number (nothing is changed).
    """
    from psycopg import errors  # noqa: PLC0415 - the postgres extra, loaded when used

    latest = max(migrations)

    def version() -> int | None:
        return postgres_schema_version(cur, queries=queries, latest=latest, error=error, what=what)

    try:
        with cur.connection.transaction():  # a savepoint: a missing table is not an error here
            current = version()
    except (errors.UndefinedTable, errors.InvalidSchemaName):
        current = None
    if current == latest:
        return
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
    if create_schema:
        try:
            with cur.connection.transaction():
                cur.execute(queries["create_schema"])
        except (errors.DuplicateSchema, errors.UniqueViolation):
            # Created meanwhile: an advisory lock does not refresh this session's catalog
            # cache, so IF NOT EXISTS may miss a schema another process just committed.
            pass
    cur.execute(queries["create_meta"])
    current = version() or 0  # again: another process may have migrated meanwhile
    for target in range(current + 1, latest + 1):
        for index in range(len(migrations[target])):
            cur.execute(queries[f"migrate_{target}_{index}"])
        if steps and target in steps:
            steps[target](cur)
    cur.execute(queries["set_version"], (str(latest),))
