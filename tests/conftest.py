"""Shared fixtures: a fresh default meter for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import meterline


@pytest.fixture(autouse=True)
def _fresh_default_meter() -> Iterator[None]:
    """Every test starts and ends without a process-wide default meter."""
    meterline.reset_defaults()
    yield
    meterline.reset_defaults()


@pytest.fixture
def meter() -> meterline.Meter:
    """A meter with the built-in price corrections and no overrides."""
    return meterline.Meter()
