"""meterline: exact, priced, attributed metering of LLM token usage.

Every model call becomes one `UsageEvent`: its usage normalised from the provider's own
usage block, priced exactly (``Decimal``, via genai-prices and your overrides) and attributed
to nested scopes (user, session, agent, tool…), with live roll-ups and mergeable snapshots.
"""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from meterline._batch import BatchResults, record_batch
from meterline._default import configure, get_meter, record, record_tool, reset_defaults, scope
from meterline._entry import ActiveScope
from meterline._events import UsageEvent
from meterline._meter import Meter, MeterStats
from meterline._pricing import ModelRates, Price, PriceOverride, Pricer, PriceTable
from meterline._providers import (
    APIS,
    PROVIDERS,
    Extracted,
    StreamAccumulator,
    canonical_provider,
    extract,
    usage_from,
    usage_from_stream,
)
from meterline._scope import Scope
from meterline._snapshot import Snapshot
from meterline._totals import OperationTotals, ToolStats, Totals
from meterline._usage import Usage
from meterline._version import __version__
from meterline.budgets import Budget, BudgetAlert, BudgetStatus, Reservation, estimate_tokens, load_budgets
from meterline.exceptions import (
    BudgetExceeded,
    BudgetStoreError,
    ConfigurationError,
    DeliveryError,
    ExportError,
    LedgerError,
    MalformedUsageError,
    MeterlineError,
    MeterlineWarning,
    MissingExtraError,
    PriceTableError,
    ReconcileError,
    UnknownModelError,
    UnpricedModelWarning,
    UnrecognizedPayloadError,
    UnsupportedSDKError,
    UsageError,
)
from meterline.ledger import open_ledger

__all__ = [
    "APIS",
    "PROVIDERS",
    "ActiveScope",
    "BatchResults",
    "Budget",
    "BudgetAlert",
    "BudgetExceeded",
    "BudgetStatus",
    "BudgetStoreError",
    "ConfigurationError",
    "DeliveryError",
    "ExportError",
    "Extracted",
    "LedgerError",
    "MalformedUsageError",
    "Meter",
    "MeterStats",
    "MeterlineError",
    "MeterlineWarning",
    "MissingExtraError",
    "ModelRates",
    "OperationTotals",
    "Price",
    "PriceOverride",
    "PriceTable",
    "PriceTableError",
    "Pricer",
    "ReconcileError",
    "Reservation",
    "Scope",
    "Snapshot",
    "StreamAccumulator",
    "ToolStats",
    "Totals",
    "UnknownModelError",
    "UnpricedModelWarning",
    "UnrecognizedPayloadError",
    "UnsupportedSDKError",
    "Usage",
    "UsageError",
    "UsageEvent",
    "__version__",
    "canonical_provider",
    "configure",
    "estimate_tokens",
    "extract",
    "get_meter",
    "instrument",
    "load_budgets",
    "open_ledger",
    "record",
    "record_batch",
    "record_tool",
    "reset_defaults",
    "scope",
    "uninstrument",
    "usage_from",
    "usage_from_stream",
]

if _TYPE_CHECKING:
    from meterline._instrument import instrument, uninstrument


def __getattr__(name: str) -> object:
    """`instrument` and `uninstrument`, imported on first use: `import meterline` stays light."""
    if name in ("instrument", "uninstrument"):
        from meterline import _instrument  # noqa: PLC0415 - the SDK integrations load when used

        return getattr(_instrument, name)
    raise AttributeError(f"module 'meterline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "instrument", "uninstrument"})
