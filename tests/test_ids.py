"""Tests for event ids: UUIDv7 shape, order, uniqueness, fork safety."""

from __future__ import annotations

import os
import time
from uuid import UUID

import pytest

from meterline import Meter, Usage
from meterline._ids import IdFactory


def test_ids_are_uuid7_and_sort_by_time() -> None:
    """Ids are 32 hex digits of a UUIDv7 whose first 48 bits are the event's millisecond."""
    factory = IdFactory()
    start = time.time_ns()
    ids = [factory.new(start + step * 1_000_000) for step in range(0, 5000, 7)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for made, step in zip(ids, range(0, 5000, 7), strict=True):
        uuid = UUID(made)
        assert (uuid.version, uuid.variant) == (7, "specified in RFC 4122")
        assert int(made[:12], 16) == (start + step * 1_000_000) // 1_000_000


def test_two_factories_draw_different_random_bits() -> None:
    """Ids of two meters made in the same millisecond differ."""
    now = time.time_ns()
    assert IdFactory().new(now) != IdFactory().new(now)


def test_issued_counts_every_id() -> None:
    """Issued counts the ids made, across a renewal."""
    factory = IdFactory()
    for _ in range(5):
        factory.new(time.time_ns())
    factory.renew()
    factory.new(time.time_ns())
    assert factory.issued == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_draws_new_bits() -> None:
    """After fork(), the child's meter makes ids its parent never will."""
    meter = Meter()
    parent_first = meter.record(Usage(input_tokens=1)).id
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, meter.record(Usage(input_tokens=1)).id.encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_next = meter.record(Usage(input_tokens=1)).id
    assert child_id[16:24] != parent_first[16:24]  # the random bits differ
    assert child_id not in (parent_first, parent_next)
