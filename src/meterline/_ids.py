"""Event ids: UUIDv7-shaped, sortable by time, unique across processes, cheap to make."""

from __future__ import annotations as _annotations

import itertools
import os
import secrets
import time
from typing import Final

__all__ = ["IdFactory", "new_id"]

_COUNTER_BITS: Final = 34
_COUNTER_MASK: Final = (1 << _COUNTER_BITS) - 1


def _node_bits() -> tuple[int, int]:
    """40 random bits per process, split over the UUID's rand_a (12 bits) and rand_b (28 bits)."""
    node = secrets.randbits(40)
    return node >> 28, (0b10 << 62) | ((node & ((1 << 28) - 1)) << _COUNTER_BITS)


_node_high, _node_low = _node_bits()
_counter = itertools.count()
# The first 16 hex digits (time, version, rand_a) only change once a millisecond: cache them.
_last_millis = -1
_last_high = ""


def _after_fork() -> None:
    global _node_high, _node_low, _counter, _last_millis  # noqa: PLW0603 - a forked child must not reuse ids
    _node_high, _node_low = _node_bits()
    _counter = itertools.count()
    _last_millis = -1


os.register_at_fork(after_in_child=_after_fork)


def new_id(time_ns: int | None = None) -> str:
    """Return a new event id: 32 lower-case hex digits of a UUIDv7.

    The first 48 bits are the Unix time in milliseconds, so ids sort by time (which also
    keeps B-tree inserts in the ledger append-only). The rest holds 40 random bits chosen
    per process (renewed after ``fork()``) and a per-process counter, so ids made in one
    process never repeat, and ids from different processes collide only if two processes
    draw the same 40 random bits and reach the same counter value in the same millisecond.

    Args:
        time_ns: The event's time in nanoseconds since the Unix epoch (default: now).
    """
    global _last_millis, _last_high  # noqa: PLW0603 - a one-entry cache of the time prefix
    millis = (time.time_ns() if time_ns is None else time_ns) // 1_000_000
    if millis != _last_millis:
        _last_high = f"{(millis << 16) | 0x7000 | _node_high:016x}"
        _last_millis = millis
    # The variant bits make the low half at least 2**63, so hex() always gives 16 digits.
    return _last_high + hex(_node_low | (next(_counter) & _COUNTER_MASK))[2:]


class IdFactory:
    """The same ids as `new_id`, from state a `Meter` owns so its record path can inline it.

    Each factory draws its own 40 random bits (renewed by `renew`, which meters call after
    ``fork()``), so ids of different factories are as distinct as ids of different processes.
    """

    __slots__ = ("counter", "high", "low", "millis", "node_high")

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        """Draw new random bits and restart the counter."""
        self.node_high, self.low = _node_bits()
        self.counter = itertools.count()
        self.millis = -1
        self.high = ""

    def prefix(self, millis: int) -> str:
        """The first 16 hex digits for ``millis`` (cached until the millisecond changes)."""
        self.high = f"{(millis << 16) | 0x7000 | self.node_high:016x}"
        self.millis = millis
        return self.high

    def new(self, time_ns: int) -> str:
        """A new id for an event at ``time_ns``."""
        millis = time_ns // 1_000_000
        high = self.high if millis == self.millis else self.prefix(millis)
        return high + hex(self.low | (next(self.counter) & _COUNTER_MASK))[2:]
