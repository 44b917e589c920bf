"""Every budget store, opened fresh for one test: in memory, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from meterline.budgets import BudgetStore, MemoryBudgetStore, SQLiteBudgetStore
from tests.ledger.services import require_postgres, require_redis


def drop_schema(url: str, schema: str) -> None:
    """Drop the PostgreSQL ``schema`` and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key of ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


KINDS = ("memory", "sqlite", "postgres", "redis")
"""What `fresh_store` opens (the last two need their service, and skip without it)."""


@contextmanager
def fresh_store(kind: str, tmp_path: Path) -> Iterator[BudgetStore]:
    """A new, empty store of ``kind``; its tables, schema or keys are removed afterwards."""
    if kind == "memory":
        yield MemoryBudgetStore()
        return
    if kind == "sqlite":
        sqlite = SQLiteBudgetStore(tmp_path / "budgets.db")
        try:
            yield sqlite
        finally:
            sqlite.close()
        return
    name = f"engine_{uuid.uuid4().hex[:12]}"
    if kind == "postgres":
        url = require_postgres()
        psycopg = pytest.importorskip("psycopg")
        from meterline.budgets._postgres import PostgresBudgetStore

        postgres = PostgresBudgetStore(url, name)
        try:
            yield postgres
        finally:
            postgres.close()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name))
                )
        return
    url = require_redis()
    redis = pytest.importorskip("redis")
    from meterline.budgets._redis import RedisBudgetStore

    store = RedisBudgetStore(url, name)
    try:
        yield store
    finally:
        store.close()
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{{{name}}}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
