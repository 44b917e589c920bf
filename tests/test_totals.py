"""Tests of `meterline._totals`: the running sums behind every total."""

from __future__ import annotations

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


def test_copy_is_equal_and_detached() -> None:
    """A copy holds the same counters, and adding to it leaves the original as it was."""
    original = _numbered(7)
    clone = original.copy()
    assert [getattr(clone, name) for name in COUNTERS] == [getattr(original, name) for name in COUNTERS]
    clone.merge(_numbered(1))
    assert original.events == 7
