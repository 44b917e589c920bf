"""Dead letters: events a working ledger refused, kept with the reason, to be retried after a fix.

A ledger that is down refuses every event, and the writer spools them all; a ledger that is up
but refuses *one* event (a value its columns cannot hold) would make every replay of the spool
fail on that event and stop the ledger for good. The writer tells the two apart by writing a
failed batch event by event (`LedgerWriter`): what the ledger still refuses while it takes
others, or while it answers, goes here, one JSON line each (``{"reason", "failed_at",
"event"}``), appended and fsynced, beside the spool. ``meterline ledger dead-letters`` lists
them, and retries them once the cause is fixed.
"""

from __future__ import annotations as _annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from meterline._events import UsageEvent
from meterline.exceptions import LedgerError, MeterlineError
from meterline.ledger._backend import LedgerBackend

__all__ = ["DEAD_LETTERS_NAME", "DeadLetter", "DeadLetters"]

DEAD_LETTERS_NAME: Final = "dead-letters.jsonl"
"""The file's name, in the spool's directory."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused event and why."""

    event: UsageEvent
    """The event, as recorded."""
    reason: str
    """What the ledger said."""
    failed_at: str
    """When it was refused (ISO 8601, UTC)."""


class DeadLetters:
    """The dead-letter file of one ledger (thread-safe; created 0600 on the first refusal).

    Args:
        path: The file (by default `DEAD_LETTERS_NAME` in the ledger's spool directory).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<meterline DeadLetters {str(self.path)!r}>"

    def add(self, refused: Sequence[tuple[UsageEvent, str]]) -> None:
        """Append ``(event, reason)`` pairs and fsync them.

        Raises:
            OSError: they could not be written (the caller counts them lost).
        """
        if not refused:
            return
        now = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        data = b"".join(_line(event, reason, now) for event, reason in refused)
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write(self.path, data, os.O_APPEND)

    def __iter__(self) -> Iterator[DeadLetter]:
        """The dead letters, oldest first (a line that cannot be read is skipped)."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                record = json.loads(line)
                yield DeadLetter(
                    UsageEvent.from_dict(record["event"]), str(record["reason"]), str(record["failed_at"])
                )
            except (ValueError, KeyError, TypeError, MeterlineError):
                continue

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def retry(self, backend: LedgerBackend) -> int:
        """Write each dead letter to ``backend`` again (after a fix); keep those still refused.

        Returns:
            How many were written (and removed from the file).
        """
        with self._lock:
            letters = list(self)
            kept: list[DeadLetter] = []
            written = 0
            for letter in letters:
                try:
                    backend.write([letter.event])
                    written += 1
                except LedgerError as exc:
                    kept.append(DeadLetter(letter.event, str(exc), letter.failed_at))
            staging = self.path.with_name(f".{self.path.name}.tmp")
            _write(staging, b"".join(_line(letter.event, letter.reason, letter.failed_at) for letter in kept))
            os.replace(staging, self.path)
        return written


def _line(event: UsageEvent, reason: str, failed_at: str) -> bytes:
    """One dead letter as the file stores it."""
    record = {"reason": reason, "failed_at": failed_at, "event": event.to_dict()}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def _write(path: Path, data: bytes, mode: int = os.O_TRUNC) -> None:
    """Write ``data`` to ``path`` (0600; appended or replacing) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
