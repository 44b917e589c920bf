"""Tests of `meterline._totals`: the running sums behind every total."""

from __future__ import annotations

import gc

from meterline._totals import COUNTERS, Sums


def _numbered(start: int) -> Sums:
    sums = Sums()
    for offset, name in enumerate(COUNTERS):
        setattr(sums, name, start + offset * 1000)
    return sums


def test_merge_adds_every_counter() -> None:
    """`Sums.merge` adds each of `COUNTERS`, none left out and none crossed with another."""
    target = _numbered(1)
    target.merge(_numbered(2**70))  # past 64 bits: Python ints, no wrap
    for offset, name in enumerate(COUNTERS):
        assert getattr(target, name) == 1 + 2**70 + 2 * offset * 1000, name


def test_merge_keeps_the_links_and_their_count() -> None:
    """Merging adds the other's linked ids, and its link count once."""
    target = Sums()
    target.add_links(("a",))
    other = Sums()
    other.add_links(("b", "c"))
    target.merge(other)
    assert target.links == {"a", "b", "c"}
    assert target.link_count == 3


def test_detached_is_equal_and_detached() -> None:
    """A detached copy holds the same counters, and adding to it leaves the original as it was."""
    original = _numbered(7)
    clone = original.detached()
    assert [getattr(clone, name) for name in COUNTERS] == [getattr(original, name) for name in COUNTERS]
    clone.merge(_numbered(1))
    assert original.events == 7


def test_frozen_and_thawed_round_trip() -> None:
    """`Sums.thawed` of `Sums.frozen` gives back every counter and the linked ids."""
    original = _numbered(3)
    original.add_links(("x", "y"))
    stored = original.frozen()
    assert len(stored) == len(COUNTERS) + 1
    back = Sums.thawed(stored)
    assert [getattr(back, name) for name in COUNTERS] == [getattr(original, name) for name in COUNTERS]
    assert back.links == {"x", "y"}
    back.add_links(("z",))
    assert stored[-1] == frozenset({"x", "y"})  # thawed sums are detached from the tuple


def test_added_to_is_merge() -> None:
    """Adding sums to a frozen tuple gives what `Sums.merge` gives, linked ids or not."""
    for links in ((), ("b",)):
        stored = _numbered(5)
        added = _numbered(9)
        added.add_links(links)
        merged = Sums.thawed(stored.frozen())
        merged.merge(added)
        assert Sums.thawed(added.added_to(stored.frozen())).frozen() == merged.frozen()


def test_frozen_sums_of_numbers_leave_the_collector() -> None:
    """Frozen sums without linked ids are a tuple the cyclic collector stops tracking once it has seen it."""
    stored = _numbered(1).frozen()
    gc.collect()
    assert not gc.is_tracked(stored)
