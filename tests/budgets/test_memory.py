"""The in-memory budget store passes the conformance suite."""

from __future__ import annotations

import pytest

from meterline.budgets._memory import MemoryBudgetStore
from tests.budgets.conformance import StoreConformance


class TestMemory(StoreConformance):
    """The conformance suite on the in-memory store."""

    exact_past_64_bits = True  # Python integers: nothing to saturate

    @pytest.fixture
    def store(self) -> MemoryBudgetStore:
        """A fresh in-memory store."""
        return MemoryBudgetStore()
