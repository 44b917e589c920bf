"""Live roll-ups: totals by any dimension, forget, and a bounded number of keys."""

from __future__ import annotations

import contextvars
import gc
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypedDict

import pytest

from meterline import ConfigurationError, Meter, Usage
from meterline._rollup import RollUps
from meterline._row import RowKey


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_totals_by_and_where(meter: Meter) -> None:
    """totals() groups by any event field or dimension and filters with where=."""
    for user, model, tokens in [("u1", "gpt-4o", 100), ("u1", "gpt-4o-mini", 10), ("u2", "gpt-4o", 1000)]:
        with meter.scope(user=user):
            meter.record(Usage(input_tokens=tokens), model=model, provider="openai")
    meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    by_user = meter.totals(by=("user",))
    assert {key: t.usage.input_tokens for key, t in by_user.items()} == {
        ("u1",): 110,
        ("u2",): 1000,
        (None,): 1,
    }
    by_both = meter.totals(by=["model", "user"], where={"user": "u1"})
    assert set(by_both) == {("gpt-4o", "u1"), ("gpt-4o-mini", "u1")}
    assert meter.totals(where={"user": {"u1", "u2"}}).usage.input_tokens == 1110
    assert meter.totals(where={"user": None}).usage.input_tokens == 1
    assert meter.totals(where={"provider": "anthropic"}).events == 0
    assert meter.totals().cost == sum((t.cost for t in by_user.values()), Decimal(0))
    with pytest.raises(ConfigurationError):
        meter.totals(by=("bad-name",))
    with pytest.raises(ConfigurationError, match="by='user'"):
        meter.totals(by="user")
    assert meter.totals(by=()) == {(): meter.totals()}


def test_forget_drops_a_finished_session(meter: Meter) -> None:
    """forget() drops the rows of a pruned session so memory does not grow with sessions."""
    for session in ("s1", "s2"):
        with meter.scope(session=session):
            meter.record(Usage(input_tokens=1), **GPT)
    live = meter.stats().live_keys
    assert meter.forget(session="s1") == 1
    assert meter.stats().live_keys == live - 1
    assert set(meter.totals(by=("session",))) == {("s2",)}
    with pytest.raises(ConfigurationError):
        meter.forget()


def test_live_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Past max_live_keys, new combinations fold into the overflow row and totals stay exact."""
    meter = Meter(max_live_keys=5)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        for index in range(50):
            with meter.scope(session=f"s{index}"):
                meter.record(Usage(input_tokens=1), **GPT)
    stats = meter.stats()
    assert stats.live_keys <= 6
    assert stats.overflowed_events == 45
    assert meter.totals().usage.input_tokens == 50
    assert meter.totals(by=("meterline_overflow",))[("true",)].events == 45
    assert "live keys reached" in caplog.text


def test_late_records_after_a_scope_ended_still_count(meter: Meter) -> None:
    """A record arriving after its scope ended counts in that scope, its ancestors and the roll-ups."""
    with meter.scope(user="u1") as outer:
        with meter.scope(session="s1") as inner:
            ctx = contextvars.copy_context()
        ctx.run(meter.record, Usage(input_tokens=9), **GPT)
        assert inner.totals.usage.input_tokens == 9
        assert outer.totals.usage.input_tokens == 9
    ctx.run(meter.record, Usage(input_tokens=1), **GPT)
    assert outer.totals.usage.input_tokens == 10
    assert meter.totals(where={"session": "s1"}).usage.input_tokens == 10


def test_rows_sent_to_the_cube_keep_the_canonical_provider() -> None:
    """Events past max_live_keys, and late ones after their scope ended, keep the canonical provider."""
    meter = Meter(max_live_keys=2)
    with meter.scope(user="u1"):
        ctx = contextvars.copy_context()
    ctx.run(meter.record, Usage(input_tokens=1), model="gpt-4o", provider="OpenAI")  # its scope has ended
    for index in range(4):  # the second one on finds no room
        meter.record(Usage(input_tokens=1), model="gpt-4o", provider="OpenAI", tags={"session": f"s{index}"})
    by_provider = meter.totals(by=("provider",))
    assert list(by_provider) == [("openai",)]
    assert by_provider[("openai",)].usage.input_tokens == 5
    assert meter.totals(where={"user": "u1"}).requests == 1


def test_a_provider_filter_finds_what_its_aliases_recorded(meter: Meter) -> None:
    """totals(where=) and forget() match a provider as the caller spelled it, by its canonical name."""
    meter.record(Usage(input_tokens=1), model="gpt-4o", provider="OpenAI")
    meter.record(Usage(input_tokens=2), model="gemini-2.5-flash", provider="gemini")
    assert meter.totals(where={"provider": "OpenAI"}).usage.input_tokens == 1
    assert meter.totals(where={"provider": ["Gemini", "openai"]}).usage.input_tokens == 3
    assert meter.totals(where={"provider": "no such provider!"}).events == 0
    assert meter.forget(provider="Gemini") == 1
    assert meter.totals().usage.input_tokens == 1


def test_meter_totals_include_live_scopes_and_cost(meter: Meter) -> None:
    """Roll-ups see records of scopes that are still open, with the same cost."""
    with meter.scope(user="u1") as scope:
        meter.record(Usage(input_tokens=1_000_000), model="gpt-4o", provider="openai")
        assert meter.totals().cost == Decimal("2.5")
        assert scope.totals.cost == Decimal("2.5")


def _harvested(meter: Meter, work: Callable[[int], None], threads: int = 4) -> tuple[Meter, int]:
    """Run ``work(0..threads-1)`` on threads while another takes snapshot_and_reset() over and over.

    Returns every snapshot merged into a new meter, and how many there were.
    """
    done = threading.Event()
    snapshots = []

    def harvest() -> None:
        while not done.is_set():
            snapshots.append(meter.snapshot_and_reset())

    harvester = threading.Thread(target=harvest)
    harvester.start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    done.set()
    harvester.join()
    snapshots.append(meter.snapshot_and_reset())
    merged = Meter()
    for snap in snapshots:
        merged.merge(snap)
    return merged, len(snapshots)


def test_concurrent_snapshot_and_reset_loses_and_doubles_nothing(meter: Meter) -> None:
    """While 4 threads record, repeated snapshot_and_reset() hands over every event exactly once."""
    per_thread = 20_000

    def work(index: int) -> None:
        with meter.scope(user=f"u{index}"):
            for _ in range(per_thread):
                meter.record(Usage(input_tokens=1, output_tokens=2), **GPT)

    merged, snapshots = _harvested(meter, work)
    totals = merged.totals()
    assert totals.requests == 4 * per_thread
    assert totals.usage == Usage(input_tokens=4 * per_thread, output_tokens=8 * per_thread)
    assert snapshots > 2
    by_user = merged.totals(by=("user",))
    assert all(by_user[(f"u{index}",)].requests == per_thread for index in range(4))


def test_concurrent_scope_exits_while_an_executor_records(meter: Meter) -> None:
    """Records from a worker that outlive their scope still count once, in the scope and the roll-ups."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        with meter.scope(user="u1") as outer:
            for _ in range(50):
                with meter.scope(session="s") as inner:
                    ctx = contextvars.copy_context()
                futures.append(
                    pool.submit(
                        ctx.run, lambda: [meter.record(Usage(input_tokens=1), **GPT) for _ in range(100)]
                    )
                )
            for future in futures:
                future.result()
        assert inner.totals.requests == 100
    assert outer.totals.requests == 5000
    assert meter.totals().requests == 5000
    assert meter.totals(where={"session": "s"}).usage.input_tokens == 5000


def test_forget_visits_only_the_rows_it_drops(meter: Meter, monkeypatch: pytest.MonkeyPatch) -> None:
    """forget(session=) looks at the rows of that session, not at every row the meter holds."""
    from meterline import _rollup

    for session in range(2000):
        with meter.scope(user=f"u{session % 7}", session=f"s{session}"):
            meter.record(Usage(input_tokens=1), **GPT)
    visited = 0
    real = _rollup.value_of

    def counting(key: RowKey, name: str) -> str | None:
        nonlocal visited
        visited += 1
        return real(key, name)

    monkeypatch.setattr(_rollup, "value_of", counting)
    assert meter.forget(session="s42") == 1
    assert visited <= 2  # one row, checked once per wanted name
    assert meter.forget(user="u3", session="s3") == 1  # the rarer index: one row, not a seventh
    assert visited <= 6
    assert ("s42",) not in meter.totals(by=("session",))
    assert meter.totals().requests == 1998


def test_forget_by_an_event_field_still_works(meter: Meter) -> None:
    """forget(model=) (no dimension index to use) scans, and drops exactly that model's rows."""
    with meter.scope(session="s1"):
        meter.record(Usage(input_tokens=1), **GPT)
        meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    assert meter.forget(model="gpt-4o") == 1
    assert set(meter.totals(by=("model",))) == {("gpt-4o-mini",)}
    assert meter.forget(session="s1") == 1


def test_ended_entries_leave_nothing_for_the_collector(meter: Meter) -> None:
    """The rows of 2,000 ended sessions add no object the cyclic garbage collector keeps walking."""

    def sessions(start: int) -> None:
        for session in range(start, start + 2000):
            with meter.scope(org=f"o{session % 7}", user=f"u{session % 50}", session=f"s{session}"):
                meter.record(Usage(input_tokens=3, output_tokens=2), latency_ms=12.5, **GPT)

    sessions(0)  # the first org's, users' and session's index entries, the meter's caches
    gc.collect()
    gc.collect()
    before = len(gc.get_objects())
    sessions(2000)
    gc.collect()
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # one Sums and one set a session before: 4,000
    assert meter.totals().requests == 4000
    assert len(meter.totals(by=("session",))) == 4000
    assert meter.forget(session="s2500") == 1
    assert meter.totals().requests == 3999


def test_a_call_shape_is_checked_and_priced_once_and_a_bad_one_every_time() -> None:
    """New rows of a checked (operation, status, provider, model) reuse its plan; a bad one is never kept."""
    asked: list[tuple[str | None, str]] = []

    def plan_for(provider: str | None, model: str) -> None:
        asked.append((provider, model))

    rollups = RollUps(plan_for, max_live_keys=1000)
    root = rollups.root
    for index in range(3):
        row = rollups.add_row(root, ("chat", "ok", "OpenAI", "gpt-4o", (("session", f"s{index}"),)))
        assert row.key == ("chat", "ok", "openai", "gpt-4o", (("session", f"s{index}"),))
        assert row.model_call
    assert asked == [("openai", "gpt-4o")]
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="model"):
            rollups.add_row(root, ("chat", "ok", "openai", 42, ()))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="status"):
            rollups.add_row(root, ("chat", "", "openai", "gpt-4o", ()))
        with pytest.raises(ConfigurationError, match="model"):
            rollups.add_row(root, ("chat", "ok", "openai", ["gpt-4o"], ()))  # type: ignore[arg-type]
    assert len(root.rows) == 3
    rollups.take()  # what `Meter.reset` does: the checked shapes go too
    rollups.add_row(root, ("chat", "ok", "OpenAI", "gpt-4o", ()))
    assert asked == [("openai", "gpt-4o")] * 2


def test_past_the_bound_new_keys_share_their_shapes_overflow_row_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Outside scopes, threads recording new keys past max_live_keys lose, double and misattribute nothing."""
    meter = Meter(max_live_keys=3)
    openai = "OpenAI"
    for index in range(3):
        meter.record(Usage(input_tokens=100), model="gpt-4o", provider=openai, tags={"session": f"k{index}"})

    def work(thread: int) -> None:
        for index in range(2000):
            model = ("gpt-4o", "gpt-4o-mini")[index % 2]
            session = f"t{thread}-{index}"
            meter.record(Usage(input_tokens=1), model=model, provider=openai, tags={"session": session})
            meter.record(Usage(input_tokens=10), model="gpt-4o", provider=openai, tags={"session": "k0"})

    with caplog.at_level(logging.WARNING, logger="meterline"), ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert meter.stats().overflowed_events == 8000
    assert meter.totals().usage.input_tokens == 300 + 8000 + 80_000
    by_session = meter.totals(by=("session",))
    assert by_session[("k0",)].usage.input_tokens == 100 + 80_000  # a key with a live row keeps it
    assert by_session[(None,)].events == 8000
    overflow = meter.totals(by=("provider", "model", "meterline_overflow"))
    assert overflow[("openai", None, "true")].usage.input_tokens == 8000
    assert caplog.text.count("live keys reached") == 1
    with pytest.raises(ConfigurationError, match="model"):
        meter.record(Usage(input_tokens=1), model=42, tags={"session": "bad"})  # type: ignore[arg-type]
    assert meter.totals().events == 3 + 16_000


def test_past_the_bound_shares_are_added_up_when_read_not_one_by_one() -> None:
    """Past max_live_keys, fewer new keys than a tally holds are in every read exactly, and once."""
    meter = Meter(max_live_keys=2)
    for index in range(2 + 100):  # far fewer than TALLY_AT: no call adds its share up itself
        meter.record(Usage(input_tokens=index), **GPT, tags={"session": f"s{index}"})
    assert meter.stats().overflowed_events == 100
    assert meter.totals().usage.input_tokens == sum(range(102))
    assert meter.totals(by=("meterline_overflow",))[("true",)].usage.input_tokens == sum(range(2, 102))
    assert meter.stats().live_keys == 3
    snapshot = meter.snapshot_and_reset()
    assert meter.totals().events == 0
    assert meter.stats().overflowed_events == 100  # a count of what was folded, reset or not
    meter.record(Usage(input_tokens=7), **GPT, tags={"session": "after"})
    merged = Meter()
    merged.merge(snapshot)
    assert merged.totals().usage.input_tokens == sum(range(102))
    assert meter.totals().usage.input_tokens == 7


def test_snapshot_and_reset_past_the_bound_hands_over_every_event_once() -> None:
    """Threads recording new keys past max_live_keys while snapshots are taken: each event in one."""
    meter = Meter(max_live_keys=10)
    per_thread = 5000

    def work(thread: int) -> None:
        for index in range(per_thread):
            meter.record(Usage(input_tokens=1), **GPT, tags={"session": f"t{thread}-{index}"})

    merged, snapshots = _harvested(meter, work)
    assert merged.totals().usage.input_tokens == 4 * per_thread
    assert snapshots > 2


def test_a_flood_of_model_names_past_the_bound_keeps_totals_exact() -> None:
    """More call shapes than a meter keeps, past max_live_keys: each event counted once, in the overflow."""
    meter = Meter(max_live_keys=1)
    meter.record(Usage(input_tokens=1), **GPT)
    names = 5000  # past the 4,096 overflow rows kept: the oldest go into the cube
    for index in range(names):
        meter.record(Usage(input_tokens=2), model=f"model-{index}", provider="openai", tags={"n": str(index)})
    assert meter.stats().overflowed_events == names
    overflow = meter.totals(by=("model", "meterline_overflow"))
    assert overflow[(None, "true")].usage.input_tokens == 2 * names
    assert meter.totals().usage.input_tokens == 1 + 2 * names


def test_forget_drops_the_overflow_rows_it_names() -> None:
    """forget(meterline_overflow="true") drops the live overflow row once, however many shapes share it."""
    meter = Meter(max_live_keys=1)
    meter.record(Usage(input_tokens=1), **GPT)
    for index in range(10):
        model = ("gpt-4o", "gpt-4o-mini")[index % 2]
        meter.record(Usage(input_tokens=1), model=model, provider="openai", tags={"session": f"s{index}"})
    assert meter.forget(meterline_overflow="true") == 1
    assert meter.totals().events == 1
    assert meter.stats().overflowed_events == 10
    meter.record(Usage(input_tokens=1), **GPT, tags={"session": "later"})
    assert meter.totals(by=("meterline_overflow",))[("true",)].events == 1


def test_scopes_past_the_bound_keep_their_own_totals(meter: Meter) -> None:
    """Past max_live_keys, each scope entry's totals are still its own events, never another's."""
    bounded = Meter(max_live_keys=2)
    with bounded.scope(user="a") as first, bounded.scope(team="t") as second:
        for index in range(50):
            bounded.record(Usage(input_tokens=1), **GPT, tags={"session": f"s{index}"})
        with bounded.scope(user="b") as third:
            for index in range(30):
                bounded.record(Usage(input_tokens=2), **GPT, tags={"session": f"s{index}"})
    assert third.totals.usage.input_tokens == 60
    assert second.totals.usage.input_tokens == 50 + 60
    assert first.totals.usage.input_tokens == 50 + 60
    assert bounded.totals().usage.input_tokens == 110
