"""Budgets: limits on nested scopes, reserved before a call and settled by its usage.

- `Budget` (``_budget``): the limits, their scope (``per``), window and policies; `load_budgets`
  reads them from TOML; `BudgetAlert` and `BudgetStatus` say where a budget stands.
- The engine (``_engine``, with ``_compiled`` and ``_window``): `Meter.reserve` books a call's
  worst case against every budget that applies, all or nothing; `Meter.record` settles the
  `Reservation` with what the call used.
- Stores (``_store``: the contract every store keeps): `MemoryBudgetStore`,
  `SQLiteBudgetStore`, `PostgresBudgetStore` (extra ``postgres``), `RedisBudgetStore` (extra
  ``redis``), opened by URL with `open_budget_store`.
- `rebuild_from_ledger` (``_rebuild``): counters caught up from the ledger after an outage.
"""

from typing import TYPE_CHECKING, Any

from meterline.budgets._budget import Budget, BudgetAlert, BudgetStatus, load_budgets
from meterline.budgets._compiled import CompiledBudget, budget_status, known_budgets
from meterline.budgets._engine import (
    DEFAULT_LEASE,
    DEFAULT_MAX_OUTPUT_TOKENS,
    BudgetEngine,
    Reservation,
    unbudgeted,
)
from meterline.budgets._memory import MemoryBudgetStore
from meterline.budgets._open import ENV_VAR, open_budget_store
from meterline.budgets._rebuild import CatchUp, rebuild_from_ledger
from meterline.budgets._request import checked_request, estimate_tokens
from meterline.budgets._sqlite import SQLiteBudgetStore
from meterline.budgets._store import BudgetStore, Line, Refusal

if TYPE_CHECKING:
    from meterline.budgets._postgres import PostgresBudgetStore
    from meterline.budgets._redis import RedisBudgetStore

__all__ = [
    "ENV_VAR",
    "Budget",
    "BudgetAlert",
    "BudgetStatus",
    "BudgetStore",
    "CatchUp",
    "Line",
    "MemoryBudgetStore",
    "PostgresBudgetStore",
    "RedisBudgetStore",
    "Refusal",
    "Reservation",
    "SQLiteBudgetStore",
    "budget_status",
    "estimate_tokens",
    "known_budgets",
    "load_budgets",
    "open_budget_store",
    "rebuild_from_ledger",
]

# For the meter and the command line, not public API:
__all__ += [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "BudgetEngine",
    "CompiledBudget",
    "checked_request",
    "unbudgeted",
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
