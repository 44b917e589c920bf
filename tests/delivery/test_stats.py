"""The counters every batcher keeps: one frozen, slotted value."""

from __future__ import annotations

import dataclasses

import pytest

from meterline._delivery import DeliveryStats


def test_the_stats_are_one_frozen_slotted_value() -> None:
    """DeliveryStats is frozen and slotted; committed and lost are derived from its counters."""
    stats = DeliveryStats(
        submitted=10,
        delivered=7,
        replayed=2,
        unbilled=0,
        rejected=0,
        spooled=2,
        dropped=1,
        failures=1,
        queued=2,
        blocked=0,
        overflowed=0,
        backend_down=False,
    )
    assert (stats.committed, stats.lost) == (5, 1)
    assert not hasattr(stats, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.delivered = 8  # type: ignore[misc]
