"""Event ids: UUIDv7-shaped, sortable by time, unique across processes, cheap to make."""

from __future__ import annotations as _annotations

import itertools
import os
import secrets
import time
from typing import Final

__all__ = ["IdFactory", "new_id"]

_COUNTER_BITS: Final = 32
_COUNTER_MASK: Final = (1 << _COUNTER_BITS) - 1
_COUNTER_PAD: Final = 1 << _COUNTER_BITS  # hex(n | pad)[3:] gives exactly 8 digits


def _node_bits() -> tuple[int, str]:
    """42 random bits per process: 12 for the UUID's rand_a, 30 for the top of rand_b.

    Returns the rand_a bits and the 8 hex digits of rand_b's upper half (the variant bits
    ``10`` followed by 30 random bits); the lower half of rand_b is the counter.
    """
    node = secrets.randbits(42)
    return node >> 30, f"{(0b10 << 30) | (node & ((1 << 30) - 1)):08x}"


_node_high, _node_mid = _node_bits()
_counter = itertools.count()
# The first 24 hex digits (time, version, rand_a, random half of rand_b) only change once a
# millisecond: cache them.
_last_millis = -1
_last_high = ""


def _after_fork() -> None:
    global _node_high, _node_mid, _counter, _last_millis  # noqa: PLW0603 - a forked child must not reuse ids
    _node_high, _node_mid = _node_bits()
    _counter = itertools.count()
    _last_millis = -1


os.register_at_fork(after_in_child=_after_fork)


def new_id(time_ns: int | None = None) -> str:
    """Return a new event id: 32 lower-case hex digits of a UUIDv7.

    The first 48 bits are the Unix time in milliseconds, so ids sort by time (which also
    keeps B-tree inserts in the ledger append-only). Then come 42 random bits chosen per
    process (renewed after ``fork()``) and a 32-bit per-process counter, so ids made in one
    process never repeat, and ids from different processes collide only if two processes
    draw the same 42 random bits and reach the same counter value in the same millisecond.

    Args:
        time_ns: The event's time in nanoseconds since the Unix epoch (default: now).
    """
    global _last_millis, _last_high  # noqa: PLW0603 - a one-entry cache of the time prefix
    millis = (time.time_ns() if time_ns is None else time_ns) // 1_000_000
    if millis != _last_millis:
        _last_high = f"{(millis << 16) | 0x7000 | _node_high:016x}{_node_mid}"
        _last_millis = millis
    return _last_high + hex((next(_counter) & _COUNTER_MASK) | _COUNTER_PAD)[3:]


class IdFactory:
    """The same ids as `new_id`, from state a `Meter` owns so its record path can inline it.

    Each factory draws its own 42 random bits (renewed by `renew`, which meters call after
    ``fork()``, and when the 32-bit counter runs out), so ids of different factories are as
    distinct as ids of different processes. The record path inlines `new` as::

        high = ids.high if now < ids.next_ns else ids.prefix(now)
        event_id = high + next(ids.counter).to_bytes(4, "big").hex()

    and calls `new` instead when ``to_bytes`` overflows.
    """

    __slots__ = ("counter", "high", "issued_before", "next_ns", "node_high", "node_mid")

    def __init__(self) -> None:
        self.issued_before = 0
        self.renew()

    def renew(self) -> None:
        """Draw new random bits and restart the counter."""
        self.issued_before += self.issued if hasattr(self, "counter") else 0
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
        """A new id for an event at ``time_ns``."""
        high = self.high if time_ns < self.next_ns else self.prefix(time_ns)
        try:
            return high + next(self.counter).to_bytes(4, "big").hex()
        except OverflowError:
            self.renew()  # 2**32 ids made: new random bits, so the restarted counter cannot collide
            return self.prefix(time_ns) + next(self.counter).to_bytes(4, "big").hex()
