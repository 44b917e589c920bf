"""Checking a ledger: can it be opened, is its file sound, can every event and report be read.

What ``meterline ledger check`` runs. A damaged ledger never crashes the host: opening it
raises `LedgerError` (and a meter spools meanwhile); this says what exactly is wrong.
"""

from __future__ import annotations as _annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from meterline._storage import redact
from meterline.exceptions import LedgerError
from meterline.ledger._backend import LedgerStats
from meterline.ledger._open import open_ledger

__all__ = ["LedgerCheck", "check_ledger"]

_MAX_PROBLEMS = 20
"""Problems reported at most (SQLite's integrity check can list thousands)."""


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """What `check_ledger` found."""

    url: str
    """The ledger, without its password."""
    problems: tuple[str, ...]
    """What is wrong, one line each; empty when the ledger is sound."""
    stats: LedgerStats | None
    """What it holds, when it could be read."""
    events_read: int
    """Events read back, one by one."""

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems


def check_ledger(url: str | Path) -> LedgerCheck:
    """Open the ledger at ``url`` and read all of it; report what is wrong instead of raising.

    SQLite files get SQLite's own ``PRAGMA integrity_check`` first (on a read-only connection).
    Then the ledger is opened as a meter would (schema version, migrations), its stats and a
    report read, and every stored event read back.

    Raises:
        ConfigurationError: ``url`` is not a ledger URL.
    """
    shown = redact(str(url))
    problems: list[str] = []
    path = _sqlite_path(str(url))
    if path is not None:
        problems += _integrity(path)
    try:
        ledger = open_ledger(url)
    except LedgerError as exc:
        return LedgerCheck(shown, (*problems, f"cannot be opened: {exc}"), None, 0)
    stats = None
    read = 0
    try:
        stats = ledger.stats()
        ledger.totals(by=("model",))
        for _event in ledger.events():
            read += 1
    except LedgerError as exc:
        problems.append(f"cannot be read (after {read:,} events): {exc}")
    finally:
        ledger.close()
    return LedgerCheck(shown, tuple(problems), stats, read)


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ledger URL (or plain path); ``None`` for another scheme."""
    if "://" not in url:
        return Path(url)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    return None


def _integrity(path: Path) -> list[str]:
    """SQLite's integrity check of ``path``, read-only; its findings as problems."""
    if not path.is_file():
        return [f"{path} is not a file"]
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"{path} cannot be opened read-only: {exc}"]
    try:
        rows = conn.execute(f"PRAGMA integrity_check({_MAX_PROBLEMS})").fetchall()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        return [f"SQLite's integrity check failed: {exc}"]
    finally:
        conn.close()
    findings = [str(row[0]) for row in rows]
    return [] if findings == ["ok"] else [f"SQLite: {finding}" for finding in findings]
