"""Reserve, then settle: the engine that enforces a meter's budgets, and the `Reservation` it hands out.

`BudgetEngine.reserve` books a call's worst case against every budget that applies to the
active scopes, all or nothing, in one store call; `BudgetEngine.charge` replaces the
reservation with what the call used (its cost in pico-dollars, as the meter priced it). The
engine knows nothing of the meter: it is given the price engine (to price a reservation's
worst case) and a `Guard` (store failures are logged and counted through it, and raise only
when a budget's ``on_store_error`` says so).
"""

from __future__ import annotations as _annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from decimal import Decimal
from os import getpid as _getpid
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from meterline._guard import Guard
from meterline._money import to_usd
from meterline._storage import is_value_error
from meterline._usage import Usage
from meterline.budgets._budget import Budget, BudgetAlert, BudgetStatus, amount_of, utc
from meterline.budgets._compiled import NO_ROUTE, CompiledBudget, Route
from meterline.budgets._health import StoreHealth
from meterline.budgets._request import check_worst_case
from meterline.budgets._store import COUNTER_MAX, METRICS, BudgetStore, Refusal, Vector
from meterline.exceptions import BudgetExceeded, BudgetStoreError, ConfigurationError

if TYPE_CHECKING:
    from meterline._pricing import Pricer

__all__ = ["DEFAULT_LEASE", "DEFAULT_MAX_OUTPUT_TOKENS", "BudgetEngine", "Reservation", "unbudgeted"]

DEFAULT_MAX_OUTPUT_TOKENS: Final = 4096
"""The output a reservation assumes when the call sets no ``max_output_tokens``."""
DEFAULT_LEASE: Final = 600.0
"""Seconds a reservation holds its amounts if never settled or released (a crashed process)."""
_MAX_CACHED_ROUTES: Final = 1024


class Reservation:
    """What `Meter.reserve` booked: released when unused, settled by the call's `record`.

    Use it as a context manager (``with meter.reserve(...):`` or ``async with``): a
    `Meter.record` inside the block settles it; leaving the block releases whatever was not
    settled, keeping what was recorded. Outside a block, pass it to
    ``record(..., reservation=r)`` or call `release`.

    Attributes:
        id: The reservation's id (the store's key for its holds; empty when no budget applied).
        input_tokens: The input tokens reserved (given or estimated).
        max_output_tokens: The output tokens reserved.
    """

    __slots__ = (
        "_cost",
        "_engine",
        "_expires",
        "_model_call",
        "_priced_as",
        "_route",
        "_state",
        "_token",
        "_vectors",
        "id",
        "input_tokens",
        "max_output_tokens",
    )

    def __init__(
        self,
        engine: BudgetEngine | None,
        rid: str,
        route: Route,
        vectors: tuple[Vector, ...],
        input_tokens: int,
        max_output_tokens: int,
        cost: int | None,
        expires: float | None,
        model_call: bool,
    ) -> None:
        self._engine = engine
        self._model_call = model_call
        self._priced_as: tuple[str, str | None] | None = None
        """``(model, provider)`` the reservation was priced as, if it was."""
        self.id = rid
        self._route = route
        self._vectors = vectors
        self.input_tokens = input_tokens
        self.max_output_tokens = max_output_tokens
        self._cost = cost
        self._expires = expires
        self._state = "open" if vectors else "empty"
        self._token: Token[Reservation | None] | None = None

    @property
    def model_call(self) -> bool:
        """Whether it reserves a model call (settled by `Meter.record`), not tool calls (`record_tool`)."""
        return self._model_call

    @property
    def active(self) -> bool:
        """Whether the holds are still booked (neither settled nor released)."""
        return self._state == "open"

    @property
    def cost(self) -> Decimal | None:
        """The cost reserved, in USD (``None`` when the model has no price or none was named)."""
        return None if self._cost is None else to_usd(self._cost)

    @property
    def expires_at(self) -> datetime | None:
        """When the store lets the holds go if this process never settles them."""
        return utc(self._expires)

    def release(self) -> None:
        """Give back what is still held. Idempotent; never raises (store failures are logged)."""
        if self._state != "open":
            return
        self._state = "released"
        engine = self._engine
        if engine is not None:
            engine.release(self)

    def __enter__(self) -> Reservation:
        if self._engine is not None:
            self._token = self._engine.current.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                token.var.reset(token)
            except ValueError:  # left in another context than entered (a generator moved between tasks)
                token.var.set(None)
        if self._state == "open":
            self.release()

    async def __aenter__(self) -> Reservation:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return (
            f"<meterline.Reservation {self.id or '-'} {self._state}: input_tokens={self.input_tokens} "
            f"max_output_tokens={self.max_output_tokens} cost={self.cost}>"
        )


def unbudgeted(
    engine: BudgetEngine | None, input_tokens: int, max_output_tokens: int, model_call: bool
) -> Reservation:
    """A reservation that holds nothing: no budget applies."""
    return Reservation(engine, "", NO_ROUTE, (), input_tokens, max_output_tokens, None, None, model_call)


class BudgetEngine:
    """A meter's budgets and store: turns reservations and events into store calls.

    The budgets that apply to a scope's dimensions, their keys, windows and store lines are
    worked out once per scope and window (a `Route`) and reused by every call inside it.

    Args:
        store: Where the counters and reservations live.
        lease: Seconds a reservation holds if its process never settles it.
        pricer: Prices a reservation's worst case.
        guard: Logs and counts the store's failures (and the alert callbacks').
        name: Names the engine's ``ContextVar`` of the reservation in force.
    """

    def __init__(
        self, store: BudgetStore, lease: float, pricer: Pricer, guard: Guard, name: str = ""
    ) -> None:
        self.store = store
        self.pricer = pricer
        self.guard = guard
        self.current: ContextVar[Reservation | None] = ContextVar(
            f"meterline_reservation_{name or f'{id(self):x}'}", default=None
        )
        """The reservation whose ``with`` block is in force in this context, if any."""
        self.lease = lease
        self.compiled: tuple[CompiledBudget, ...] = ()
        self.alert_subscribers: tuple[Callable[[BudgetAlert], object], ...] = ()
        self.owned = False
        """Whether the meter opened the store (and closes it)."""
        self._lock = threading.Lock()
        self._version = 0
        self._routes: dict[int, Route] = {}
        self._prices: dict[tuple[str | None, str], Any] = {}
        self._prefix = ""
        self._pid = -1
        self._counter = itertools.count(1)
        self._health = StoreHealth(store)
        """Whether the store is taken as down (after a failure, until a probe finds it working)."""

    # -- budgets -----------------------------------------------------------------------

    def add(self, budget: Budget) -> None:
        with self._lock:
            for compiled in self.compiled:
                if compiled.name == budget.name:
                    if compiled.budget == budget:
                        return
                    raise ConfigurationError(
                        f"a different budget named {budget.name!r} is already set; "
                        "give each budget its own name= or remove_budget() first"
                    )
            self.compiled = (*self.compiled, CompiledBudget(budget))
            self._version += 1
            self._routes = {}
        try:
            self.store.define(budget.name, json.dumps(budget.to_dict(), sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - the definition is for reports only
            self.guard.failed("the budget store", f"define {budget.name!r}: {exc}")

    def remove(self, name: str) -> bool:
        with self._lock:
            kept = tuple(compiled for compiled in self.compiled if compiled.name != name)
            removed = len(kept) != len(self.compiled)
            self.compiled = kept
            self._version += 1
            self._routes = {}
        return removed

    def route(self, dims: Mapping[str, str], now: float) -> Route:
        """The budgets that apply to ``dims`` at ``now`` (cached per dimensions object)."""
        route = self._routes.get(id(dims))
        if (
            route is not None
            and route.dims is dims
            and route.since <= now < route.until
            and route.version == self._version
        ):
            return route
        version = self._version  # before the budgets: a concurrent add() makes this route stale, not wrong
        entries = []
        for compiled in self.compiled:
            key = compiled.key_of(dims)
            if key is not None:
                entries.append((compiled, key, compiled.window_at(now)))
        route = Route(dims, tuple(entries), version)
        routes = self._routes
        if len(routes) >= _MAX_CACHED_ROUTES:
            routes.clear()
        routes[id(dims)] = route  # holds ``dims``, so the id is not reused while cached
        return route

    # -- reserve -----------------------------------------------------------------------

    def _estimate_pico(
        self, model: str, provider: str | None, input_tokens: int, output_tokens: int
    ) -> int | None:
        """The cost of ``input_tokens`` uncached input and ``output_tokens`` output, in pico-dollars."""
        pricer = self.pricer
        plan = self._prices.get((provider, model))
        if plan is None:
            plan = pricer.resolve(provider, model).constant
            if plan is not None and plan.flat:
                self._prices[(provider, model)] = plan
            else:
                usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
                return pricer.cost_pico(usage, provider, model, time.time_ns())
        rates = plan.base
        return plan.const + input_tokens * rates[0] + output_tokens * rates[4]

    def reserve(
        self,
        dims: Mapping[str, str],
        model: str | None,
        provider: str | None,
        input_tokens: int,
        max_output_tokens: int,
        tool_calls: int,
        lease: float,
    ) -> Reservation:
        now = time.time()
        route = self._routes.get(id(dims))
        if (
            route is None
            or route.dims is not dims
            or not route.since <= now < route.until
            or route.version != self._version
        ):
            route = self.route(dims, now)
        model_call = model is not None
        if not route.entries:
            return Reservation(self, "", route, (), input_tokens, max_output_tokens, None, None, model_call)
        pico: int | None = None
        if model is not None:
            plan = self._prices.get((provider, model))
            if plan is not None:  # a flat price: the estimate inline
                rates = plan.base
                pico = plan.const + input_tokens * rates[0] + max_output_tokens * rates[4]
            else:
                with self.guard.capture("pricing", f"{provider}/{model}"):
                    pico = self._estimate_pico(model, provider, input_tokens, max_output_tokens)
        cost = 0 if pico is None else pico
        vector: Vector = (
            input_tokens + max_output_tokens,
            input_tokens,
            max_output_tokens,
            cost,
            1 if model_call else 0,
            tool_calls,
        )
        if vector[0] > COUNTER_MAX or cost > COUNTER_MAX:
            check_worst_case(vector[0], cost, model, provider)
        if pico is None and model_call:
            vectors = tuple(
                compiled.unpriced_hold(vector, key, window, model, provider)
                for compiled, key, window in route.entries
            )
        else:
            vectors = (vector,) * len(route.entries)
        pid = _getpid()
        if pid != self._pid:  # first use, or a forked child
            self._pid = pid
            self._prefix = f"{os.urandom(6).hex()}-{pid:x}-"
        rid = self._prefix + str(next(self._counter))  # unique across processes and hosts
        health = self._health
        resting = health.down
        try:
            if resting:
                raise health.error()
            refusal = self.store.reserve(rid, route.lines, vectors, now, lease)
        except Exception as exc:
            if not resting and is_value_error(exc) and self._answers(route, now):
                # The store is up and refused this call for its values (a sum past its
                # counters, say), not for its own condition (down, locked, full): never
                # "store down, fail open".
                raise BudgetStoreError(
                    f"the budget store {self.store.url} refused this call's amounts ({exc}); the call"
                    " is refused whatever on_store_error says, since the store is available"
                ) from exc
            if not resting:
                health.went_down()
            self._store_failed("reserve", exc, [compiled for compiled, _, _ in route.entries])
            return Reservation(self, "", route, (), input_tokens, max_output_tokens, None, None, model_call)
        if refusal is not None:
            raise self._exceeded(refusal, route)
        reservation = Reservation(
            self,
            rid,
            route,
            vectors,
            input_tokens,
            max_output_tokens,
            None if pico is None else cost,
            now + lease,
            model_call,
        )
        if model is not None and pico is not None:
            reservation._priced_as = (model, provider)
        return reservation

    def _exceeded(self, refusal: Refusal, route: Route) -> BudgetExceeded:
        compiled, key, window = route.entries[refusal.line]
        metric = refusal.metric
        return BudgetExceeded(
            compiled.name,
            compiled.key_dict(key),
            METRICS[metric],
            amount_of(metric, refusal.limit),
            amount_of(metric, refusal.used),
            amount_of(metric, refusal.reserved),
            amount_of(metric, refusal.requested),
            utc(window.resets_at),
        )

    def _answers(self, route: Route, now: float) -> bool:
        """Whether the store answers a read of ``route``'s lines (then a refusal was the call's fault)."""
        try:
            self.store.read(route.lines, now)
        except Exception:  # noqa: BLE001 - any failure means: not answering
            return False
        return True

    def _store_failed(self, what: str, exc: BaseException, budgets: Iterable[CompiledBudget]) -> None:
        self.guard.failed("the budget store", f"{what}: {exc}")
        closed = [compiled.name for compiled in budgets if compiled.budget.on_store_error == "fail_closed"]
        if closed:
            raise BudgetStoreError(
                f"the budget store {self.store.url} failed ({exc}); budget {closed[0]!r} fails closed, "
                "so the call is refused"
            ) from exc

    # -- settle ------------------------------------------------------------------------

    def release(self, reservation: Reservation) -> None:
        try:
            self.store.release(reservation.id)
        except Exception as exc:  # noqa: BLE001 - the lease frees the holds anyway
            self.guard.failed("the budget store", f"release {reservation.id}: {exc}")

    def charge(
        self,
        dims: Mapping[str, str],
        usage: Usage | None,
        pico: int | None,
        model_call: bool,
        tool_calls: int,
        reservation: Reservation | None,
        time_ns: int,
    ) -> None:
        """Charge what one event used, settling ``reservation`` if it is open; never raises.

        Args:
            dims: The event's dimensions.
            usage: Its usage (``None``: unmeasured).
            pico: Its cost in pico-dollars, as the meter priced it (``None``: unpriced or no usage).
            model_call: Whether it is a model call (counted as a request).
            tool_calls: Tool calls it counts (1 for a tool event).
            reservation: The reservation it settles, if any.
            time_ns: When it was recorded, in nanoseconds since the epoch.
        """
        now = time_ns / 1e9
        rid = None
        try:
            held: tuple[Vector | None, ...] = ()
            route = NO_ROUTE
            if reservation is not None and reservation._state == "open":
                reservation._state = "settled"
                rid = reservation.id
                route = reservation._route
                if (
                    (route.dims is dims or route.dims == dims)
                    and route.since <= now < route.until
                    and route.version == self._version
                ):
                    held = reservation._vectors
                else:
                    route = NO_ROUTE
            if route is NO_ROUTE:
                route = self._routes.get(id(dims)) or NO_ROUTE
                if (
                    route.dims is not dims
                    or not route.since <= now < route.until
                    or route.version != self._version
                ):
                    route = self.route(dims, now)
            if not route.entries:
                if rid is not None:
                    self.store.release(rid)
                return
            requests = 1 if model_call else 0
            if usage is None:
                if reservation is not None and rid is not None and not held:
                    # The route changed since the reservation (a new window step, other tags,
                    # a budget added): match what was held by budget name.
                    by_name = {
                        compiled.name: vector
                        for (compiled, _, _), vector in zip(
                            reservation._route.entries, reservation._vectors, strict=False
                        )
                    }
                    held = tuple(by_name.get(compiled.name) for compiled, _, _ in route.entries)
                input_pico: int | None = None
                if reservation is not None and reservation._priced_as is not None:
                    model, provider = reservation._priced_as
                    input_pico = self._estimate_pico(model, provider, reservation.input_tokens, 0) or 0
                input_tokens = 0 if reservation is None else reservation.input_tokens
                vectors = tuple(
                    compiled.unmeasured_charge(
                        held[index] if held else None, requests, tool_calls, input_pico, input_tokens
                    )
                    for index, (compiled, _, _) in enumerate(route.entries)
                )
            else:
                input_tokens = usage.input_tokens
                output_tokens = usage.output_tokens
                vector: Vector = (
                    input_tokens + output_tokens,
                    input_tokens,
                    output_tokens,
                    0 if pico is None else pico,
                    requests,
                    tool_calls,
                )
                if pico is None and model_call:
                    vectors = tuple(compiled.unpriced_charge(vector) for compiled, _, _ in route.entries)
                else:
                    vectors = (vector,) * len(route.entries)
            if self._health.down:
                rid = None  # nothing is sent to a store that is down; the holds expire with their lease
                raise self._health.error()
            after = self.store.settle(rid, route.lines, vectors, now)
            for index, metric, lowest in route.alert_checks:
                if after[index][metric] >= lowest:
                    self._alerts(route, vectors, after, now)
                    break
        except Exception as exc:  # noqa: BLE001 - settling never breaks record()
            self.guard.failed("the budget store", f"settle: {exc}")
            self._health.went_down()
            if rid is not None:  # the usage is lost to the budget; at least free what was held
                try:
                    self.store.release(rid)
                except Exception as again:  # noqa: BLE001 - the lease frees it in the end
                    self.guard.failed("the budget store", f"release {rid}: {again}")

    def _alerts(self, route: Route, vectors: Sequence[Vector], after: Sequence[Vector], now: float) -> None:
        for index, metric, lowest in route.alert_checks:
            total = after[index][metric]
            if total < lowest:
                continue
            compiled, key, window = route.entries[index]
            before = total - vectors[index][metric]
            for _, limit, marks in compiled.marks:
                if _ != metric:
                    continue
                for threshold, mark in zip(compiled.budget.alert_at, marks, strict=True):
                    if before < mark <= total and self.store.claim_alert(
                        compiled.name, key, window.alert_window, round(threshold * 1000)
                    ):
                        self._fire(
                            compiled,
                            BudgetAlert(
                                compiled.name,
                                compiled.key_dict(key),
                                METRICS[metric],
                                threshold,
                                amount_of(metric, limit),
                                amount_of(metric, total),
                                None if compiled.budget.window is None else utc(window.start),
                                datetime.fromtimestamp(now, tz=UTC),
                            ),
                        )

    def _fire(self, compiled: CompiledBudget, alert: BudgetAlert) -> None:
        callbacks = [*self.alert_subscribers]
        if compiled.budget.on_alert is not None:
            callbacks.append(compiled.budget.on_alert)
        for callback in callbacks:
            try:
                callback(alert)
            except Exception:  # noqa: BLE001 - an alert callback never breaks record()
                self.guard.callback_failed(callback)

    # -- reading -----------------------------------------------------------------------

    def status(self, now: float | None = None) -> list[BudgetStatus]:
        moment = time.time() if now is None else now
        result = []
        for compiled in self.compiled:
            result.extend(compiled.status(self.store, moment))
        return result

    def forget(self, dims: Mapping[str, str]) -> int:
        forgotten = 0
        for compiled in self.compiled:
            per = compiled.per or ()
            if per and set(dims) <= set(per):
                pattern = tuple(dims.get(name) for name in per)
                try:
                    forgotten += self.store.forget(compiled.name, pattern)
                except Exception as exc:  # noqa: BLE001 - forgetting is housekeeping
                    self.guard.failed("the budget store", f"forget: {exc}")
        return forgotten
