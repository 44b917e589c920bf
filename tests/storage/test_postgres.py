"""PostgreSQL stores: options checked, forward migrations applied once and newer ones refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from meterline._storage import META_QUERIES, postgres_migrate, postgres_options
from meterline.exceptions import ConfigurationError, LedgerError
from tests.ledger.services import require_postgres

psycopg = pytest.importorskip("psycopg")

MIGRATIONS = {
    1: ("CREATE TABLE {table} (n BIGINT NOT NULL)",),
    2: ("ALTER TABLE {table} ADD COLUMN m BIGINT NOT NULL DEFAULT 0",),
}


@pytest.fixture
def schema() -> Iterator[tuple[str, str]]:
    """A fresh schema on the test server (the test skips without one), dropped afterwards."""
    url = require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield url, name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _queries(conn: Any, schema: str) -> dict[str, bytes]:
    from psycopg import sql

    names = {
        "meta": sql.Identifier(schema, "meterline_meta"),
        "table": sql.Identifier(schema, "t"),
        "schema": sql.Identifier(schema),
    }
    texts = dict(META_QUERIES)
    for version, statements in MIGRATIONS.items():
        for index, statement in enumerate(statements):
            texts[f"migrate_{version}_{index}"] = statement
    return {name: bytes(sql.SQL(text).format(**names).as_bytes(conn)) for name, text in texts.items()}


def _migrate(url: str, schema: str, migrations: Mapping[int, tuple[str, ...]] = MIGRATIONS) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        postgres_migrate(
            cur,
            queries=_queries(conn, schema),
            migrations=migrations,
            lock_key=0x7465_7374,
            create_schema=True,
            error=LedgerError,
            what="the test store",
        )


@pytest.mark.services
def test_migrations_create_the_schema_and_run_once(schema: tuple[str, str]) -> None:
    """The schema and tables are created at the latest version; a second run changes nothing."""
    url, name = schema
    _migrate(url, name)
    _migrate(url, name)  # the ALTER would fail if repeated
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 't'"
            " ORDER BY ordinal_position",
            (name,),
        ).fetchall()
        version = conn.execute(f"SELECT value FROM {name}.meterline_meta").fetchone()
    assert columns == [("n",), ("m",)]
    assert version == ("2",)


@pytest.mark.services
def test_a_newer_schema_is_refused(schema: tuple[str, str]) -> None:
    """Tables written by a newer meterline are refused, naming both versions."""
    url, name = schema
    _migrate(url, name)
    with pytest.raises(LedgerError, match=r"the test store has schema version 2.*knows version 1"):
        _migrate(url, name, {1: MIGRATIONS[1]})


def test_options_check_the_schema_and_hide_the_password() -> None:
    """The schema must be an identifier; the public URL has no password; the timeout is at least 2 s."""
    driver, public, schema, timeout = postgres_options("postgresql+psycopg://a:pw@db/x", "tenant_1", 0.4)
    assert (driver, public, schema, timeout) == (
        "postgresql://a:pw@db/x",
        "postgresql://a@db/x",
        "tenant_1",
        2,
    )
    for bad in ("Tenant", "1x", "a-b", "", 5, True):
        with pytest.raises(ConfigurationError, match=r"schema="):
            postgres_options("postgresql://db/x", bad, 5)  # type: ignore[arg-type]
