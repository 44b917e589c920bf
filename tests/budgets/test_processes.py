"""Shared budget stores hold across processes: 16 processes never overshoot, lose or leak a reservation.

Store-level and not timed: each process opens its own store (``forkserver``: nothing is
inherited from the test process, and the server imports the drivers once, so 16 processes
start in about a second on two cores instead of fifteen with ``spawn``) and books against
two lines at once, a small org budget and a larger user budget. A reservation of a process
killed before it settles blocks others until its lease passes.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meterline.budgets._sqlite import SQLiteBudgetStore
from meterline.budgets._store import BudgetStore, Line
from tests.ledger.services import require_postgres, require_redis

PROCESSES = 16
RESERVATIONS = 200
RESERVE = 100
"""Nano-dollars each reservation asks for; it settles a random amount from 1 to this, or releases."""
ORG_LIMIT = 60_000
"""Small enough that the org budget runs out part of the way through (3,200 attempts)."""
LINES = [
    Line("org", ("o1",), 0, 0, (None, None, None, ORG_LIMIT, None, None)),
    Line("user", ("u1",), 0, 0, (None, None, None, 10 * ORG_LIMIT, None, None)),
]

Spec = tuple[str, str, str]
"""(kind, location, namespace): how a child process opens the store."""


def open_spec(spec: Spec) -> BudgetStore:
    """Open the store ``spec`` describes (in whichever process calls it)."""
    kind, location, namespace = spec
    if kind == "sqlite":
        return SQLiteBudgetStore(location, timeout=120)
    if kind == "postgres":
        from meterline.budgets._postgres import PostgresBudgetStore

        return PostgresBudgetStore(location, namespace)
    from meterline.budgets._redis import RedisBudgetStore

    return RedisBudgetStore(location, namespace)


def amounts(cost: int, requests: int) -> list[tuple[int, int, int, int, int, int]]:
    """The same amount on both lines."""
    return [(0, 0, 0, cost, requests, 0)] * 2


def worker(spec: Spec, number: int, start: Any, results: Any) -> None:
    """Reserve 200 times; settle a random amount up to the reservation, or release one in five."""
    store = open_spec(spec)
    rng = random.Random(number)
    granted = settled = released = charged = 0
    start.wait(60)
    for attempt in range(RESERVATIONS):
        rid = f"p{number}-{attempt}"
        if store.reserve(rid, LINES, amounts(RESERVE, 1), time.time(), 60) is not None:
            continue
        granted += 1
        if rng.random() < 0.2:
            store.release(rid)
            released += 1
        else:
            actual = rng.randint(1, RESERVE)
            store.settle(rid, LINES, amounts(actual, 1), time.time())
            settled += 1
            charged += actual
    store.close()
    results.put((granted, settled, released, charged))


def holder(spec: Spec, lease: float, ready: Any) -> None:
    """Reserve the whole org budget with a short lease, say so, then hang until killed."""
    store = open_spec(spec)
    ready.put(store.reserve("doomed", LINES, amounts(ORG_LIMIT, 0), time.time(), lease))
    time.sleep(600)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spec]:
    """Each shared store, fresh: a new file, PostgreSQL schema or Redis prefix."""
    namespace = f"procs_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        yield ("sqlite", str(tmp_path / "budgets.db"), "")
        return
    if request.param == "postgres":
        from tests.budgets.stores import drop_schema

        url = require_postgres()
        yield ("postgres", url, namespace)
        drop_schema(url, namespace)
        return
    from tests.budgets.stores import delete_prefix

    url = require_redis()
    yield ("redis", url, namespace)
    delete_prefix(url, namespace)


def clean_context() -> multiprocessing.context.BaseContext:
    """A context whose processes inherit nothing from this one (forkserver, or spawn without it)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "meterline.budgets._postgres", "meterline.budgets._redis"])
    return context


def run(context: multiprocessing.context.BaseContext, target: Callable[..., None], *args: object) -> Any:
    """Start ``target`` in a new process."""
    process = context.Process(target=target, args=args, daemon=True)  # type: ignore[attr-defined]
    process.start()
    return process


def test_sixteen_processes_never_overshoot(spec: Spec) -> None:
    """16 processes x 200 reservations: settled total within the limit, none lost, none leaked."""
    store = open_spec(spec)  # creates the tables before the children race to
    context = clean_context()
    start = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    processes = [run(context, worker, spec, number, start, results) for number in range(PROCESSES)]
    start.wait(120)
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    granted, settled, released, charged = (sum(column) for column in zip(*outcomes, strict=True))
    (org_used, org_held), (user_used, user_held) = store.read(LINES, time.time())
    store.close()
    assert org_used[3] == user_used[3] == charged <= ORG_LIMIT  # cost: within the limit, nothing lost
    assert org_used[4] == user_used[4] == settled  # requests: one per settled reservation
    assert granted == settled + released
    assert org_held == user_held == (0, 0, 0, 0, 0, 0)  # nothing leaked
    assert granted < PROCESSES * RESERVATIONS  # the limit was reached: some were refused
    assert charged > ORG_LIMIT // 2


def test_killed_process_hold_expires(spec: Spec) -> None:
    """A process killed before settling blocks the budget until its lease passes, then frees it."""
    lease = 1.5
    store = open_spec(spec)
    context = clean_context()
    ready = context.Queue()
    process = run(context, holder, spec, lease, ready)
    assert ready.get(timeout=60) is None  # booked
    booked = time.time()
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    blocked = store.reserve("blocked", LINES, amounts(1, 0), time.time(), 30)
    assert time.time() < booked + lease  # still inside the lease: the refusal is the hold's doing
    assert blocked is not None
    assert (blocked.line, blocked.reserved) == (0, ORG_LIMIT)
    time.sleep(max(0.0, booked + lease + 0.2 - time.time()))
    assert store.reserve("after", LINES, amounts(ORG_LIMIT, 0), time.time(), 30) is None
    store.release("after")
    store.close()
