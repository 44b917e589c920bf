"""Where the test services are, and whether they are up: PostgreSQL and Redis on 127.0.0.1.

Tests that need a service call `require_postgres()` or `require_redis()`: they skip when the
service is unreachable, unless ``METERLINE_REQUIRE_SERVICES=1`` (as in CI), which makes an
unreachable service a failure instead of a silent skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The default PostgreSQL test database (``METERLINE_TEST_POSTGRES_URL`` overrides it)."""
REDIS_URL = "redis://127.0.0.1:6379/0"
"""The default Redis test database (``METERLINE_TEST_REDIS_URL`` overrides it)."""


def postgres_url() -> str:
    """The PostgreSQL test URL."""
    return os.environ.get("METERLINE_TEST_POSTGRES_URL") or POSTGRES_URL


def redis_url() -> str:
    """The Redis test URL."""
    return os.environ.get("METERLINE_TEST_REDIS_URL") or REDIS_URL


def _unavailable(what: str, url: str, reason: object) -> NoReturn:
    message = f"{what} unreachable at {_public(url)}: {reason}"
    if os.environ.get("METERLINE_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _public(url: str) -> str:
    from meterline._storage import postgres_public_url

    return postgres_public_url(url)


def require_postgres() -> str:
    """The PostgreSQL test URL if a connection succeeds; else skip (or fail when services are required)."""
    url = postgres_url()
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", url, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
    return url


def require_redis() -> str:
    """The Redis test URL if a ping succeeds; else skip (or fail when services are required)."""
    url = redis_url()
    redis = pytest.importorskip("redis")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        _unavailable("Redis", url, exc)
    return url
