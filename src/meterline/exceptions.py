"""Every error and warning meterline raises, in one place.

The hierarchy::

    MeterlineError                      base of everything meterline raises on purpose
    ├── UsageError (ValueError)         a usage payload or count that is not valid
    │   ├── MalformedUsageError         a count is negative, NaN, a bool, a float, a string,
    │   │                               or a subset is larger than its total
    │   └── UnrecognizedPayloadError    the payload's shape or provider is not one meterline knows
    ├── ConfigurationError (ValueError) a bad argument, dimension name or price table
    │   └── PriceTableError             an override price table (TOML) that cannot be used
    ├── UnknownModelError (LookupError) an explicit price lookup for a model nobody prices
    ├── LedgerError                     the ledger's store failed or refused (wraps the driver's error)
    ├── BudgetExceeded                  a reservation would pass a budget's limit (policy: raised on purpose)
    ├── BudgetStoreError                the budget store failed or is unreachable (wraps the driver's error)
    ├── ExportError (ValueError)        an event a billing format cannot express (a Stripe value
    │                                   over 15 significant digits, no customer, too old)
    ├── DeliveryError                   a billing endpoint refused or kept failing (the CLI export)
    ├── ReconcileError                  a provider's usage or cost report could not be read
    ├── MissingExtraError (ImportError) an optional feature whose extra is not installed
    └── UnsupportedSDKError             instrument() got a client it cannot meter, or too old an SDK

    MeterlineWarning (UserWarning)
    └── UnpricedModelWarning            once per model: usage was recorded with ``cost=None``

Policy errors (a budget the user set) are meant to reach the caller. Machinery failures
(a subscriber, an exporter, the ledger) are never raised into the caller's code: they are
logged on the ``meterline`` logger and counted instead.

Errors that have a natural built-in parent also subclass it, so an existing
``except ValueError`` keeps working.
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "BudgetExceeded",
    "BudgetStoreError",
    "ConfigurationError",
    "DeliveryError",
    "ExportError",
    "LedgerError",
    "MalformedUsageError",
    "MeterlineError",
    "MeterlineWarning",
    "MissingExtraError",
    "PriceTableError",
    "ReconcileError",
    "UnknownModelError",
    "UnpricedModelWarning",
    "UnrecognizedPayloadError",
    "UnsupportedSDKError",
    "UsageError",
]


def safe_repr(value: object, limit: int = 120) -> str:
    """``repr(value)``, shortened to ``limit`` characters, never raising.

    Error messages name the offending value; a hostile value (an int of 5,000 digits, whose
    ``repr`` raises, or a megabyte of text) must not break the error that reports it.
    """
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any repr failure still gives a message
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text)} chars)"


class MeterlineError(Exception):
    """Base class of every error meterline raises on purpose."""


class UsageError(MeterlineError, ValueError):
    """A usage payload or count that cannot be metered."""


class MalformedUsageError(UsageError):
    """A usage count that is not a non-negative integer, or a subset larger than its total.

    Attributes:
        field: The field (provider field name or canonical field) that was wrong.
        value: The offending value, as it was received.
        expected: What a valid value looks like.
    """

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}={safe_repr(value)}: expected {expected}")


class UnrecognizedPayloadError(UsageError):
    """A payload whose provider or shape meterline does not recognise."""


class ConfigurationError(MeterlineError, ValueError):
    """A bad argument: an unknown provider name, an invalid dimension, a bad option."""


class PriceTableError(ConfigurationError):
    """An override price table that cannot be loaded or used."""


class UnknownModelError(MeterlineError, LookupError):
    """An explicit price lookup for a model that neither the overrides nor genai-prices know."""


class LedgerError(MeterlineError):
    """The ledger's store failed (the driver's error is the ``__cause__``) or refused to open.

    A ledger refuses a store whose schema is newer than this meterline knows, rather than
    risk writing rows an older schema cannot describe.
    """


class ExportError(MeterlineError, ValueError):
    """An event that a billing format cannot express; the message names the event and the limit."""


class DeliveryError(MeterlineError):
    """A billing endpoint refused a batch, or kept failing past the retries (``meterline export --to``).

    Nothing past the last acknowledged batch is marked delivered, so running the export
    again resumes where it stopped.
    """


class ReconcileError(MeterlineError):
    """A provider's organisation usage or cost report could not be read (``meterline reconcile``).

    The message names the endpoint and what went wrong (an HTTP status, a page that is not the
    documented shape), never the admin key.
    """


class BudgetStoreError(MeterlineError):
    """The budget store failed or is unreachable (the driver's error is the ``__cause__``).

    `Meter.reserve` raises it only for a budget whose policy is to fail closed when its
    store is down; otherwise the failure is logged and counted and the call goes ahead.
    """


class BudgetExceeded(MeterlineError):  # noqa: N818 - the public name is fixed (DESIGN.md)
    """A reservation would take a budget past its limit; nothing was reserved or changed.

    Raised by `Meter.reserve` before the call is made (a policy the user set, so it does
    reach the caller).

    Attributes:
        budget: The budget's name.
        key: The budget's key: the values of its ``per`` dimensions (empty for a global one).
        metric: What went over: ``tokens``, ``input_tokens``, ``output_tokens``, ``cost``,
            ``requests`` or ``tool_calls``.
        limit: The limit (``Decimal`` USD for cost, an int otherwise).
        used: What the window has used so far.
        reserved: What other live reservations hold.
        requested: What this reservation asked for.
        resets_at: When the window resets (``None`` for a budget without a window).
        reason: Why, in words, when it is not the limit itself (an unpriced model under a
            cost budget that fails closed, say); ``None`` otherwise.
    """

    def __init__(
        self,
        budget: str,
        key: Mapping[str, str],
        metric: str,
        limit: int | Decimal,
        used: int | Decimal,
        reserved: int | Decimal,
        requested: int | Decimal,
        resets_at: datetime | None,
        reason: str | None = None,
    ) -> None:
        self.budget = budget
        self.key = dict(key)
        self.metric = metric
        self.limit = limit
        self.used = used
        self.reserved = reserved
        self.requested = requested
        self.resets_at = resets_at
        self.reason = reason
        where = ", ".join(f"{name}={safe_repr(value)}" for name, value in self.key.items()) or "global"
        resets = "never" if resets_at is None else resets_at.isoformat()
        head = f"budget {budget!r} ({where})"
        if reason is not None:
            super().__init__(f"{head}: {reason}")
        else:
            super().__init__(
                f"{head}: {metric} limit {limit}; used {used}, reserved {reserved}, "
                f"requested {requested}; the window resets {resets}"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.budget,
                self.key,
                self.metric,
                self.limit,
                self.used,
                self.reserved,
                self.requested,
                self.resets_at,
                self.reason,
            ),
        )


class MissingExtraError(MeterlineError, ImportError):
    """An optional feature was used without its extra installed.

    The message names the ``pip install "meterline[extra]"`` command that fixes it.
    """


class UnsupportedSDKError(MeterlineError):
    """`meterline.instrument` was given a client it cannot meter, or one from an SDK too old.

    The message names the client's type or the SDK's installed version, the minimum meterline
    supports and the command that upgrades it.
    """


class MeterlineWarning(UserWarning):
    """Base class of meterline's warnings."""


class UnpricedModelWarning(MeterlineWarning):
    """Usage of a model that cannot be priced was recorded with ``cost=None`` (never as $0).

    Issued once per (provider, model) and meter; every such event is also counted as
    *unpriced* in the totals.
    """
