"""Fixtures of the ledger tests that need PostgreSQL: the test server and a schema of their own.

Without a server the tests that ask for them skip (or fail with
``METERLINE_REQUIRE_SERVICES=1``); see `tests.ledger.services`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.ledger.services import require_postgres


@pytest.fixture(scope="module")
def url() -> str:
    """The test server's URL (the module skips without one)."""
    return require_postgres()


@pytest.fixture
def schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped (with everything in it) after the test."""
    name = f"meterline_test_{uuid.uuid4().hex[:12]}"
    yield name
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name)))
