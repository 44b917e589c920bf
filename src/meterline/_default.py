"""Global state department: the process-wide default meter, and the functions that use it.

`meterline.record`, `record_tool` and `scope` forward to the default meter; `configure` builds
it from `Meter`'s own options. Their signatures are `Meter`'s, checked by
``tests/test_default.py``, so they cannot drift apart.
"""

from __future__ import annotations as _annotations

import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from meterline._meter import DEFAULT_MAX_LIVE_KEYS, Meter
from meterline.budgets import DEFAULT_LEASE, DEFAULT_MAX_OUTPUT_TOKENS

if TYPE_CHECKING:
    from meterline._events import UsageEvent
    from meterline._pricing import PriceTable
    from meterline._scope import Scope
    from meterline._usage import Usage
    from meterline.budgets import Budget, BudgetStore, Reservation
    from meterline.ledger import LedgerBackend

__all__ = ["configure", "get_meter", "record", "record_tool", "reset_defaults", "scope"]


_lock = threading.Lock()
_default: Meter | None = None


def get_meter() -> Meter:
    """Return the process-wide default meter, creating it on first use."""
    global _default  # noqa: PLW0603 - the one piece of global state
    meter = _default
    if meter is None:
        with _lock:
            meter = _default
            if meter is None:
                meter = _default = Meter()
    return meter


def configure(
    ledger: LedgerBackend | str | Path | None = None,
    *,
    meter: Meter | None = None,
    durability: str = "batch",
    prices: PriceTable | str | Path | None = None,
    builtin_corrections: bool = True,
    max_live_keys: int = DEFAULT_MAX_LIVE_KEYS,
    budget_store: BudgetStore | str | Path | None = None,
    budgets: Iterable[Budget] | str | Path | None = None,
    budget_lease: float = DEFAULT_LEASE,
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    deployments: Mapping[str, str] | None = None,
) -> Meter:
    """Replace the process-wide default meter and return it.

    Pass a ready ``meter``, or `Meter`'s own options to build one. Scopes entered on the
    previous default meter keep attributing to it; the previous meter is flushed and closed.
    """
    global _default
    if meter is None:
        meter = Meter(
            ledger,
            durability=durability,
            prices=prices,
            builtin_corrections=builtin_corrections,
            max_live_keys=max_live_keys,
            budget_store=budget_store,
            budgets=budgets,
            budget_lease=budget_lease,
            default_max_output_tokens=default_max_output_tokens,
            deployments=deployments,
        )
    with _lock:
        previous, _default = _default, meter
    if previous is not None and previous is not meter:
        previous.close()
    return meter


def reset_defaults() -> None:
    """Forget the default meter (the next `get_meter` makes a fresh one). Meant for tests."""
    global _default  # noqa: PLW0603 - the one piece of global state
    with _lock:
        _default = None


def scope(**dimensions: str | int) -> Scope:
    """`Meter.scope` on the default meter."""
    return get_meter().scope(**dimensions)


def record(
    response_or_usage: object = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    latency_ms: float | None = None,
    status: str = "ok",
    tags: Mapping[str, str | int] | None = None,
    operation_id: str | None = None,
    attempt: int = 1,
    response_id: str | None = None,
    request_model: str | None = None,
    reservation: Reservation | None = None,
    api: str | None = None,
    complete: bool = True,
    service_tier: str | None = None,
    batch: bool = False,
    reported_cost: Decimal | None = None,
) -> UsageEvent:
    """`Meter.record` on the default meter."""
    return get_meter().record(
        response_or_usage,
        model=model,
        provider=provider,
        operation=operation,
        latency_ms=latency_ms,
        status=status,
        tags=tags,
        operation_id=operation_id,
        attempt=attempt,
        response_id=response_id,
        request_model=request_model,
        reservation=reservation,
        api=api,
        complete=complete,
        service_tier=service_tier,
        batch=batch,
        reported_cost=reported_cost,
    )


def record_tool(
    name: str,
    *,
    category: str = "",
    status: str = "success",
    duration_ms: float | None = None,
    usage: Usage | None = None,
    llm_call_id: str | Iterable[str] | None = None,
    tags: Mapping[str, str | int] | None = None,
    operation_id: str | None = None,
) -> UsageEvent:
    """`Meter.record_tool` on the default meter."""
    return get_meter().record_tool(
        name,
        category=category,
        status=status,
        duration_ms=duration_ms,
        usage=usage,
        llm_call_id=llm_call_id,
        tags=tags,
        operation_id=operation_id,
    )
