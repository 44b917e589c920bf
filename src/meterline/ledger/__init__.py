"""Durable ledgers: every event a meter records, stored exactly once, with hourly roll-ups."""

from __future__ import annotations as _annotations

from meterline._delivery import DeliveryStats
from meterline.ledger._backend import (
    GRANULARITIES,
    SCHEMA_VERSION,
    Granularity,
    LedgerBackend,
    LedgerRow,
    LedgerStats,
)
from meterline.ledger._check import LedgerCheck, check_ledger
from meterline.ledger._dead_letters import DEAD_LETTERS_NAME, DeadLetter, DeadLetters
from meterline.ledger._open import ENV_VAR, open_ledger
from meterline.ledger._writer import ledger_writer

__all__ = [
    "DEAD_LETTERS_NAME",
    "ENV_VAR",
    "GRANULARITIES",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DeadLetters",
    "DeliveryStats",
    "Granularity",
    "LedgerBackend",
    "LedgerCheck",
    "LedgerRow",
    "LedgerStats",
    "check_ledger",
    "open_ledger",
]

# For the meter, not public API:
__all__ += ["ledger_writer"]
