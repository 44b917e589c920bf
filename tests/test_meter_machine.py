"""Nothing poisons the meter: hostile and ordinary calls, budget stores that freeze, lock and restart.

A hypothesis state machine records ordinary events and hostile ones (every field at and past
its limits, wrong types, NaN, surrogates) through a meter with a SQLite ledger (sync) and
budgets on SQLite, PostgreSQL or Redis, while the budget store is made unavailable and brought
back at random: locked by another writer (SQLite), frozen or restarted (PostgreSQL and Redis,
through a relay). At the end, with the store back and the budgets rebuilt from the ledger:

- nothing but documented `MeterlineError` s was raised into the host;
- every acknowledged event is in the ledger or the dead letters, exactly once;
- the ledger's totals are the sum of the events it stored, the live totals the sum of every
  acknowledged event;
- the global budget counted every acknowledged model call the ledger holds, and no more than
  were acknowledged.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from meterline import Budget, BudgetExceeded, Meter, MeterlineError, Usage, UsageEvent
from meterline._delivery import default_spool_dir
from meterline.budgets import BudgetStore, SQLiteBudgetStore
from meterline.ledger import DEAD_LETTERS_NAME, DeadLetters, SQLiteLedger
from tests.budgets.stores import delete_prefix, drop_schema
from tests.ledger.services import require_postgres, require_redis
from tests.storage.freezer import Freezer

pytestmark = [
    pytest.mark.services,
    pytest.mark.filterwarnings("ignore::meterline.exceptions.UnpricedModelWarning"),
]

USERS = st.sampled_from(["u1", "u2", "u3"])
COUNTS = (
    st.integers(0, 10**6)
    | st.sampled_from([2**40, 2**40 + 1, 2**62, 2**63 - 1, 2**63])
    | st.integers(-5, 2**64)
    | st.booleans()
    | st.floats(allow_nan=True)
)
TEXT = (
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "in-house", "", "x" * 256, "é" * 129, "gpt-\ud800"])
    | st.text(max_size=300)
    | st.integers(-3, 3)
)
LATENCIES = (
    st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 2**70) | st.booleans()
)
TAGS = st.none() | st.dictionaries(
    st.sampled_from(["feature", "Bad Name", "model", "t1", "t2"]),
    st.text(max_size=300) | st.integers(-3, 3) | st.none(),
    max_size=4,
)


class MeterMachine(RuleBasedStateMachine):
    """One meter, its ledger and a budget store that comes and goes."""

    kind: ClassVar[str] = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="meterline-machine-"))
        self.previous_spool = os.environ.get("METERLINE_SPOOL_DIR")
        os.environ["METERLINE_SPOOL_DIR"] = str(self.directory / "spool")
        self.relay: Freezer | None = None
        self.prefix = ""  # the PostgreSQL schema or Redis prefix of the budget store
        self.locker: sqlite3.Connection | None = None
        self.down = False
        self.store = self._open_store()
        self.ledger = SQLiteLedger(self.directory / "usage.db")
        self.meter = Meter(
            self.ledger,
            durability="sync",
            budget_store=self.store,
            budgets=[
                Budget(max_requests=10**15, name="global"),
                Budget(per=("user",), max_tokens=10**15, max_cost="9000000", name="per-user"),
            ],
        )
        self.acknowledged: dict[str, UsageEvent] = {}

    def _open_store(self) -> BudgetStore:
        if self.kind == "sqlite":
            return SQLiteBudgetStore(self.directory / "budgets.db", timeout=0.2)
        prefix = self.prefix = f"machine_{uuid.uuid4().hex[:10]}"
        if self.kind == "postgres":
            from meterline.budgets import PostgresBudgetStore

            url = require_postgres()
            self.relay = Freezer(_address(url, 5432))
            return PostgresBudgetStore(self.relay.url(url), prefix, timeout=0.3, connect_timeout=2)
        from meterline.budgets import RedisBudgetStore

        url = require_redis()
        self.relay = Freezer(_address(url, 6379))
        return RedisBudgetStore(self.relay.url(url), prefix, timeout=0.3)

    # -- the host's calls ----------------------------------------------------------------

    def _keep(self, event: UsageEvent) -> None:
        assert event.id not in self.acknowledged
        self.acknowledged[event.id] = event

    @rule(
        user=USERS,
        inputs=st.integers(0, 10**6),
        outputs=st.integers(0, 10**5),
        model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "in-house"]),
    )
    def ordinary_call(self, user: str, inputs: int, outputs: int, model: str) -> None:
        """A reserved call, recorded with what it used (or refused by a budget: nothing is recorded)."""
        usage = Usage(input_tokens=inputs, output_tokens=outputs)
        with self.meter.scope(user=user):
            try:
                reservation = self.meter.reserve(model=model, provider="openai", input_tokens=inputs)
            except BudgetExceeded:
                return  # an unpriced model under a cost budget fails closed by default
            with reservation:
                self._keep(self.meter.record(usage, model=model, provider="openai"))

    @rule(
        user=USERS | TEXT,
        inputs=COUNTS,
        outputs=COUNTS,
        cached=COUNTS,
        model=TEXT,
        status=TEXT,
        latency=LATENCIES,
        attempt=st.integers(-1, 2**40) | st.booleans(),
        tags=TAGS,
    )
    def hostile_call(self, **call: Any) -> None:
        """Any values at all: refused with a MeterlineError, or kept."""
        try:
            usage = Usage(
                input_tokens=call["inputs"], output_tokens=call["outputs"], cache_read_tokens=call["cached"]
            )
            with self.meter.scope(user=call["user"]):
                event = self.meter.record(
                    usage,
                    model=call["model"],
                    provider="openai",
                    status=call["status"],
                    latency_ms=call["latency"],
                    attempt=call["attempt"],
                    tags=call["tags"],
                )
        except MeterlineError:
            return
        self._keep(event)

    @rule(inputs=COUNTS, outputs=COUNTS, tools=COUNTS)
    def hostile_reservation(self, inputs: Any, outputs: Any, tools: Any) -> None:
        """A reservation of any size: a reservation, or a MeterlineError (never a silent pass)."""
        try:
            reservation = self.meter.reserve(
                model="gpt-4o",
                provider="openai",
                input_tokens=inputs,
                max_output_tokens=outputs,
                tool_calls=tools,
            )
        except MeterlineError:
            return
        reservation.release()

    @rule(name=st.sampled_from(["search", "fetch"]), duration=LATENCIES)
    def tool_call(self, name: str, duration: Any) -> None:
        """A tool call, timed by any value."""
        try:
            self._keep(self.meter.record_tool(name, duration_ms=duration))
        except MeterlineError:
            return

    # -- the store's weather ------------------------------------------------------------

    @precondition(lambda self: not self.down)
    @rule()
    def store_goes_down(self) -> None:
        """The store stops answering: locked by another writer, or frozen."""
        self.down = True
        if self.relay is not None:
            self.relay.freeze()
            return
        self.locker = sqlite3.connect(self.directory / "budgets.db", isolation_level=None, timeout=5)
        self.locker.execute("BEGIN EXCLUSIVE")

    @precondition(lambda self: self.down)
    @rule()
    def store_comes_back(self) -> None:
        """The store answers again."""
        self._back()

    @precondition(lambda self: self.relay is not None and not self.down)
    @rule()
    def store_restarts(self) -> None:
        """Every connection to the store is dropped, as a server restart does."""
        assert self.relay is not None
        self.relay.drop()

    def _back(self) -> None:
        self.down = False
        if self.relay is not None:
            self.relay.thaw()
        if self.locker is not None:
            self.locker.execute("COMMIT")
            self.locker.close()
            self.locker = None

    @invariant()
    def live_totals_add_up(self) -> None:
        """The live totals are the sum of every acknowledged event, at every step."""
        totals = self.meter.totals()
        assert totals.events == len(self.acknowledged)
        assert totals.usage.input_tokens == sum(
            event.usage.input_tokens for event in self.acknowledged.values() if event.usage is not None
        )

    def teardown(self) -> None:
        """Check the end (see the module docstring), then close and delete everything."""
        try:
            self._check_the_end()
        finally:
            self.meter.close()
            self.ledger.close()
            self.store.close()
            if self.relay is not None:
                self.relay.close()
            if self.kind == "postgres":  # the store's schema, one per example
                drop_schema(require_postgres(), self.prefix)
            elif self.kind == "redis":
                delete_prefix(require_redis(), self.prefix)
            if self.previous_spool is None:
                os.environ.pop("METERLINE_SPOOL_DIR", None)
            else:
                os.environ["METERLINE_SPOOL_DIR"] = self.previous_spool
            shutil.rmtree(self.directory, ignore_errors=True)

    def _check_the_end(self) -> None:
        if self.down:
            self._back()
        assert self.meter.flush(timeout=30)
        assert self.meter.stats().ledger is not None
        letters = DeadLetters(Path(default_spool_dir(self.ledger.url)) / DEAD_LETTERS_NAME)
        writer_letters = {letter.event.id for letter in letters}
        stored = {event.id: event for event in self.ledger.events()}
        assert not stored.keys() & writer_letters
        assert stored.keys() | writer_letters == self.acknowledged.keys()
        kept = [self.acknowledged[event_id] for event_id in stored]
        rows = self.ledger.totals()
        assert len(rows) == (1 if kept else 0)
        for row in rows:
            assert row.events == len(kept)
            assert row.usage.input_tokens == sum(event.usage.input_tokens for event in kept if event.usage)
            assert row.cost == sum(
                (event.cost for event in kept if event.cost is not None), start=row.cost * 0
            )
        self.meter.rebuild_budgets(flush=False)
        calls = {
            event_id
            for event_id, event in self.acknowledged.items()
            if event.operation not in ("execute_tool", "cache_hit")
        }
        (requests,) = [row.used for row in self.meter.budget_status() if row.budget == "global"]
        assert len(calls & stored.keys()) <= requests <= len(calls)


def _address(url: str, port: int) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or port


def _machine_test(kind: str, examples: int) -> Any:
    machine: Any = type(f"MeterMachine_{kind}", (MeterMachine,), {"kind": kind})
    case = machine.TestCase
    case.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    return case


TestWithSQLite = _machine_test("sqlite", 25)
TestWithPostgres = _machine_test("postgres", 8)
TestWithRedis = _machine_test("redis", 8)
