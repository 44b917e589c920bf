"""One guard for meterline's own failures: logged, counted, never raised into the host.

meterline runs inside other people's programs. When its machinery fails (a subscriber, the
ledger writer, a budget store, an exporter, an SDK integration), the failure is logged on
the ``meterline`` logger and counted, and the user's call carries on as if meterline were
not there. Every such place goes through a `Guard`, as every internal failure of
sentry-python goes through ``capture_internal_exceptions``:

* ``with guard.capture("the budget store", detail):`` around work that may fail; or
* ``guard.failed("the ledger writer", detail)`` from an ``except`` block, where a ``with``
  would cost too much (the record path).

Policy is not a failure: a budget the user set raises `meterline.BudgetExceeded` on purpose,
and `capture` lets it, and any `BaseException` that is not an `Exception`, through.
"""

from __future__ import annotations as _annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final

__all__ = ["MAX_UNMETERED_KINDS", "Guard", "logger"]

logger: Final = logging.getLogger("meterline")
"""The logger every meterline message goes to."""

MAX_UNMETERED_KINDS: Final = 100
"""Kinds of unmetered calls counted apart (`Guard.cannot_meter`); more count as ``"other"``."""

_LOG_FIRST: Final = 10
_LOG_EVERY: Final = 1000
"""A failure that repeats is logged the first ten times, then once every thousand."""


class Guard:
    """Counts and logs failures of one piece of meterline's machinery.

    Args:
        owner: What the failures happen in, for the log (``"meter"``, ``"the ledger writer"``).
        passes: Exception types that are not failures but policy, and propagate.
    """

    __slots__ = ("_unmetered_lock", "callback_errors", "errors", "owner", "passes", "unmetered")

    def __init__(self, owner: str, *, passes: tuple[type[BaseException], ...] = ()) -> None:
        self.owner = owner
        self.passes = passes
        self.errors = 0
        """Machinery failures so far."""
        self.callback_errors = 0
        """Failures of callbacks the user registered (subscribers, alert callbacks)."""
        self.unmetered: dict[str, int] = {}
        """Calls an instrumented client sent that meterline could not meter, by kind."""
        self._unmetered_lock = threading.Lock()

    def failed(self, what: str, detail: object = "") -> None:
        """Log and count the failure being handled (call it from an ``except`` block).

        Args:
            what: What failed, e.g. ``"the budget store"``.
            detail: What it was doing or with what (an event id, a model), for the log.
        """
        self.errors += 1
        count = self.errors
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            logger.exception(
                "meterline: %s failed for %s (failure #%d of the %s); the call is unaffected",
                what,
                detail,
                count,
                self.owner,
            )

    def callback_failed(self, callback: Callable[..., object]) -> None:
        """Log and count a failing user callback (call it from an ``except`` block)."""
        self.callback_errors += 1
        count = self.callback_errors
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            logger.exception(
                "meterline: callback %r failed (failure #%d); the call is unaffected", callback, count
            )

    def cannot_meter(self, what: str, hint: str) -> None:
        """Count a call meterline let through unmetered; the first of each kind is logged.

        Args:
            what: The kind of call, e.g. ``"openai POST /images/generations"`` (at most
                `MAX_UNMETERED_KINDS` kinds are told apart; the rest count as ``"other"``).
            hint: What the user can do about it, for the log.
        """
        with self._unmetered_lock:
            unmetered = self.unmetered
            if what not in unmetered and len(unmetered) >= MAX_UNMETERED_KINDS:
                what = "other"
            count = unmetered.get(what, 0) + 1
            unmetered[what] = count
        if count == 1:
            logger.warning("meterline: cannot meter %s: the call went through unmetered; %s", what, hint)

    def unmetered_counts(self) -> tuple[tuple[str, int], ...]:
        """What `cannot_meter` counted, as sorted ``(kind, count)`` pairs."""
        with self._unmetered_lock:
            return tuple(sorted(self.unmetered.items()))

    def capture(self, what: str, detail: object = "") -> _Capture:
        """A context manager: an `Exception` its block raises is logged and counted, not raised.

        Exceptions in ``passes`` (policy) and other `BaseException` s propagate unchanged.
        """
        return _Capture(self, what, detail)

    def __repr__(self) -> str:
        return f"<meterline Guard of the {self.owner}: {self.errors} failures>"


class _Capture:
    """`Guard.capture`'s context manager."""

    __slots__ = ("detail", "guard", "what")

    def __init__(self, guard: Guard, what: str, detail: object) -> None:
        self.guard = guard
        self.what = what
        self.detail = detail

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, self.guard.passes):
            return False
        self.guard.failed(self.what, self.detail)
        return True
