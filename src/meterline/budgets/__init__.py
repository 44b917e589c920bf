"""Budget stores: where budget counters and reservations live (memory, SQLite, PostgreSQL, Redis)."""

from typing import TYPE_CHECKING, Any

from meterline.budgets._base import BudgetStore, Line, Refusal
from meterline.budgets._memory import MemoryBudgetStore
from meterline.budgets._open import open_budget_store
from meterline.budgets._sqlite import SQLiteBudgetStore

if TYPE_CHECKING:
    from meterline.budgets._postgres import PostgresBudgetStore
    from meterline.budgets._redis import RedisBudgetStore

__all__ = [
    "BudgetStore",
    "Line",
    "MemoryBudgetStore",
    "PostgresBudgetStore",
    "RedisBudgetStore",
    "Refusal",
    "SQLiteBudgetStore",
    "open_budget_store",
]


def __getattr__(name: str) -> Any:
    """The PostgreSQL and Redis stores, imported on first use (their modules import nothing optional)."""
    if name == "PostgresBudgetStore":
        from meterline.budgets._postgres import PostgresBudgetStore  # noqa: PLC0415 - loaded when used

        return PostgresBudgetStore
    if name == "RedisBudgetStore":
        from meterline.budgets._redis import RedisBudgetStore  # noqa: PLC0415 - loaded when used

        return RedisBudgetStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
