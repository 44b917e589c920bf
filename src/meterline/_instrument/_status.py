"""The status an SDK call's event gets: ``ok``, ``cancelled``, an HTTP code or the error's name."""

from __future__ import annotations as _annotations

import asyncio
from typing import Final

__all__ = ["CANCELLED", "OK", "STOPPED", "status_of"]

OK: Final = "ok"
CANCELLED: Final = "cancelled"
"""Status of a call the application stopped: a stream closed or dropped before it finished,
or a task cancelled while it waited."""
STOPPED: Final = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)
"""What the application raises to stop a call (not an error of the call)."""


def status_of(exc: BaseException) -> str:
    """An error's status: the HTTP status code when the API answered, else the error's class name.

    As OpenTelemetry's ``error.type``: ``"429"``, ``"500"``, ``"APIConnectionError"``.
    """
    if isinstance(exc, STOPPED):
        return CANCELLED
    for name in ("status_code", "code"):
        code = getattr(exc, name, None)
        if type(code) is int and 100 <= code <= 599:
            return str(code)
    return type(exc).__name__
