"""The guard counts and logs machinery failures and calls meterline cannot meter, never raising them."""

from __future__ import annotations

import pytest

from meterline._guard import MAX_UNMETERED_KINDS, Guard


def test_failures_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A failure handled in an except block is logged with its detail and counted."""
    guard = Guard("meter")
    try:
        raise ValueError("boom")
    except ValueError:
        guard.failed("the ledger writer", "event 1")
    assert guard.errors == 1
    assert "the ledger writer failed for event 1" in caplog.text


def test_capture_swallows_failures_but_not_policy() -> None:
    """capture() swallows an Exception, lets the guard's policy types and BaseExceptions through."""
    guard = Guard("meter", passes=(KeyError,))
    with guard.capture("a subscriber"):
        raise ValueError("boom")
    with pytest.raises(KeyError), guard.capture("a budget"):
        raise KeyError("policy")
    with pytest.raises(KeyboardInterrupt), guard.capture("a budget"):
        raise KeyboardInterrupt
    assert guard.errors == 1


def test_cannot_meter_counts_each_kind_and_logs_it_once(caplog: pytest.LogCaptureFixture) -> None:
    """Each kind of unmetered call is counted; only its first occurrence is logged, with the hint."""
    guard = Guard("meter")
    for _ in range(3):
        guard.cannot_meter("openai POST /images/generations", "record it yourself")
    guard.cannot_meter("openai POST /batches", "record it yourself")
    assert guard.unmetered_counts() == (("openai POST /batches", 1), ("openai POST /images/generations", 3))
    assert caplog.text.count("cannot meter openai POST /images/generations") == 1
    assert "record it yourself" in caplog.text


def test_kinds_are_bounded() -> None:
    """Past MAX_UNMETERED_KINDS distinct kinds, the rest are counted together as "other"."""
    guard = Guard("meter")
    for index in range(MAX_UNMETERED_KINDS + 5):
        guard.cannot_meter(f"kind {index}", "")
    counts = dict(guard.unmetered_counts())
    assert len(counts) == MAX_UNMETERED_KINDS + 1
    assert counts["other"] == 5
