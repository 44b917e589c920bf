"""The conformance suite every `BudgetStore` passes.

A store's test module subclasses `StoreConformance` and provides a ``store`` fixture that
yields a fresh, empty store (and closes it afterwards)::

    class TestMemory(StoreConformance):
        @pytest.fixture
        def store(self):
            yield MemoryBudgetStore()

The class name does not start with ``Test``, so pytest collects it only through subclasses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from meterline.budgets._store import (
    COST,
    COUNTER_MAX,
    METRICS,
    TOKENS,
    ZERO,
    BudgetStore,
    Line,
    Refusal,
    Vector,
)
from meterline.exceptions import BudgetStoreError
from tests.storage.freezer import Freezer

NOW = 1_800_000_000.0
"""A fixed clock, in seconds since the epoch."""
HOSTILE = ("'; DROP TABLE budget; --", "{tag}:x", 'q"uote\\', "ünï 💸 \x00", "a" * 300)


def line(
    budget: str = "b",
    key: tuple[str, ...] = ("u1",),
    *,
    tokens: int | None = None,
    cost: int | None = None,
    requests: int | None = None,
    bucket: int = 0,
    first: int | None = None,
) -> Line:
    """A line limiting tokens, cost (nano-dollars) and/or requests."""
    return Line(
        budget,
        key,
        bucket,
        bucket if first is None else first,
        (tokens, None, None, cost, requests, None),
    )


def vec(tokens: int = 0, cost: int = 0, requests: int = 0) -> Vector:
    """An amount vector of tokens, cost and requests."""
    return (tokens, tokens, 0, cost, requests, 0)


class StoreConformance:
    """Rules that hold for every budget store."""

    exact_past_64_bits = False
    """Whether the store keeps sums past `COUNTER_MAX` exactly (memory) instead of saturating."""

    def test_a_charge_past_what_a_counter_holds_never_fails(self, store: BudgetStore) -> None:
        """Charges past COUNTER_MAX leave the counter there (or exact), and the other metrics still count."""
        for _ in range(3):
            after = store.settle(None, [line()], [vec(COUNTER_MAX, requests=1)], NOW)
        expected = 3 * COUNTER_MAX if self.exact_past_64_bits else COUNTER_MAX
        assert after == [(expected, expected, 0, 0, 3, 0)]
        assert store.read([line()], NOW) == [((expected, expected, 0, 0, 3, 0), ZERO)]

    def test_saturated_buckets_and_holds_add_up_without_failing(self, store: BudgetStore) -> None:
        """A rolling window of saturated buckets is read and settled; holds stop at what a counter holds."""
        rolling = [line(bucket=bucket, first=100) for bucket in (100, 200, 300)]
        for each in rolling:
            store.settle(None, [each], [vec(COUNTER_MAX, requests=1)], NOW)
        for index in range(2):
            assert store.reserve(f"r{index}", [line("other")], [vec(COUNTER_MAX // 2)], NOW, 60) is None
        third = store.reserve("r2", [line("other")], [vec(COUNTER_MAX // 2)], NOW, 60)
        assert (third is None) == self.exact_past_64_bits  # holds never pass what a counter holds
        sums = 3 * COUNTER_MAX if self.exact_past_64_bits else COUNTER_MAX
        held = (3 if self.exact_past_64_bits else 2) * (COUNTER_MAX // 2)
        assert store.read([rolling[-1], line("other")], NOW) == [
            ((sums, sums, 0, 0, 3, 0), ZERO),
            (ZERO, (held, held, 0, 0, 0, 0)),
        ]
        after = store.settle(None, [rolling[-1]], [vec(1, requests=1)], NOW)
        assert after == [(sums + self.exact_past_64_bits, sums + self.exact_past_64_bits, 0, 0, 4, 0)]

    def test_a_reservation_past_what_a_counter_holds_is_refused(self, store: BudgetStore) -> None:
        """Past COUNTER_MAX, a metric without a limit refuses as if that were its limit (or counts on)."""
        store.settle(None, [line()], [vec(COUNTER_MAX)], NOW)
        refusal = store.reserve("r", [line(requests=10)], [vec(1, requests=1)], NOW, 60)
        if self.exact_past_64_bits:
            assert refusal is None
        else:
            assert refusal == Refusal(0, TOKENS, COUNTER_MAX, COUNTER_MAX, 0, 1)

    def test_protocol(self, store: BudgetStore) -> None:
        """The store implements the `BudgetStore` protocol."""
        assert isinstance(store, BudgetStore)
        assert isinstance(store.url, str)

    def test_reserve_within_limit_holds(self, store: BudgetStore) -> None:
        """A reservation within the limit is booked and shows as reserved, not used."""
        lines = [line(tokens=100)]
        assert store.reserve("r1", lines, [vec(60)], NOW, 30) is None
        assert store.read(lines, NOW) == [(ZERO, vec(60))]

    def test_reserve_over_limit_refuses_with_figures(self, store: BudgetStore) -> None:
        """A reservation that would pass the limit is refused, naming used, reserved and requested."""
        lines = [line(tokens=100)]
        store.settle(None, lines, [vec(30)], NOW)
        assert store.reserve("r1", lines, [vec(50)], NOW, 30) is None
        refusal = store.reserve("r2", lines, [vec(21)], NOW, 30)
        assert refusal is not None
        assert (refusal.line, refusal.metric, refusal.limit) == (0, TOKENS, 100)
        assert (refusal.used, refusal.reserved, refusal.requested) == (30, 50, 21)
        assert store.read(lines, NOW) == [(vec(30), vec(50))]

    def test_exactly_at_limit_is_allowed(self, store: BudgetStore) -> None:
        """Reaching the limit exactly is allowed; one more is refused."""
        lines = [line(cost=1000)]
        assert store.reserve("r1", lines, [vec(cost=1000)], NOW, 30) is None
        assert store.reserve("r2", lines, [vec(cost=1)], NOW, 30) is not None

    def test_all_or_nothing_across_lines(self, store: BudgetStore) -> None:
        """When one line refuses, no line keeps a hold."""
        lines = [line("org", ("o1",), tokens=1000), line("user", ("u1",), tokens=10)]
        refusal = store.reserve("r1", lines, [vec(20), vec(20)], NOW, 30)
        assert refusal is not None
        assert refusal.line == 1
        assert store.read(lines, NOW) == [(ZERO, ZERO), (ZERO, ZERO)]

    def test_unlimited_metrics_never_refuse(self, store: BudgetStore) -> None:
        """A metric without a limit is counted but never refuses."""
        lines = [line(requests=2)]
        big: Vector = (10**15, 10**15, 10**15, 10**15, 1, 10**15)
        assert store.reserve("r1", lines, [big], NOW, 30) is None
        assert store.read(lines, NOW) == [(ZERO, big)]

    def test_settle_replaces_the_hold_with_usage(self, store: BudgetStore) -> None:
        """Settling deletes the reservation's hold and adds the actual amount."""
        lines = [line(tokens=100)]
        store.reserve("r1", lines, [vec(80)], NOW, 30)
        after = store.settle("r1", lines, [vec(25, cost=7, requests=1)], NOW)
        assert after == [vec(25, cost=7, requests=1)]
        assert store.read(lines, NOW) == [(vec(25, cost=7, requests=1), ZERO)]
        assert store.reserve("r2", lines, [vec(75)], NOW, 30) is None

    def test_settle_is_unconditional(self, store: BudgetStore) -> None:
        """Usage that happened is counted even past the limit."""
        lines = [line(tokens=10)]
        assert store.settle(None, lines, [vec(50)], NOW) == [vec(50)]
        assert store.read(lines, NOW)[0][0] == vec(50)

    def test_settle_twice_charges_twice_but_releases_once(self, store: BudgetStore) -> None:
        """A second settle of the same reservation charges its amount; the hold is gone already."""
        lines = [line(tokens=100)]
        store.reserve("r1", lines, [vec(40)], NOW, 30)
        store.settle("r1", lines, [vec(10)], NOW)
        store.settle("r1", lines, [vec(5)], NOW)
        assert store.read(lines, NOW) == [(vec(15), ZERO)]

    def test_settling_other_counters_still_drops_every_hold(self, store: BudgetStore) -> None:
        """A settle of other counters than were held (the route changed) frees all the reservation holds."""
        a, b, c = line("a"), line("b"), line("c")
        store.reserve("r1", [a, b], [vec(4), vec(5)], NOW, 30)
        store.settle("r1", [a, c], [vec(1), vec(2)], NOW)
        assert store.read([a, b, c], NOW) == [(vec(1), ZERO), (ZERO, ZERO), (vec(2), ZERO)]
        store.reserve("r2", [a, b], [vec(4), vec(5)], NOW, 30)
        store.settle("r2", [b], [vec(3)], NOW)
        assert store.read([a, b], NOW) == [(vec(1), ZERO), (vec(3), ZERO)]
        store.reserve("r3", [a], [vec(4)], NOW, 30)
        store.settle("r3", [a, b], [vec(1), vec(1)], NOW)
        assert store.read([a, b], NOW) == [(vec(2), ZERO), (vec(4), ZERO)]

    def test_release_drops_the_hold(self, store: BudgetStore) -> None:
        """Releasing frees what the reservation held; releasing again or an unknown id does nothing."""
        lines = [line(tokens=100)]
        store.reserve("r1", lines, [vec(100)], NOW, 30)
        store.release("r1")
        store.release("r1")
        store.release("never-was")
        assert store.read(lines, NOW) == [(ZERO, ZERO)]
        assert store.reserve("r2", lines, [vec(100)], NOW, 30) is None

    def test_leases_expire(self, store: BudgetStore) -> None:
        """A hold whose lease has passed counts for nothing."""
        lines = [line(tokens=100)]
        store.reserve("r1", lines, [vec(100)], NOW, 5)
        assert store.reserve("r2", lines, [vec(1)], NOW + 4.9, 5) is not None
        assert store.read(lines, NOW + 5) == [(ZERO, ZERO)]
        assert store.reserve("r3", lines, [vec(100)], NOW + 5.1, 5) is None
        # The expired reservation settling late still counts its usage, and frees nothing else.
        store.settle("r1", lines, [vec(7)], NOW + 6)
        assert store.read(lines, NOW + 6) == [(vec(7), vec(100))]

    def test_windows_are_buckets(self, store: BudgetStore) -> None:
        """A calendar window counts only its own bucket; the next window starts from zero."""
        day1 = line(tokens=100, bucket=86_400)
        day2 = line(tokens=100, bucket=2 * 86_400)
        store.settle(None, [day1], [vec(90)], NOW)
        assert store.reserve("r1", [day1], [vec(20)], NOW, 30) is not None
        assert store.reserve("r2", [day2], [vec(100)], NOW, 30) is None
        assert store.read([day2], NOW) == [(ZERO, vec(100))]

    def test_rolling_window_sums_its_buckets(self, store: BudgetStore) -> None:
        """A rolling window sums the buckets from ``first_bucket`` to ``bucket``."""
        for bucket, tokens in ((60, 5), (120, 7), (180, 11)):
            store.settle(None, [line(bucket=bucket)], [vec(tokens)], NOW)
        assert store.read([line(bucket=180, first=120)], NOW)[0][0] == vec(18)
        assert store.read([line(bucket=240, first=120)], NOW)[0][0] == vec(18)
        assert store.read([line(bucket=240, first=180)], NOW)[0][0] == vec(11)

    def test_counters_are_separate(self, store: BudgetStore) -> None:
        """Budgets and keys never share counters, even with look-alike names."""
        a, b, c = line("b", ("u1",), tokens=10), line("b", ("u2",), tokens=10), line("b2", ("u1",), tokens=10)
        store.settle(None, [a], [vec(10)], NOW)
        assert store.read([b, c], NOW) == [(ZERO, ZERO), (ZERO, ZERO)]
        two = line("b", ("x", "y"), tokens=10)
        joined = line("b", ("x\x1fy",), tokens=10)
        store.settle(None, [two], [vec(3)], NOW)
        assert store.read([joined], NOW) == [(ZERO, ZERO)]

    def test_global_key(self, store: BudgetStore) -> None:
        """A global budget's key is the empty tuple."""
        glob = line("all", ())
        store.settle(None, [glob], [vec(4)], NOW)
        assert store.read([glob], NOW)[0][0] == vec(4)
        assert store.keys("all") == [()]

    @pytest.mark.parametrize("name", HOSTILE)
    def test_hostile_names_are_data(self, store: BudgetStore, name: str) -> None:
        """Budget names and key values are stored as data, whatever characters they hold."""
        hostile = line(name, (name, "v"), tokens=10)
        assert store.reserve("r1", [hostile], [vec(4)], NOW, 30) is None
        store.settle("r1", [hostile], [vec(3)], NOW)
        assert store.read([hostile], NOW) == [(vec(3), ZERO)]
        assert store.keys(name) == [(name, "v")]
        assert store.forget(name, (name, None)) == 1

    def test_keys_and_forget(self, store: BudgetStore) -> None:
        """`keys` lists a budget's counters; `forget` deletes the matching ones, usage and holds."""
        for user, session in (("u1", "s1"), ("u1", "s2"), ("u2", "s1")):
            store.settle(None, [line("b", (user, session))], [vec(1)], NOW)
        store.reserve("r1", [line("b", ("u3", "s1"), tokens=100)], [vec(5)], NOW, 30)
        assert store.keys("b") == [("u1", "s1"), ("u1", "s2"), ("u2", "s1"), ("u3", "s1")]
        assert store.keys("other") == []
        assert store.forget("b", ("u1", None)) == 2
        assert store.forget("b", (None, "s1")) == 2
        assert store.keys("b") == []
        assert store.read([line("b", ("u3", "s1"))], NOW) == [(ZERO, ZERO)]
        store.release("r1")

    def test_alerts_are_claimed_once(self, store: BudgetStore) -> None:
        """An alert is claimed once per (budget, key, window, threshold)."""
        assert store.claim_alert("b", ("u1",), 0, 800) is True
        assert store.claim_alert("b", ("u1",), 0, 800) is False
        assert store.claim_alert("b", ("u1",), 0, 1000) is True
        assert store.claim_alert("b", ("u2",), 0, 800) is True
        assert store.claim_alert("b", ("u1",), 86_400, 800) is True

    def test_definitions(self, store: BudgetStore) -> None:
        """Definitions are stored by name and replaced on redefinition."""
        store.define("b", '{"max_tokens": 1}')
        store.define("c", '{"max_tokens": 2}')
        store.define("b", '{"max_tokens": 3}')
        assert store.definitions() == {"b": '{"max_tokens": 3}', "c": '{"max_tokens": 2}'}

    def test_large_amounts_are_exact(self, store: BudgetStore) -> None:
        """Amounts up to 2**53 add up exactly."""
        big = 2**52
        lines = [line(cost=2 * big + 1)]
        store.settle(None, lines, [vec(cost=big)], NOW)
        assert store.reserve("r1", lines, [vec(cost=big + 1)], NOW, 30) is None
        assert store.reserve("r2", lines, [vec(cost=1)], NOW, 30) is not None
        assert store.read(lines, NOW) == [(vec(cost=big), vec(cost=big + 1))]

    def test_threads_never_overshoot(self, store: BudgetStore) -> None:
        """Eight threads reserving and settling against one small budget never pass its limit."""
        lines = [line("org", ("o",), cost=5_000), line("user", ("u",), cost=1_000_000)]
        granted = []

        def worker(number: int) -> None:
            for attempt in range(40):
                rid = f"t{number}-{attempt}"
                if store.reserve(rid, lines, [vec(cost=300), vec(cost=300)], NOW, 30) is None:
                    granted.append(rid)
                    store.settle(rid, lines, [vec(cost=250), vec(cost=250)], NOW)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        (used, reserved), _ = store.read(lines, NOW)
        assert reserved == ZERO
        assert used[COST] == 250 * len(granted) <= 5_000
        assert used[COST] + 300 > 5_000  # the budget was used up, not starved

    def test_metrics_order(self) -> None:
        """Vectors follow `METRICS`."""
        assert (METRICS[TOKENS], METRICS[COST]) == ("tokens", "cost")


def used_of(store: BudgetStore, lines: Sequence[Line]) -> list[Vector]:
    """The used vector of each line now."""
    return [used for used, _ in store.read(lines, NOW)]


def check_a_frozen_store_gives_up(store: BudgetStore, relay: Freezer, bound: float) -> None:
    """``store``, reached through ``relay``, fails within ``bound`` seconds of a freeze, then recovers."""
    assert store.reserve("before", [line(tokens=100)], [vec(1)], NOW, 60) is None
    relay.freeze()
    operations = {
        "reserve": lambda: store.reserve("frozen", [line(tokens=100)], [vec(1)], NOW, 60),
        "settle": lambda: store.settle("before", [line(tokens=100)], [vec(1)], NOW),
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(BudgetStoreError):
            operation()
        assert time.monotonic() - started < bound, f"{name} waited past its bound"
    relay.thaw()
    deadline = time.monotonic() + 10
    while True:  # a fresh connection serves again (the cut one is never reused)
        try:
            store.settle("before", [line(tokens=100)], [vec(1)], NOW)
            break
        except BudgetStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    used, _ = store.read([line(tokens=100)], NOW)[0]
    assert used[0] >= 1
