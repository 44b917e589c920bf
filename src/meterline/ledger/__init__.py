"""Durable ledgers: every event a meter records, stored exactly once, with hourly roll-ups."""

from __future__ import annotations as _annotations

from meterline.ledger._base import LedgerBackend, LedgerRow, LedgerStats

__all__ = ["LedgerBackend", "LedgerRow", "LedgerStats"]
