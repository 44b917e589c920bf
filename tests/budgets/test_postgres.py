"""The PostgreSQL budget store passes the conformance suite against a real server."""

from __future__ import annotations

import multiprocessing
import sys
import time
import uuid
from collections.abc import Iterator
from typing import cast

import pytest

from meterline.budgets._sqlite import SCHEMA_VERSION
from meterline.exceptions import BudgetStoreError, ConfigurationError
from tests.budgets.conformance import NOW, StoreConformance, check_a_frozen_store_gives_up, line, vec
from tests.budgets.stores import drop_schema
from tests.ledger.services import require_postgres
from tests.storage.freezer import frozen_relay

pytest.importorskip("psycopg")

from meterline.budgets._postgres import PostgresBudgetStore


@pytest.fixture
def fresh() -> Iterator[tuple[str, str]]:
    """The test server's URL and a new schema name, dropped afterwards."""
    url = require_postgres()
    schema = f"budget_{uuid.uuid4().hex[:12]}"
    yield url, schema
    drop_schema(url, schema)


class TestPostgres(StoreConformance):
    """The conformance suite on PostgreSQL, one fresh schema per test."""

    @pytest.fixture
    def store(self, fresh: tuple[str, str]) -> Iterator[PostgresBudgetStore]:
        """A fresh store in a new schema."""
        store = PostgresBudgetStore(*fresh)
        yield store
        store.close()


def test_newer_schema_is_refused(fresh: tuple[str, str]) -> None:
    """Tables written by a newer meterline are refused, naming both versions."""
    import psycopg
    from psycopg import sql

    url, schema = fresh
    PostgresBudgetStore(url, schema).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET value = %s WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meterline_budget_meta")
            ),
            (str(SCHEMA_VERSION + 1),),
        )
    with pytest.raises(BudgetStoreError, match=rf"version {SCHEMA_VERSION + 1}, written by a newer"):
        PostgresBudgetStore(url, schema)


def test_version_2_is_brought_to_version_3_keeping_its_holds(fresh: tuple[str, str]) -> None:
    """A schema at version 2 (no functions) gets them on open; holds booked before are kept and settle."""
    import psycopg
    from psycopg import sql

    url, schema = fresh
    first = PostgresBudgetStore(url, schema)
    first.reserve("r1", [line(tokens=10)], [vec(4)], NOW, 30)
    first.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for function in ("meterline_budget_reserve", "meterline_budget_settle"):
            conn.execute(sql.SQL("DROP FUNCTION {}").format(sql.Identifier(schema, function)))
        conn.execute(
            sql.SQL("UPDATE {} SET value = '2' WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meterline_budget_meta")
            )
        )
    store = PostgresBudgetStore(url, schema)
    assert store.read([line()], NOW) == [(vec(0), vec(4))]
    assert store.settle("r1", [line()], [vec(3)], NOW) == [vec(3)]
    assert store.read([line()], NOW) == [(vec(3), vec(0))]
    store.close()


def test_reopening_keeps_the_counters(fresh: tuple[str, str]) -> None:
    """A second store on the same schema sees what the first one booked."""
    first = PostgresBudgetStore(*fresh)
    first.reserve("r1", [line(tokens=10)], [vec(4)], NOW, 30)
    second = PostgresBudgetStore(*fresh)
    assert second.read([line()], NOW) == [(vec(0), vec(4))]
    first.close()
    second.close()


def test_bad_schema_is_a_configuration_error() -> None:
    """A schema that is not an identifier is refused before anything is sent."""
    with pytest.raises(ConfigurationError, match="schema='x; DROP"):
        PostgresBudgetStore("postgresql://nobody@127.0.0.1:1/x", "x; DROP TABLE t")


def test_closed_port_fails_fast() -> None:
    """A server that is not there raises BudgetStoreError within seconds, the password hidden."""
    started = time.monotonic()
    with pytest.raises(BudgetStoreError) as caught:
        PostgresBudgetStore("postgresql://user:secret@127.0.0.1:1/test")
    assert time.monotonic() - started < 5
    assert "secret" not in str(caught.value)
    assert caught.value.__cause__ is not None


def test_closed_store_raises(fresh: tuple[str, str]) -> None:
    """Using a closed store raises BudgetStoreError; closing twice is fine."""
    store = PostgresBudgetStore(*fresh)
    store.close()
    store.close()
    with pytest.raises(BudgetStoreError, match="closed"):
        store.read([line()], NOW)


def test_server_restart_of_a_pooled_connection_is_survived(fresh: tuple[str, str]) -> None:
    """A pooled connection the server dropped is replaced once, without losing the call."""
    import psycopg

    url, schema = fresh
    store = PostgresBudgetStore(url, schema)
    store.settle(None, [line()], [vec(1)], NOW)
    (pooled,) = store._idle
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(%s)", (pooled.info.backend_pid,)).fetchone()
    assert killed == (True,)
    time.sleep(0.2)
    store.settle(None, [line()], [vec(2)], NOW)
    assert store.read([line()], NOW) == [(vec(3), vec(0))]
    store.close()


def _child(store: PostgresBudgetStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        store.settle(None, [line()], [vec(2)], NOW)
        queue.put((store.read([line()], NOW)[0][0], [conn.info.backend_pid for conn in store._idle]))
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_fork_safe(fresh: tuple[str, str]) -> None:
    """A forked child connects anew; the parent's pooled connection keeps working afterwards."""
    store = PostgresBudgetStore(*fresh)
    store.settle(None, [line()], [vec(1)], NOW)
    parents = {conn.info.backend_pid for conn in store._idle}
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    with store._lock:  # as if another thread were borrowing a connection when the process forked
        child = context.Process(target=_child, args=(store, queue))
        child.start()
    used, childs = cast("tuple[object, list[int]]", queue.get(timeout=30))
    assert used == vec(3)
    assert childs
    assert not parents & set(childs)
    child.join(30)
    assert child.exitcode == 0
    # A child that used (or closed) the parent's connection would have broken it.
    store.settle(None, [line()], [vec(4)], NOW)
    assert store.read([line()], NOW) == [(vec(7), vec(0))]
    store.close()


def test_a_frozen_server_is_given_up_on_within_the_timeout(fresh: tuple[str, str]) -> None:
    """A server that stops answering (frozen, not down) fails each operation within ``timeout``."""
    url, schema = fresh
    with frozen_relay(url, 5432) as relay:
        store = PostgresBudgetStore(relay.url(url), schema, timeout=1.0, connect_timeout=2)
        try:
            check_a_frozen_store_gives_up(store, relay, bound=1.0 + 1.5)
        finally:
            store.close()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), True, "5"])
def test_a_bad_timeout_is_refused(timeout: object) -> None:
    """The operation bound must be a positive number of seconds or None."""
    with pytest.raises(ConfigurationError, match="timeout="):
        PostgresBudgetStore("postgresql://nobody@127.0.0.1:1/x", timeout=timeout)  # type: ignore[arg-type]
