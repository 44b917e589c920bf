"""The in-memory budget store passes the conformance suite."""

from __future__ import annotations

import pytest

from meterline.budgets._memory import MemoryBudgetStore
from tests.budgets.conformance import StoreConformance


class TestMemory(StoreConformance):
    """The conformance suite on the in-memory store."""

    @pytest.fixture
    def store(self) -> MemoryBudgetStore:
        """A fresh in-memory store."""
        return MemoryBudgetStore()
