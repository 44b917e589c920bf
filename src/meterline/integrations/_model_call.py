"""One model call a framework makes: reserved before it is sent, recorded once, in its caller's scopes.

Frameworks tell of a call in pieces (a start callback, an end or error callback, often on
another thread or task than the caller's). `begin` runs where the call starts: it captures the
caller's context (so the event lands in the scopes active there, whichever thread the end
arrives on) and reserves against the budgets. `ModelCall.finish` and `ModelCall.fail` record
the one event; a second end of the same call records nothing.

Only a budget the user set raises (`BudgetExceeded`, `BudgetStoreError`); every other failure
here is logged on the ``meterline`` logger and counted, never raised into the framework.
"""

from __future__ import annotations as _annotations

import contextvars
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from meterline._default import get_meter
from meterline._instrument import status_of
from meterline.exceptions import BudgetExceeded, BudgetStoreError, ConfigurationError

if TYPE_CHECKING:
    from meterline._meter import Meter

__all__ = ["MAX_IN_FLIGHT", "InFlight", "ModelCall", "answered", "begin", "check_meter"]

logger = logging.getLogger("meterline")

MAX_IN_FLIGHT: Final = 10_000
"""Calls an `InFlight` table holds before it gives up on the oldest (a start whose end never came)."""

_POLICY: Final = (BudgetExceeded, BudgetStoreError)
"""What `Meter.reserve` raises on purpose: passed on to the framework's caller."""


def check_meter(meter: object) -> None:
    """Refuse anything but a `Meter` or ``None`` (the default meter of the moment).

    Raises:
        ConfigurationError: ``meter`` is neither.
    """
    if meter is not None and not (
        callable(getattr(meter, "record", None)) and callable(getattr(meter, "reserve", None))
    ):
        raise ConfigurationError(f"meter={meter!r}: expected a meterline.Meter or None")


class ModelCall:
    """One model call: its meter, the caller's context, its reservation and start time."""

    __slots__ = ("_pending", "context", "meter", "model", "provider", "reservation", "start", "tags")

    def __init__(
        self,
        meter: Meter,
        model: str | None,
        provider: str | None,
        reservation: Any,
        tags: Mapping[str, str | int] | None,
    ) -> None:
        self.meter = meter
        self.model = model
        self.provider = provider
        self.reservation = reservation
        self.tags = tags
        self.context = contextvars.copy_context()
        self.start = time.perf_counter_ns()
        # Popped by whichever end comes first: list.pop is atomic, so two ends racing on two
        # threads (a framework's sync and async handlers both firing) record one event.
        self._pending = [True]

    def finish(
        self,
        payload: object,
        *,
        api: str | None = None,
        served: str | None = None,
        status: str = "ok",
        response_id: str | None = None,
    ) -> None:
        """Record the call once: ``payload`` read with ``api``'s rules (``None``: unmeasured).

        A payload that cannot be read is logged and counted, and the call recorded unmeasured.
        """
        try:
            self._pending.pop()
        except IndexError:
            return  # already recorded
        meter = self.meter
        requested = self.model
        call: dict[str, Any] = {
            "model": served or requested,
            "provider": self.provider,
            "latency_ms": (time.perf_counter_ns() - self.start) / 1e6,
            "status": status,
            "tags": self.tags,
        }
        if self.reservation is not None:
            call["reservation"] = self.reservation
        run = self.context.run
        try:
            request_model = requested if served and requested and served != requested else None
            run(meter.record, payload, response_id=response_id, request_model=request_model, api=api, **call)
            return
        except Exception:  # noqa: BLE001 - a payload meterline cannot read never breaks the host
            meter.guard.failed("integration (recording a response)", f"{self.provider}/{requested}")
        try:
            run(meter.record, None, **call)  # the call happened: unmeasured, never lost
        except Exception:  # noqa: BLE001
            meter.guard.failed("integration (recording a call)", f"{self.provider}/{requested}")
            self._release()

    def fail(self, exc: BaseException, *, sent: bool = True) -> None:
        """The framework raised ``exc``: record a failed call, or release what was never sent."""
        if sent:
            self.finish(getattr(exc, "completion", None), status=status_of(exc))
        else:
            self.drop()

    def drop(self) -> None:
        """Record nothing for this call and release its reservation (once).

        For a call never sent, or one whose other start is the one recorded.
        """
        try:
            self._pending.pop()
        except IndexError:
            return
        self._release()

    def _release(self) -> None:
        if self.reservation is None:
            return
        try:
            self.reservation.release()
        except Exception:  # noqa: BLE001
            self.meter.guard.failed("integration (releasing a reservation)", str(self.model))


def begin(
    meter: Meter | None,
    *,
    model: str | None,
    provider: str | None,
    messages: object = None,
    max_output_tokens: int | None = None,
    tags: Mapping[str, str | int] | None = None,
    reserve: bool = True,
) -> ModelCall | None:
    """Start a call in the caller's context: reserve its worst case against the budgets.

    ``reserve=False`` for a call that will be sent whatever the budgets say (a framework hook
    that cannot refuse): it is recorded, and charged, when it ends.

    Returns:
        The call, or ``None`` when there is no meter to record to (logged).

    Raises:
        BudgetExceeded: a budget would be exceeded: the framework must not send the request.
        BudgetStoreError: the budget store is down and the budget fails closed.
    """
    try:
        resolved = get_meter() if meter is None else meter
    except Exception:
        logger.exception("meterline: no meter to record a call of %s to; the call is not metered", model)
        return None
    reservation = None
    if reserve and resolved.budgets:
        try:
            reservation = resolved.reserve(
                model=model,
                provider=provider,
                messages=messages,
                max_output_tokens=max_output_tokens if _is_count(max_output_tokens) else None,
                tags=tags,
            )
        except _POLICY:
            raise
        except Exception:  # noqa: BLE001 - a budget bug never stops the call
            resolved.guard.failed("integration (reserving)", str(model))
    return ModelCall(resolved, model, provider, reservation, tags)


def answered(exc: BaseException) -> bool:
    """Whether the provider answered the call that raised ``exc`` (it carries an HTTP status).

    Else the call may never have been sent, and nothing was billed.
    """
    return type(getattr(exc, "status_code", None)) is int


def _is_count(value: object) -> bool:
    return type(value) is int and value > 0


class InFlight:
    """Calls started and not yet ended, by the framework's id for them; bounded.

    A framework that starts a call and never ends it (another handler raised between the two)
    would leave it here with its reservation held: past `MAX_IN_FLIGHT` calls, the oldest is
    dropped and its reservation released (logged and counted as a machinery failure).
    """

    def __init__(self) -> None:
        self._calls: dict[Any, ModelCall] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        return key in self._calls

    def add(self, key: Any, call: ModelCall) -> bool:
        """Hold ``call`` under ``key``; ``False`` (and nothing held) when the key is taken."""
        with self._lock:
            calls = self._calls
            if key in calls:
                return False
            calls[key] = call
            oldest = None
            if len(calls) > MAX_IN_FLIGHT:
                oldest = calls.pop(next(iter(calls)))
        if oldest is not None:
            oldest.meter.guard.failed("integration (a call that never ended)", str(oldest.model))
            oldest.drop()
        return True

    def pop(self, key: Any) -> ModelCall | None:
        """The call under ``key``, taken out; ``None`` when there is none."""
        with self._lock:
            return self._calls.pop(key, None)
