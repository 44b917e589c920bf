"""A state machine that runs a SQL ledger beside `meterline.testing.InMemoryLedger`.

Random writes (in time order, late, repeated ids), prunes, re-pricing and reports, through two
ledger objects on one store (two connections, as two processes would have): after every step
each report, the stats and the events read back equal the in-memory ledger's. The events'
latencies are whole milliseconds, so their sums are exact in any order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterline import Usage, UsageEvent
from meterline.ledger import LedgerBackend
from meterline.testing import InMemoryLedger
from tests.ledger.conformance import T0, make_event

_MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-x"), (None, None))
_BY = (
    (),
    ("org",),
    ("user",),
    ("session",),
    ("tool",),
    ("model",),
    ("user", "model"),
    ("org", "agent"),
    ("status", "session"),
)
_WHERE: tuple[dict[str, object] | None, ...] = (
    None,
    {"org": "o1"},
    {"session": [None, "s2"]},
    {"model": "gpt-4o"},
    {"provider": "OpenAI"},
)


def _minutes(minutes: int, seconds: int = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


class LedgerMachine(RuleBasedStateMachine):
    """Two connections to one SQL ledger, checked against the in-memory ledger after each step."""

    open_ledger: ClassVar[Callable[[], tuple[LedgerBackend, LedgerBackend, Callable[[], None]]]]
    """Set by the test: opens a fresh store twice, and gives what drops it."""

    def __init__(self) -> None:
        super().__init__()
        self.ledgers: tuple[LedgerBackend, LedgerBackend]
        first, second, self.drop = type(self).open_ledger()
        self.ledgers = (first, second)
        self.model = InMemoryLedger()
        self.clock = 0  # minutes from T0 of the newest event
        self.floor = 0  # minutes from T0 of the last prune
        self.numbered = 0
        self.written: dict[str, UsageEvent] = {}

    def teardown(self) -> None:
        """Close both connections and drop the store."""
        for ledger in self.ledgers:
            ledger.close()
        self.drop()

    @rule(
        data=st.data(),
        size=st.integers(1, 12),
        late=st.booleans(),
        which=st.integers(0, 1),
    )
    def write(self, data: st.DataObject, size: int, late: bool, which: int) -> None:
        """A batch: new events after the newest (or late ones, after the last prune), some ids again."""
        events: list[UsageEvent] = []
        for _ in range(size):
            if self.written and data.draw(st.integers(0, 9)) == 0:  # an id written before, kept or pruned
                events.append(self.written[data.draw(st.sampled_from(sorted(self.written)))])
                continue
            if late:
                minute = data.draw(st.integers(self.floor, max(self.floor, self.clock)))
                self.clock = max(self.clock, minute)
            else:
                self.clock += data.draw(st.integers(0, 900))
                minute = self.clock
            events.append(self._event(data, minute))
        got = self.ledgers[which].write(events)
        assert got == self.model.write(events)
        for event in events:
            self.written.setdefault(event.id, event)

    def _event(self, data: st.DataObject, minute: int) -> UsageEvent:
        session = data.draw(st.integers(0, 5))
        dims = {"org": f"o{session % 2}", "user": f"u{session % 3}", "session": f"s{session}"}
        if data.draw(st.booleans()):
            dims["agent"] = f"a{data.draw(st.integers(0, 1))}"
        at = _minutes(minute, data.draw(st.integers(0, 59)))
        self.numbered += 1
        number = self.numbered
        if data.draw(st.integers(0, 4)) == 0:
            dims["tool"] = f"t{data.draw(st.integers(0, 1))}"
            return make_event(
                number, at, operation="execute_tool", model=None, provider=None, cost=None, dims=dims
            )
        provider, model = data.draw(st.sampled_from(_MODELS))
        measured = data.draw(st.integers(0, 5)) != 0
        cost = data.draw(st.one_of(st.none(), st.integers(0, 10**13)))
        return make_event(
            number,
            at,
            provider=provider,
            model=model,
            cost=None if cost is None else str(Decimal(cost).scaleb(-12)),
            usage=Usage(input_tokens=data.draw(st.integers(0, 10**6)), output_tokens=minute % 1000)
            if measured
            else None,
            status=data.draw(st.sampled_from(("ok", "error"))),
            latency_ms=float(data.draw(st.integers(0, 9000))),
            dims=dims,
        )

    @rule(data=st.data(), which=st.integers(0, 1))
    def prune(self, data: st.DataObject, which: int) -> None:
        """A prune anywhere from the last one to past the newest event, at any second."""
        minute = data.draw(st.integers(self.floor, max(self.floor, self.clock + 60)))
        cut = _minutes(minute, data.draw(st.integers(0, 59)))
        assert self.ledgers[which].prune(cut) == self.model.prune(cut)
        self.floor = max(self.floor, minute + 1)

    @rule(data=st.data(), which=st.integers(0, 1))
    def reprice(self, data: st.DataObject, which: int) -> None:
        """New costs (or none) for some events written, kept or not."""
        if not self.written:
            return
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.written)), min_size=1, max_size=6, unique=True)
        )
        changes: list[tuple[str, Decimal | None, str | None]] = []
        for event_id in chosen:
            cost = data.draw(st.one_of(st.none(), st.integers(0, 10**13)))
            changes.append((event_id, None if cost is None else Decimal(cost).scaleb(-12), "repriced"))
        assert self.ledgers[which].reprice(changes) == self.model.reprice(changes)

    @rule(
        data=st.data(),
        by=st.sampled_from(_BY),
        where=st.sampled_from(_WHERE),
        granularity=st.sampled_from((None, "hour", "day", "month")),
        which=st.integers(0, 1),
    )
    def report(
        self, data: st.DataObject, by: tuple[str, ...], where: Any, granularity: Any, which: int
    ) -> None:
        """Any report over any range is the in-memory ledger's, to the last digit."""
        bounds: list[datetime | None] = []
        for _ in range(2):
            minute = data.draw(st.one_of(st.none(), st.integers(-60, self.clock + 60)))
            bounds.append(None if minute is None else _minutes(minute, data.draw(st.integers(0, 59))))
        since, until = bounds
        query = {"by": by, "where": where, "since": since, "until": until, "granularity": granularity}
        assert self.ledgers[which].totals(**query) == self.model.totals(**query), query

    @invariant()
    def holds_the_events_kept(self) -> None:
        """Both connections see the same events, counts and values; reports with no dimension or one agree."""
        expected = self.model.stats()
        events = list(self.model.events())
        for ledger in self.ledgers:
            stats = ledger.stats()
            assert (stats.events, stats.dimension_values) == (expected.events, expected.dimension_values)
            assert list(ledger.events()) == events
        for by in ((), ("model",), ("session",), ("org", "model")):
            assert self.ledgers[0].totals(by=by) == self.model.totals(by=by)
