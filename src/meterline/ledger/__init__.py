"""Durable ledgers: every event a meter records, stored exactly once, with hourly roll-ups.

`SQLiteLedger` and `PostgresLedger` (extra ``postgres``) keep the contract of `LedgerBackend`;
`open_ledger` opens either from a URL. Construct one yourself to set what a URL cannot say
(a PostgreSQL schema, the ``timeout`` of each write) and pass it to `meterline.Meter`.
"""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING, Any

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
from meterline.ledger._groups import check_limit
from meterline.ledger._open import ENV_VAR, open_ledger
from meterline.ledger._parquet import ParquetExport, export_ledger_parquet, export_parquet, parquet_totals
from meterline.ledger._query_text import parse_by, parse_when, parse_where
from meterline.ledger._sqlite import SQLiteLedger
from meterline.ledger._writer import ledger_writer

if TYPE_CHECKING:
    from meterline.ledger._postgres import PostgresLedger

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
    "ParquetExport",
    "PostgresLedger",
    "SQLiteLedger",
    "check_ledger",
    "export_ledger_parquet",
    "export_parquet",
    "open_ledger",
    "parquet_totals",
]

# For the meter, not public API:
__all__ += ["ledger_writer"]
# For the command line and the dashboard, which read a report's query as text, not public API:
__all__ += ["parse_by", "parse_when", "parse_where"]
# For the in-memory ledger of meterline.testing, which checks a report's limit as the others do:
__all__ += ["check_limit"]


def __getattr__(name: str) -> Any:
    """The PostgreSQL ledger, imported on first use (its module imports nothing optional)."""
    if name == "PostgresLedger":
        from meterline.ledger._postgres import PostgresLedger  # noqa: PLC0415 - loaded when used

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
