"""Event ids: UUIDv7-shaped, sortable by time, unique across processes, cheap to make."""

from __future__ import annotations as _annotations

import itertools
import os
import secrets
import weakref
from typing import Final

__all__ = ["IdFactory"]

COUNTER_MASK: Final = (1 << 32) - 1
"""The counter's 32 bits: the last 8 hex digits of an id."""


def _node_bits() -> tuple[int, str]:
    """42 random bits: 12 for the UUID's rand_a, 30 for the top of rand_b.

    Returns the rand_a bits and the 8 hex digits of rand_b's upper half (the variant bits
    ``10`` followed by 30 random bits); the lower half of rand_b is the counter.
    """
    node = secrets.randbits(42)
    return node >> 30, f"{(0b10 << 30) | (node & ((1 << 30) - 1)):08x}"


class IdFactory:
    """Makes event ids: 32 lower-case hex digits of a UUIDv7.

    The first 48 bits are the Unix time in milliseconds, so ids sort by time (which also
    keeps B-tree inserts in a ledger append-only). Then come 42 random bits drawn per
    factory (each `Meter` has its own, renewed after ``fork()``) and a 32-bit counter, so
    ids of one factory never repeat (the counter would have to wrap within one millisecond)
    and ids of two factories collide only if both drew the same 42 bits and reach the same
    counter value in the same millisecond.

    The record path inlines `new`: it keeps the millisecond prefix and the counter value it
    drew, and the event writes its id out when first read (see `meterline._events`).
    """

    __slots__ = ("__weakref__", "counter", "high", "issued_before", "next_ns", "node_high", "node_mid")

    def __init__(self) -> None:
        self.issued_before = 0
        self.counter = itertools.count()
        self.renew()
        _FACTORIES.add(self)

    def renew(self) -> None:
        """Draw new random bits and restart the counter (after ``fork()``)."""
        self.issued_before = self.issued
        self.node_high, self.node_mid = _node_bits()
        self.counter = itertools.count()
        self.next_ns = -1
        self.high = ""

    def prefix(self, time_ns: int) -> str:
        """The first 24 hex digits for the millisecond of ``time_ns`` (cached until it ends)."""
        millis = time_ns // 1_000_000
        self.high = f"{(millis << 16) | 0x7000 | self.node_high:016x}{self.node_mid}"
        self.next_ns = (millis + 1) * 1_000_000
        return self.high

    @property
    def issued(self) -> int:
        """How many ids this factory has made since it was created."""
        return self.issued_before + int(repr(self.counter)[6:-1])  # itertools.count's repr is "count(N)"

    def new(self, time_ns: int) -> str:
        """A new id for an event at ``time_ns`` (nanoseconds since the Unix epoch)."""
        high = self.high if time_ns < self.next_ns else self.prefix(time_ns)
        return high + (next(self.counter) & COUNTER_MASK).to_bytes(4, "big").hex()


_FACTORIES: Final[weakref.WeakSet[IdFactory]] = weakref.WeakSet()


def _renew_after_fork() -> None:
    """A forked child draws new random bits: its ids never collide with its parent's."""
    for factory in list(_FACTORIES):
        factory.renew()


os.register_at_fork(after_in_child=_renew_after_fork)
