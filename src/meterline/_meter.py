"""The meter: records events, attributes them to scopes, prices them and keeps live totals."""

from __future__ import annotations as _annotations

import functools
import inspect
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, overload

from meterline._acc import Acc, totals_from_rows
from meterline._budget import (
    BUDGET_STORE_ENV_VAR,
    DEFAULT_LEASE,
    DEFAULT_MAX_OUTPUT_TOKENS,
    Budget,
    BudgetEngine,
    BudgetStatus,
    Reservation,
    estimate_tokens,
    load_budgets,
    unbudgeted,
)
from meterline._events import (
    CACHE_OPERATION,
    DIMENSION_NAME,
    TOOL_OPERATION,
    Dimensions,
    Totals,
    UsageEvent,
    _EventBuilder,
    check_names,
    where_filters,
)
from meterline._ids import IdFactory
from meterline._normalize import extract
from meterline._pricing import Pricer, PriceTable, _Plan, atto_to_decimal
from meterline._providers import canonical_provider
from meterline._usage import MAX_COUNT, Usage, check_count
from meterline.budgets._base import BudgetStore
from meterline.budgets._memory import MemoryBudgetStore
from meterline.exceptions import ConfigurationError, LedgerError, MalformedUsageError
from meterline.ledger._base import LedgerBackend
from meterline.ledger._open import ENV_VAR as LEDGER_ENV_VAR
from meterline.ledger._open import LazyLedger, open_ledger

__all__ = ["ActiveScope", "Meter", "MeterStats", "Scope", "Snapshot"]

logger = logging.getLogger("meterline")

P = ParamSpec("P")
R = TypeVar("R")

EVENT_FIELDS: Final = ("operation", "status", "provider", "model")
"""Event fields that `Meter.totals` can group and filter by, besides scope dimensions."""
_RESERVED: Final = frozenset(EVENT_FIELDS)
DEFAULT_MAX_LIVE_KEYS: Final = 100_000
OVERFLOW_DIMENSION: Final = "meterline_overflow"
_SNAPSHOT_FORMAT: Final = "meterline.snapshot/1"
_INF: Final = math.inf
_time_ns = time.time_ns
_new_object = object.__new__
_CHAT: Final = "chat"
_OK: Final = "ok"

_all_meters: weakref.WeakSet[Meter] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for meter in list(_all_meters):
        meter._lock = threading.Lock()
        meter._ids.renew()


os.register_at_fork(after_in_child=_reinit_locks_after_fork)


def _open_budget_store(store: BudgetStore | str | Path) -> BudgetStore:
    if not isinstance(store, (str, Path)):
        return store
    from meterline.budgets._open import open_budget_store  # noqa: PLC0415 - drivers load on demand

    opened: BudgetStore = open_budget_store(store)
    return opened


def _check_dims(dims: Mapping[str, object], what: str) -> dict[str, str]:
    """Validate dimension names (identifiers, never event fields) and stringify int values."""
    checked: dict[str, str] = {}
    for name, value in dims.items():
        if type(name) is not str or not DIMENSION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"{what} name {name!r}: expected a lower-case identifier "
                "([a-z_][a-z0-9_]*, at most 63 characters)"
            )
        if name in _RESERVED:
            raise ConfigurationError(
                f"{what} name {name!r} is an event field; pass it to record() instead of as a dimension"
            )
        if type(value) is str:
            checked[name] = value
        elif type(value) is int:
            checked[name] = str(value)
        else:
            raise ConfigurationError(f"{what} {name}={value!r}: expected a str (or an int)")
    return checked


class ActiveScope:
    """One entry of a scope: its dimensions and live totals.

    ``totals`` includes everything recorded inside the entry, in this thread or task or in
    any context copied from it, children included. It stays readable after the entry ends.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_closed",
        "_dims_key",
        "_folded",
        "_meter",
        "_parent",
        "_rows",
        "dimensions",
    )

    def __init__(self, meter: Meter, parent: ActiveScope | None, dims: dict[str, str]) -> None:
        self._meter = meter
        self._parent = parent
        self.dimensions: Mapping[str, str] = Dimensions(dims)
        """Every dimension in force here: this scope's merged over its ancestors'."""
        self._dims_key = tuple(sorted(dims.items()))
        # Events recorded directly in this entry, by (operation, status, provider, model,
        # extra dimensions); the meter's roll-ups read them live and take them on exit.
        self._rows: dict[_RowKey, _Row] = {}
        # What finished children (and rows taken by reset()) added, by (operation, status,
        # tool, tool category): only this entry's own totals need it.
        self._folded: dict[_TotalsKey, Acc] = {}
        self._children: set[ActiveScope] = set()
        self._closed = False

    @property
    def parent(self) -> ActiveScope | None:
        """The enclosing scope entry, if any."""
        return self._parent

    @property
    def closed(self) -> bool:
        """Whether the entry has ended."""
        return self._closed

    @property
    def totals(self) -> Totals:
        """Everything recorded inside this scope and its children (a consistent snapshot)."""
        merged: dict[_TotalsKey, Acc] = {}
        with self._meter._lock:
            stack = [self]
            while stack:
                frame = stack.pop()
                for key, row in frame._rows.items():
                    row.settle()
                    _merge_into(merged, _totals_key(key, frame), row)
                for tkey, acc in frame._folded.items():
                    _merge_into(merged, tkey, acc)
                stack.extend(frame._children)
        return totals_from_rows((*key, acc) for key, acc in merged.items())

    def _fold(self, tkey: _TotalsKey, acc: Acc) -> None:
        _merge_into(self._folded, tkey, acc)

    def __repr__(self) -> str:
        return f"<ActiveScope {dict(self.dimensions)!r}{' closed' if self._closed else ''}>"


_RowKey = tuple[str, str, str | None, str | None, tuple[tuple[str, str], ...]]
"""(operation, status, provider, model, dimensions): a row of the meter's roll-ups."""
_TotalsKey = tuple[str, str, str | None, str | None]
"""(operation, status, tool, tool category): what a `Totals` needs to tell rows apart."""


class _Row(Acc):
    """An accumulator for one row key in one scope entry, with what recording it needs."""

    __slots__ = ("cost_units", "cube_key", "live", "model_call", "pending", "plan", "provider", "unit")

    def __init__(self, cube_key: _RowKey, model_call: bool, plan: _Plan | None) -> None:
        super().__init__()
        self.pending: list[_Pending] = []
        """Events recorded but not yet added up: `Meter.record` appends without a lock
        (``list.append`` is atomic) and whoever holds the meter's lock settles them."""
        self.unit = plan.divisor if plan is not None else 1
        self.cost_units = 0
        """Costs priced inline with the row's plan, in units of ``unit`` atto-dollars."""
        self.live = True
        """False once the row was taken from its entry (exit, reset, forget): record elsewhere."""
        self.cube_key = cube_key
        """The row key with the entry's dimensions merged in (the key in the roll-ups)."""
        self.provider = cube_key[2]
        """The canonical provider name (rows are found by the name as given)."""
        self.model_call = model_call
        self.plan = plan
        """The compiled price, when it does not depend on time; else priced per event."""

    def atto(self) -> int:
        """The cost held, in atto-dollars."""
        return self.cost_atto + self.cost_units * self.unit

    def settle(self, into: _Row | None = None) -> None:
        """Add up the pending events, into this row or ``into`` (the meter's lock held).

        Entries are taken from the front of the list, so events appended meanwhile wait
        for the next settlement: each pending event is added exactly once.
        """
        items = self.pending
        count = len(items)
        if not count:
            return
        batch = items[:count]
        del items[:count]
        target = self if into is None else into  # `into` is built with this row's plan
        input_tokens = output_tokens = cache_read = units = inline = atto_total = latency_ns = 0
        unmeasured = unpriced = 0
        plan = self.plan
        rates = plan.unit_rates if plan is not None else ()
        for usage, atto, latency_ms in batch:
            if latency_ms is not None:
                latency_ns += int(latency_ms * 1e6)
            if usage is None:
                unmeasured += 1
                continue
            input_tokens += usage.input_tokens
            output_tokens += usage.output_tokens
            cache_read += usage.cache_read_tokens
            if atto == _PRICED_INLINE:
                # A flat price, and input, output and cache reads only (the record path checked).
                inline += 1
                units += usage.input_tokens * rates[0] + usage.output_tokens * rates[4]
                units += usage.cache_read_tokens * rates[1]
                continue
            if (
                usage.cache_write_tokens
                or usage.reasoning_tokens
                or usage.audio_input_tokens
                or usage.audio_output_tokens
            ):
                target.add_rare_usage(usage)
            if atto >= 0:
                atto_total += atto
            else:
                unpriced += 1
        target.events += count
        target.input_tokens += input_tokens
        target.output_tokens += output_tokens
        target.cache_read_tokens += cache_read
        target.cost_atto += atto_total
        target.latency_ns += latency_ns
        if inline and plan is not None:
            target.cost_units += units + plan.unit_const * inline
        if self.model_call:
            target.unmeasured += unmeasured
            target.unpriced += unpriced


_Pending = tuple["Usage | None", int, "float | None"]
"""(usage, cost in atto-dollars or a marker, latency in ms)."""
_PRICED_INLINE: Final = -1
"""``atto`` marker: priced by the row's flat plan, computed when the row settles."""
_UNPRICED: Final = -2
"""``atto`` marker: no cost (unmeasured or unpriced)."""
_SETTLE_AT: Final = 256
"""Pending events a row holds before the recording thread settles them."""


def _merge_into(target: dict[Any, Acc], key: Any, acc: Acc) -> None:
    existing = target.get(key)
    if existing is None:
        target[key] = acc.copy()
    else:
        existing.merge(acc)


def _totals_key(key: _RowKey, frame: ActiveScope) -> _TotalsKey:
    extra = dict(key[4])
    tool = extra.get("tool") or frame.dimensions.get("tool")
    category = extra.get("tool_category") or frame.dimensions.get("tool_category")
    return key[0], key[1], tool, category


def _cube_totals_key(key: _RowKey) -> _TotalsKey:
    dims = dict(key[4])
    return key[0], key[1], dims.get("tool"), dims.get("tool_category")


def _check_call(model: object, provider: object, operation: object, status: object) -> None:
    """Check the arguments that make up a row's key (the first time the row is needed)."""
    if model is not None and type(model) is not str:
        raise ConfigurationError(f"model={model!r}: expected a str or None")
    canonical_provider(provider)  # type: ignore[arg-type]  # raises ConfigurationError on a bad name
    if type(operation) is not str or not operation:
        raise ConfigurationError(f"operation={operation!r}: expected a non-empty str")
    if type(status) is not str or not status:
        raise ConfigurationError(f"status={status!r}: expected a non-empty str")


def _check_grouping(
    attempt: object, operation_id: object, response_id: object, request_model: object
) -> None:
    if request_model is not None and type(request_model) is not str:
        raise ConfigurationError(f"request_model={request_model!r}: expected a str or None")
    if type(attempt) is not int or attempt < 1:
        raise ConfigurationError(f"attempt={attempt!r}: expected an int >= 1")
    if operation_id is not None and type(operation_id) is not str:
        raise ConfigurationError(f"operation_id={operation_id!r}: expected a str or None")
    if response_id is not None and type(response_id) is not str:
        raise ConfigurationError(f"response_id={response_id!r}: expected a str or None")


def _check_latency(latency_ms: object) -> float:
    if type(latency_ms) is int:
        latency_ms = float(latency_ms)
    if type(latency_ms) is not float or not 0.0 <= latency_ms < _INF:
        raise ConfigurationError(f"latency_ms={latency_ms!r}: expected a finite, non-negative number")
    return latency_ms


class Scope:
    """Attribution dimensions for everything recorded inside; a context manager and a decorator.

    Made by `Meter.scope`. Used with ``with``, it returns the `ActiveScope` of that entry.
    Used as a decorator on a function or coroutine function, every call runs in its own
    entry. Scopes nest; an inner scope's dimensions are merged over the outer ones'.
    """

    __slots__ = ("_dims", "_entries", "_meter")

    def __init__(self, meter: Meter, dims: dict[str, str]) -> None:
        self._meter = meter
        self._dims = dims
        self._entries: list[tuple[ActiveScope, Token[ActiveScope | None]]] = []

    @property
    def dimensions(self) -> Mapping[str, str]:
        """The dimensions this scope adds."""
        return MappingProxyType(self._dims)

    def __enter__(self) -> ActiveScope:
        entry = self._meter._enter(self._dims)
        self._entries.append(entry)
        return entry[0]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        frame, token = self._entries.pop()
        self._meter._exit(frame, token)

    async def __aenter__(self) -> ActiveScope:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Run every call of ``func`` (sync or async) in a new entry of this scope."""
        meter, dims = self._meter, self._dims
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def _meterline_scoped_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                frame, token = meter._enter(dims)
                try:
                    return await func(*args, **kwargs)
                finally:
                    meter._exit(frame, token)

            return _meterline_scoped_async

        @functools.wraps(func)
        def _meterline_scoped(*args: P.args, **kwargs: P.kwargs) -> Any:
            frame, token = meter._enter(dims)
            try:
                return func(*args, **kwargs)
            finally:
                meter._exit(frame, token)

        return _meterline_scoped


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterStats:
    """Health of a meter's machinery (failures are counted here, never raised)."""

    events: int
    """Events recorded since the meter was made."""
    subscriber_errors: int
    """Exceptions raised by subscribers (logged on the ``meterline`` logger)."""
    machinery_errors: int
    """Failures of meterline's own machinery, such as pricing (logged; the event was kept, unpriced)."""
    live_keys: int
    """Distinct (operation, status, provider, model, dimensions) rows held for `Meter.totals`."""
    max_live_keys: int
    """The bound on ``live_keys``."""
    overflowed_events: int
    """Events whose dimensions were folded into the overflow row because the bound was reached."""
    unpriced_models: tuple[tuple[str | None, str], ...]
    """(provider, model) pairs that could not be priced."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live totals of a meter at one instant, for merging across processes.

    Scope entries are local to their process and are not part of a snapshot; everything
    `Meter.totals` can answer is.
    """

    rows: tuple[tuple[_RowKey, Acc], ...]
    """((operation, status, provider, model, dimensions), counters) rows."""
    taken_ns: int
    """When the snapshot was taken, in nanoseconds since the Unix epoch."""

    def to_json(self) -> str:
        """Serialise to a JSON string (costs as exact integer strings of 1e-18 USD)."""
        return json.dumps(
            {
                "format": _SNAPSHOT_FORMAT,
                "taken_ns": self.taken_ns,
                "rows": [
                    {
                        "operation": op,
                        "status": status,
                        "provider": provider,
                        "model": model,
                        "dimensions": dict(dims),
                        "counters": acc.to_json(),
                    }
                    for (op, status, provider, model, dims), acc in self.rows
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Parse `to_json` output.

        Raises:
            MalformedUsageError: when the text is not a meterline snapshot.
        """
        try:
            data = json.loads(text)
            if data.get("format") != _SNAPSHOT_FORMAT:
                raise MalformedUsageError("format", data.get("format"), repr(_SNAPSHOT_FORMAT))
            rows = []
            for row in data["rows"]:
                dims = _check_dims(row["dimensions"], "snapshot dimension") if row["dimensions"] else {}
                key = (
                    str(row["operation"]),
                    str(row["status"]),
                    row["provider"],
                    row["model"],
                    tuple(sorted(dims.items())),
                )
                acc = Acc.from_json(row["counters"])
                for name in ("events", "input_tokens", "output_tokens", "cost_atto"):
                    check_count(f"counters.{name}", getattr(acc, name))
                rows.append((key, acc))
            return cls(rows=tuple(rows), taken_ns=int(data["taken_ns"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, MalformedUsageError):
                raise
            raise MalformedUsageError(
                "snapshot", str(text)[:80], f"a Snapshot.to_json() document ({exc!r})"
            ) from exc


class Meter:
    """Records usage events, attributes them to scopes, prices them and keeps live totals.

    Thread- and asyncio-safe. Recording performs no I/O; subscribers are called
    synchronously after the totals are updated, and a failing subscriber is logged and
    counted, never raised.

    Live roll-ups (`totals`, `snapshot`) keep one row per distinct (operation, status,
    provider, model, dimensions). Finished scopes add no memory beyond their rows; rows of
    finished sessions are dropped with `forget`, and at most ``max_live_keys`` rows are kept:
    past the bound, new combinations are folded into a row whose only dimension is
    ``meterline_overflow=true`` (counted in `stats`; totals stay exact, only their
    attribution is coarser).

    Args:
        ledger: Where every event is stored, exactly once: a URL (``sqlite:///usage.db``,
            ``postgresql://…``), a path, or a `LedgerBackend`. ``None`` reads the
            ``METERLINE_LEDGER`` environment variable, and without it keeps no ledger.
        durability: ``batch`` (default): a background thread commits in batches, and
            `flush` waits for them; ``sync``: ``record()`` returns after its event is
            committed (or spooled, if the store failed).
        prices: Price overrides consulted before genai-prices: a `PriceTable` or the path of a
            TOML file.
        builtin_corrections: Apply meterline's corrections of genai-prices' known data errors.
        max_live_keys: Bound on the rows kept for `totals` (default 100,000).
        budget_store: Where budget counters and reservations live: ``None`` (this process's
            memory, unless ``METERLINE_BUDGET_STORE`` names a store), a URL
            (``sqlite:///budgets.db``, ``postgresql://…``, ``redis://…``) or a `BudgetStore`.
        budgets: Budgets to enforce from the start: `Budget` s, or the path of a TOML file.
        budget_lease: Seconds a reservation holds its amounts if its process never settles
            it (crashed): then the store lets them go (default 600).
        default_max_output_tokens: The output a reservation assumes when the call sets no
            ``max_output_tokens`` (default 4096).
    """

    def __init__(
        self,
        ledger: LedgerBackend | str | Path | None = None,
        *,
        durability: str = "batch",
        prices: PriceTable | str | Path | None = None,
        builtin_corrections: bool = True,
        max_live_keys: int = DEFAULT_MAX_LIVE_KEYS,
        budget_store: BudgetStore | str | Path | None = None,
        budgets: Iterable[Budget] | str | Path | None = None,
        budget_lease: float = DEFAULT_LEASE,
        default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        if isinstance(prices, (str, Path)):
            prices = PriceTable.from_toml(prices)
        if type(max_live_keys) is not int or max_live_keys < 1:
            raise ConfigurationError(f"max_live_keys={max_live_keys!r}: expected a positive int")
        self.pricer = Pricer(prices, builtin_corrections=builtin_corrections)
        """The price engine (overrides, then genai-prices)."""
        self._lock = threading.Lock()
        self._current: ContextVar[ActiveScope | None] = ContextVar(
            f"meterline_scope_{id(self):x}", default=None
        )
        self._root = ActiveScope(self, None, {})
        self._live: set[ActiveScope] = set()
        self._cube: dict[_RowKey, Acc] = {}
        self._subscribers: tuple[Callable[[UsageEvent], object], ...] = ()
        self._max_live_keys = max_live_keys
        self._subscriber_errors = 0
        self._machinery_errors = 0
        self._overflowed = 0
        self._overflow_warned = False
        self._unpriced_models: set[tuple[str | None, str]] = set()
        self._version: str | None = None
        self._ids = IdFactory()
        self._ledger: LedgerBackend | None = None
        self._writer: Any = None
        self._sink: Callable[[UsageEvent], object] | None = None
        self._owns_ledger = False
        if durability not in ("batch", "sync"):
            raise ConfigurationError(f"durability={durability!r}: expected 'batch' or 'sync'")
        if ledger is None:
            ledger = os.environ.get(LEDGER_ENV_VAR) or None
        if ledger is not None:
            self._attach_ledger(ledger, durability)
        if type(budget_lease) not in (int, float) or not 0 < budget_lease < _INF:
            raise ConfigurationError(f"budget_lease={budget_lease!r}: expected a positive number of seconds")
        self._budget_lease = float(budget_lease)
        self._default_max_output = check_count("default_max_output_tokens", default_max_output_tokens)
        self._reservation: ContextVar[Reservation | None] = ContextVar(
            f"meterline_reservation_{id(self):x}", default=None
        )
        self._budgets: BudgetEngine | None = None
        if budget_store is None:
            budget_store = os.environ.get(BUDGET_STORE_ENV_VAR) or None
        if budget_store is not None:
            self._budgets = BudgetEngine(self, _open_budget_store(budget_store), self._budget_lease)
            self._budgets.owned = not isinstance(budget_store, BudgetStore)
        if budgets is not None:
            for budget in load_budgets(budgets) if isinstance(budgets, (str, Path)) else budgets:
                self.add_budget(budget)
        _all_meters.add(self)

    def _attach_ledger(self, ledger: LedgerBackend | str | Path, durability: str) -> None:
        from meterline.ledger._spool import Spool, default_spool_dir  # noqa: PLC0415 - only with a ledger
        from meterline.ledger._writer import LedgerWriter  # noqa: PLC0415 - only with a ledger

        backend: LedgerBackend
        if isinstance(ledger, (str, Path)):
            self._owns_ledger = True
            try:
                backend = open_ledger(ledger)
            except LedgerError as exc:
                # The store is down (or refuses): record anyway. The writer spools every event
                # until a write works, then replays the spool into it.
                logger.warning(
                    "meterline: the ledger cannot be opened yet (%s); events are spooled meanwhile", exc
                )
                backend = LazyLedger(str(ledger))
        else:
            backend, self._owns_ledger = ledger, False
        self._ledger = backend
        mode: Literal["batch", "sync"] = "sync" if durability == "sync" else "batch"
        self._writer = LedgerWriter(backend, durability=mode, spool=Spool(default_spool_dir(backend.url)))
        self._sink = self._writer.submit

    @property
    def ledger(self) -> LedgerBackend | None:
        """The ledger every event is written to, if any."""
        return self._ledger

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded so far is committed to the ledger (or spooled).

        Returns:
            ``False`` if ``timeout`` seconds passed first; ``True`` otherwise (and without a ledger).
        """
        return True if self._writer is None else bool(self._writer.flush(timeout))

    def close(self) -> None:
        """Flush and stop the ledger writer, and close the ledger and budget store this meter opened.

        Idempotent.
        """
        engine = self._budgets
        if engine is not None and engine.owned:
            engine.owned = False
            engine.store.close()
        writer, self._writer, self._sink = self._writer, None, None
        if writer is not None:
            writer.close()
            if self._owns_ledger and self._ledger is not None:
                self._ledger.close()

    @property
    def price_version(self) -> str:
        """The price-data version this meter prices with (genai-prices version and override digest)."""
        return self._version or self._load_version()

    # -- scopes -------------------------------------------------------------------------

    def scope(self, **dimensions: str | int) -> Scope:
        """Attribute everything recorded inside to ``dimensions`` (e.g. ``user="u1"``).

        Scopes nest and are isolated between threads and asyncio tasks (they live in a
        ``ContextVar``). Work handed to a thread pool keeps its scope when the context is
        copied: ``executor.submit(contextvars.copy_context().run, fn, *args)`` or
        ``loop.run_in_executor(None, contextvars.copy_context().run, fn)``;
        ``asyncio.to_thread`` and new asyncio tasks copy it by themselves.

        Raises:
            ConfigurationError: on a dimension name that is not a lower-case identifier, a
                name that is an event field (``model``, ``provider``, ``operation``,
                ``status``) or a value that is not a str or int.
        """
        return Scope(self, _check_dims(dimensions, "scope dimension"))

    def current_scope(self) -> ActiveScope | None:
        """The innermost active scope entry of this context, if any."""
        return self._current.get()

    def _enter(self, dims: dict[str, str]) -> tuple[ActiveScope, Token[ActiveScope | None]]:
        parent = self._current.get()
        merged = {**parent.dimensions, **dims} if parent is not None else dict(dims)
        frame = ActiveScope(self, parent, merged)
        with self._lock:
            self._live.add(frame)
            if parent is not None:
                parent._children.add(frame)
        return frame, self._current.set(frame)

    def _exit(self, frame: ActiveScope, token: Token[ActiveScope | None]) -> None:
        try:
            self._current.reset(token)
        except ValueError:
            # Exited in another context than it was entered in (a generator handed
            # between tasks, say): restore the parent there instead.
            self._current.set(frame._parent)
        with self._lock:
            frame._closed = True
            self._live.discard(frame)
            rows = frame._rows
            frame._rows = {}
            for key, row in rows.items():
                row.live = False  # before settling: a later append sees it and settles itself
                row.settle()
                self._cube_row(row.cube_key).merge(row)
                frame._fold(_totals_key(key, frame), row)
            # Hand what the entry holds to its ancestors' totals: every closed one on the way
            # and the first open one (which passes it on when it ends in turn).
            parent = frame._parent
            if parent is not None:
                parent._children.discard(frame)
                ancestor: ActiveScope | None = parent
                while ancestor is not None:
                    for tkey, acc in frame._folded.items():
                        ancestor._fold(tkey, acc)
                    if not ancestor._closed:
                        break
                    ancestor = ancestor._parent

    # -- recording ----------------------------------------------------------------------

    def record(
        self,
        response_or_usage: object = None,
        /,
        *,
        model: str | None = None,
        provider: str | None = None,
        operation: str = _CHAT,
        latency_ms: float | None = None,
        status: str = _OK,
        tags: Mapping[str, str | int] | None = None,
        operation_id: str | None = None,
        attempt: int = 1,
        response_id: str | None = None,
        request_model: str | None = None,
        reservation: Reservation | None = None,
    ) -> UsageEvent:
        """Record one model call and return its event.

        Args:
            response_or_usage: A `Usage`; a provider response, usage block, dict or JSON
                text (normalised with `meterline.usage_from`); or ``None`` when the call's
                usage is unknown (the event counts as *unmeasured*, never as free).
            model: The model asked for. When the response names the model that served the
                call, that one is the event's ``model`` and this becomes ``request_model``.
            provider: OpenTelemetry provider name or alias; detected from the response's
                shape when omitted.
            operation: ``chat``, ``embeddings``, ``text_completion``, ``generate_content``…
            latency_ms: How long the call took, in milliseconds.
            status: ``ok``, or an error status (the call is counted in ``errors``).
            tags: Extra dimensions for this event only (merged over the scopes').
            operation_id: Groups the retries and fallbacks of one logical call.
            attempt: Which attempt of ``operation_id`` this is (from 1).
            response_id: The provider's response id (taken from the response if omitted).
            request_model: The model alias asked for, when ``model`` is the dated id that
                served the call (e.g. when recording a `Usage` from a stream).
            reservation: The `Reservation` this call settles. Inside a ``with
                meter.reserve(...)`` block the block's reservation is settled without it.

        Returns:
            The recorded `UsageEvent`.

        Raises:
            UsageError: the payload is malformed or unrecognised (nothing is recorded).
            ConfigurationError: an argument has the wrong type or value (nothing is recorded).
        """
        if type(response_or_usage) is Usage:
            usage: Usage | None = response_or_usage
        elif response_or_usage is None:
            usage = None
        else:
            found = extract(response_or_usage, provider)
            usage = found.usage
            if provider is None:
                provider = found.provider
            if found.model is not None:
                if model is not None and model != found.model and request_model is None:
                    request_model = model
                model = found.model
            if response_id is None:
                response_id = found.response_id

        # Argument checks first: a bad call records nothing. Defaults skip their checks, and
        # so do model, provider, operation and status when their row exists (they were
        # checked, and the provider made canonical, when the row was made).
        if latency_ms is not None and (type(latency_ms) is not float or not 0.0 <= latency_ms < _INF):
            latency_ms = _check_latency(latency_ms)
        if attempt != 1 or operation_id is not None or response_id is not None or request_model is not None:
            _check_grouping(attempt, operation_id, response_id, request_model)
            if request_model == model:
                request_model = None

        frame = self._current.get()
        if frame is None:
            frame = self._root
        if tags:
            extra = _check_dims(tags, "tag")
            key: _RowKey = (operation, status, provider, model, tuple(sorted(extra.items())))
            dimensions: Mapping[str, str] = Dimensions({**frame.dimensions, **extra})
        else:
            key = (operation, status, provider, model, ())
            dimensions = frame.dimensions
        try:
            row = frame._rows.get(key)
        except TypeError:  # an unhashable argument: the checks below name it
            row = None
        if row is None:
            _check_call(model, provider, operation, status)
            row = self._new_row(frame, key)
        provider = row.provider

        now = _time_ns()
        event: Any = _new_object(_EventBuilder)
        event.time_ns = now
        event.operation = operation
        event.provider = provider
        event.model = model
        event.request_model = request_model
        event.usage = usage
        event.latency_ms = latency_ms
        event.status = status
        event.dimensions = dimensions
        event.operation_id = operation_id
        event.attempt = attempt
        event.response_id = response_id
        event.links = ()
        event.tokens_saved = 0
        # The id is written out when first read (see `meterline._events._Derived`).
        ids = self._ids
        event._id_high = ids.high if now < ids.next_ns else ids.prefix(now)
        event._id_count = next(ids.counter)

        atto = _UNPRICED
        if usage is None or not row.model_call:
            event.cost = event.price_version = None
        else:
            plan = row.plan
            if (
                plan is not None
                and plan.flat
                and not usage.cache_write_tokens
                and not usage.reasoning_tokens
                and not usage.audio_input_tokens
                and not usage.audio_output_tokens
            ):
                # The common case: a flat price and input, output and cache reads only. The
                # cost is derived when first read, and added up when the row settles.
                event._plan = plan
                atto = _PRICED_INLINE
            else:
                cost: Decimal | None
                if plan is not None and plan.fast_for(usage):
                    atto = plan.atto(usage)
                    cost = plan.decimal(atto)
                else:
                    atto, cost = self._price_slowly(usage, provider, model, now)
                event.cost = cost
                if cost is None:
                    atto = _UNPRICED
            event.price_version = None if atto == _UNPRICED else (self._version or self._load_version())
        event.__class__ = UsageEvent
        recorded: UsageEvent = event

        budgets = self._budgets
        if budgets is not None:
            if reservation is None:
                reservation = self._reservation.get()
            if usage is None or atto == _UNPRICED:
                spent: int | None = None
            else:
                spent = event._plan.atto(usage) if atto == _PRICED_INLINE else atto
            if reservation is not None and not reservation._model_call:
                reservation = None  # a tool's reservation is settled by its record_tool()
            budgets.charge(dimensions, usage, spent, row.model_call, 0, reservation, now)

        # No lock: the append is atomic, and the totals add pending events up when read.
        pending = row.pending
        pending.append((usage, atto, latency_ms))
        if len(pending) >= _SETTLE_AT or not row.live:
            self._settle(frame, key, row)

        sink = self._sink
        if sink is not None:
            try:
                sink(recorded)
            except Exception:  # noqa: BLE001 - the ledger never breaks record()
                self._machinery_failed("the ledger writer", recorded.id)
        for subscriber in self._subscribers:
            try:
                subscriber(recorded)
            except Exception:  # noqa: BLE001 - a subscriber never breaks record()
                self._subscriber_failed(subscriber)
        return recorded

    def _load_version(self) -> str:
        version = self._version = self.pricer.version
        return version

    def _price_slowly(
        self, usage: Usage, provider: str | None, model: str | None, now: int
    ) -> tuple[int, Decimal | None]:
        """Price a usage whose price depends on time or needs genai-prices' own arithmetic."""
        if model is None:
            self._unpriced_models.add((provider, "<no model>"))
            return 0, None
        try:
            atto = self.pricer.cost_atto(usage, provider, model, now)
        except Exception:  # noqa: BLE001 - a pricing bug never breaks record(): the event is unpriced
            self._machinery_failed("pricing", f"{provider}/{model}")
            atto = None
        if atto is None:
            self._unpriced_models.add((provider, model))
            return 0, None
        return atto, atto_to_decimal(atto)

    def _constant_plan(self, provider: str | None, model: str) -> _Plan | None:
        """The model's time-independent compiled price, or ``None`` (then priced per event)."""
        try:
            return self.pricer.resolve(provider, model).constant
        except Exception:  # noqa: BLE001 - a pricing bug never breaks record(): priced per event
            self._machinery_failed("pricing", f"{provider}/{model}")
            return None

    def _machinery_failed(self, what: str, detail: str) -> None:
        """Log and count a failure of meterline's own machinery (never raised to the caller)."""
        self._machinery_errors += 1
        count = self._machinery_errors
        if count <= 10 or count % 1000 == 0:
            logger.exception(
                "meterline: %s failed for %s (failure #%d); recorded without it", what, detail, count
            )

    def _make_row(self, frame: ActiveScope, key: _RowKey) -> _Row:
        operation, status, provider, model, extra = key
        provider = canonical_provider(provider)
        model_call = operation not in _NOT_MODEL_CALLS
        plan = self._constant_plan(provider, model) if model_call and model is not None else None
        dims_key = tuple(sorted({**frame.dimensions, **dict(extra)}.items())) if extra else frame._dims_key
        return _Row((operation, status, provider, model, dims_key), model_call, plan)

    def _new_row(self, frame: ActiveScope, key: _RowKey) -> _Row:
        fresh = self._make_row(frame, key)
        with self._lock:
            if frame._closed:
                # An entry that ended keeps no rows: the event goes the slow way, to the
                # roll-ups and to every ancestor's totals.
                fresh.live = False
                return fresh
            return frame._rows.setdefault(key, fresh)

    def _settle(self, frame: ActiveScope, key: _RowKey, row: _Row) -> None:
        """Add up a row's pending events; if the row was taken meanwhile, send them on."""
        with self._lock:
            if row.live:
                row.settle()
                return
            # The entry ended (work left running in an executor), or reset() or forget()
            # took the row between the lookup and the append.
            late = _Row(row.cube_key, row.model_call, row.plan)
            row.settle(into=late)
            self._add_late(frame, key, late)

    def _add_late(self, frame: ActiveScope, key: _RowKey, acc: Acc) -> None:
        """Add to the entry's current row, or if it ended, to the roll-ups and every ancestor (lock held)."""
        if not frame._closed:
            row = frame._rows.get(key)
            if row is None:
                row = frame._rows[key] = self._make_row(frame, key)
            row.merge(acc)
            return
        operation, status, provider, model, extra = key
        dims_key = tuple(sorted({**frame.dimensions, **dict(extra)}.items()))
        self._cube_row((operation, status, provider, model, dims_key)).merge(acc)
        tkey = _totals_key(key, frame)
        ancestor: ActiveScope | None = frame
        while ancestor is not None:
            ancestor._fold(tkey, acc)
            if not ancestor._closed:
                break
            ancestor = ancestor._parent

    def _record_other(
        self,
        operation: str,
        status: str,
        extra: dict[str, str],
        *,
        usage: Usage | None = None,
        latency_ms: float | None = None,
        operation_id: str | None = None,
        links: tuple[str, ...] = (),
        tokens_saved: int = 0,
    ) -> UsageEvent:
        """Record a tool call or cache lookup (not a model call: never priced)."""
        if type(status) is not str or not status:
            raise ConfigurationError(f"status={status!r}: expected a non-empty str")
        if latency_ms is not None:
            latency_ms = _check_latency(latency_ms)
        if operation_id is not None and type(operation_id) is not str:
            raise ConfigurationError(f"operation_id={operation_id!r}: expected a str or None")
        frame = self._current.get()
        if frame is None:
            frame = self._root
        key: _RowKey = (operation, status, None, None, tuple(sorted(extra.items())))
        now = _time_ns()
        event = UsageEvent(
            id=self._ids.new(now),
            time_ns=now,
            operation=operation,
            provider=None,
            model=None,
            request_model=None,
            usage=usage,
            cost=None,
            price_version=None,
            latency_ms=latency_ms,
            status=status,
            dimensions=Dimensions({**frame.dimensions, **extra}),
            operation_id=operation_id,
            attempt=1,
            response_id=None,
            links=links,
            tokens_saved=tokens_saved,
        )
        single = Acc()
        _accumulate(single, event)
        with self._lock:
            self._add_late(frame, key, single)
        budgets = self._budgets
        if budgets is not None and operation == TOOL_OPERATION:
            reservation = self._reservation.get()
            if reservation is not None and reservation._model_call:
                reservation = None  # a model call's reservation is settled by its record()
            # A tool's reported usage is informational (as in the totals): one tool call is charged.
            budgets.charge(event.dimensions, None, None, False, 1, reservation, now)
        sink = self._sink
        if sink is not None:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - the ledger never breaks record()
                self._machinery_failed("the ledger writer", event.id)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - a subscriber never breaks record()
                self._subscriber_failed(subscriber)
        return event

    def _cube_row(self, key: _RowKey) -> Acc:
        """The roll-up row for ``key``, created (or folded into the overflow row) as needed (lock held)."""
        acc = self._cube.get(key)
        if acc is not None:
            return acc
        if len(self._cube) >= self._max_live_keys:
            self._overflowed += 1
            if not self._overflow_warned:
                self._overflow_warned = True
                logger.warning(
                    "meterline: %d live keys reached; further new dimension combinations are folded into "
                    "%s=true (totals stay exact; call meter.forget() for finished sessions)",
                    self._max_live_keys,
                    OVERFLOW_DIMENSION,
                )
            key = (key[0], key[1], key[2], key[3], ((OVERFLOW_DIMENSION, "true"),))
            acc = self._cube.get(key)
            if acc is not None:
                return acc
        acc = self._cube[key] = Acc()
        return acc

    def _subscriber_failed(self, subscriber: Callable[..., object]) -> None:
        self._subscriber_errors += 1
        count = self._subscriber_errors
        if count <= 10 or count % 1000 == 0:
            logger.exception(
                "meterline: subscriber %r failed (failure #%d); record() is unaffected", subscriber, count
            )

    def record_tool(
        self,
        name: str,
        *,
        category: str = "",
        status: str = "success",
        duration_ms: float | None = None,
        usage: Usage | None = None,
        llm_call_id: str | Iterable[str] | None = None,
        tags: Mapping[str, str | int] | None = None,
        operation_id: str | None = None,
    ) -> UsageEvent:
        """Record one tool call (operation ``execute_tool``).

        Args:
            name: The tool's name (becomes the ``tool`` dimension).
            category: A group of tools (the ``tool_category`` dimension), e.g. ``retrieval``.
            status: ``success`` (or ``completed``/``ok``) counts as a success; anything else
                as a failure.
            duration_ms: How long the tool ran, in milliseconds.
            usage: Tokens the tool reported (informational: kept in tool statistics, never
                added to usage or cost, so a tool's own model calls are not counted twice).
            llm_call_id: The id (or ids) of the model call(s) that asked for this tool.
            tags: Extra dimensions for this event only.
            operation_id: Groups this call with related events.

        Raises:
            ConfigurationError: on a bad argument (nothing is recorded).
        """
        if type(name) is not str or not name:
            raise ConfigurationError(f"name={name!r}: expected a non-empty str")
        if type(category) is not str:
            raise ConfigurationError(f"category={category!r}: expected a str")
        if usage is not None and type(usage) is not Usage:
            raise ConfigurationError(f"usage={usage!r}: expected a meterline.Usage or None")
        if llm_call_id is None:
            links: tuple[str, ...] = ()
        elif type(llm_call_id) is str:
            links = (llm_call_id,)
        else:
            links = tuple(llm_call_id)
            if not all(type(link) is str for link in links):
                raise ConfigurationError(f"llm_call_id={llm_call_id!r}: expected a str or an iterable of str")
        extra = _check_dims(tags, "tag") if tags else {}
        extra["tool"] = name
        if category:
            extra["tool_category"] = category
        return self._record_other(
            TOOL_OPERATION,
            status,
            extra,
            usage=usage,
            latency_ms=duration_ms,
            operation_id=operation_id,
            links=links,
        )

    def record_cache_hit(
        self, tokens_saved: int = 0, *, tags: Mapping[str, str | int] | None = None
    ) -> UsageEvent:
        """Record a hit in the application's own response cache, saving ``tokens_saved`` tokens.

        Raises:
            MalformedUsageError: when ``tokens_saved`` is not a non-negative int.
        """
        saved = check_count("tokens_saved", tokens_saved)
        extra = _check_dims(tags, "tag") if tags else {}
        return self._record_other(CACHE_OPERATION, "hit", extra, tokens_saved=saved)

    def record_cache_miss(self, *, tags: Mapping[str, str | int] | None = None) -> UsageEvent:
        """Record a miss in the application's own response cache."""
        extra = _check_dims(tags, "tag") if tags else {}
        return self._record_other(CACHE_OPERATION, "miss", extra)

    # -- budgets ------------------------------------------------------------------------

    def _engine(self) -> BudgetEngine:
        engine = self._budgets
        if engine is None:
            with self._lock:
                engine = self._budgets
                if engine is None:
                    engine = self._budgets = BudgetEngine(self, MemoryBudgetStore(), self._budget_lease)
        return engine

    @property
    def budget_store(self) -> BudgetStore | None:
        """Where this meter's budget counters live (``None`` until a budget or store is set)."""
        return None if self._budgets is None else self._budgets.store

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """The budgets this meter enforces, in the order they were added."""
        return () if self._budgets is None else tuple(c.budget for c in self._budgets.compiled)

    def add_budget(self, budget: Budget) -> None:
        """Enforce ``budget`` from now on (adding an identical budget again does nothing).

        Raises:
            ConfigurationError: when ``budget`` is not a `Budget`, or a different budget of the
                same name is already set.
        """
        if not isinstance(budget, Budget):
            raise ConfigurationError(f"budget={budget!r}: expected a meterline.Budget")
        self._engine().add(budget)

    def remove_budget(self, name: str) -> bool:
        """Stop enforcing the budget called ``name``; ``False`` if there was none.

        What the store counted for it stays there (a budget added again under the same name
        sees its usage so far); `forget` deletes counters.
        """
        return False if self._budgets is None else self._budgets.remove(name)

    def reserve(
        self,
        *,
        model: str | None = None,
        provider: str | None = None,
        input_tokens: int | None = None,
        messages: object = None,
        max_output_tokens: int | None = None,
        tool_calls: int = 0,
        tags: Mapping[str, str | int] | None = None,
        lease: float | None = None,
    ) -> Reservation:
        """Reserve a call's worst case against every budget that applies, all or nothing.

        The worst case is ``input_tokens`` (or an estimate from ``messages``, see
        `meterline.estimate_tokens`) plus ``max_output_tokens`` (default: the meter's
        ``default_max_output_tokens``), priced as uncached input and output of ``model`` at
        its current price. Every budget whose ``per`` dimensions are set by the active scopes
        (and ``tags``) is checked in the same atomic step of the budget store. Leave
        ``model`` out to reserve ``tool_calls`` for a tool.

        Returns:
            The `Reservation`: use it as a context manager around the call (``record()`` in
            the block settles it; leaving the block releases what is left), or pass it to
            ``record(..., reservation=)``.

        Raises:
            BudgetExceeded: a budget would pass its limit (nothing was reserved).
            BudgetStoreError: the store failed and an applicable budget fails closed.
            ConfigurationError: an argument has the wrong type or value.
        """
        if model is not None and (type(model) is not str or not model):
            raise ConfigurationError(f"model={model!r}: expected a non-empty str or None")
        if provider is not None:
            provider = canonical_provider(provider)
        # Counts are checked inline when valid (the common case) and by check_count otherwise.
        if input_tokens is None:
            input_tokens = 0 if messages is None else estimate_tokens(messages)
        elif type(input_tokens) is not int or not 0 <= input_tokens <= MAX_COUNT:
            input_tokens = check_count("input_tokens", input_tokens)
        if max_output_tokens is None:
            max_output_tokens = self._default_max_output if model is not None else 0
        elif type(max_output_tokens) is not int or not 0 <= max_output_tokens <= MAX_COUNT:
            max_output_tokens = check_count("max_output_tokens", max_output_tokens)
        if type(tool_calls) is not int or not 0 <= tool_calls <= MAX_COUNT:
            tool_calls = check_count("tool_calls", tool_calls)
        if lease is None:
            lease = self._budget_lease
        elif type(lease) not in (int, float) or not 0 < lease < _INF:
            raise ConfigurationError(f"lease={lease!r}: expected a positive number of seconds")
        frame = self._current.get()
        dims: Mapping[str, str] = self._root.dimensions if frame is None else frame.dimensions
        if tags:
            dims = Dimensions({**dims, **_check_dims(tags, "tag")})
        engine = self._budgets
        if engine is None or not engine.compiled:
            return unbudgeted(self, input_tokens, max_output_tokens, model is not None)
        return engine.reserve(
            dims, model, provider, input_tokens, max_output_tokens, tool_calls, float(lease)
        )

    def budget_status(self) -> list[BudgetStatus]:
        """Where every budget stands now: one row per budget, key (with usage) and limited metric.

        A global budget always has its row; a per-key budget has one for each key the store
        holds usage or reservations for.
        """
        return [] if self._budgets is None else self._budgets.status()

    # -- reading ------------------------------------------------------------------------

    def _rows_locked(self) -> dict[_RowKey, Acc]:
        """Every roll-up row, the live scopes' included, as detached copies (lock held)."""
        rows = {key: acc.copy() for key, acc in self._cube.items()}
        for frame in (self._root, *self._live):
            for row in frame._rows.values():
                row.settle()
                _merge_into(rows, row.cube_key, row)
        return rows

    def _take_rows_locked(self) -> dict[_RowKey, Acc]:
        """Every roll-up row, removed from the meter (scope entries keep their totals; lock held)."""
        for frame in (self._root, *self._live):
            for row in frame._rows.values():
                row.live = False  # before settling: a later append sees it and settles itself
        rows = self._rows_locked()
        self._cube = {}
        for frame in (self._root, *self._live):
            taken = frame._rows
            frame._rows = {}
            if frame is not self._root:
                for key, row in taken.items():
                    frame._fold(_totals_key(key, frame), row)
        return rows

    @overload
    def totals(self, by: None = None, where: Mapping[str, object] | None = None) -> Totals: ...
    @overload
    def totals(
        self, by: Sequence[str], where: Mapping[str, object] | None = None
    ) -> dict[tuple[str | None, ...], Totals]: ...
    def totals(
        self, by: Sequence[str] | None = None, where: Mapping[str, object] | None = None
    ) -> Totals | dict[tuple[str | None, ...], Totals]:
        """Live roll-ups of everything this meter recorded (and merged).

        Args:
            by: Dimensions to group by: ``operation``, ``status``, ``provider``, ``model`` or
                any scope dimension or tag (``user``, ``session``, ``agent``, ``tool``…).
            where: Keep only events whose dimension equals the value (or is in it, when the
                value is a set, list or tuple). ``None`` matches events without the dimension.

        Returns:
            One `Totals` without ``by``; with ``by``, a dict from a tuple of the group's values
            (``None`` where an event lacks the dimension) to its `Totals`.

        Raises:
            ConfigurationError: on a dimension name that is not an identifier.
        """
        group = check_names(by, "by") if by is not None else ()
        filters = list(where_filters(where).items())
        with self._lock:
            rows = self._rows_locked()
        groups: dict[tuple[str | None, ...], list[tuple[str, str, str | None, str | None, Acc]]] = {}
        for key, acc in rows.items():
            if any(_value_of(key, name) not in allowed for name, allowed in filters):
                continue
            groups.setdefault(tuple(_value_of(key, name) for name in group), []).append(
                (*_cube_totals_key(key), acc)
            )
        if by is None:
            return totals_from_rows(groups.get((), []))
        return {key: totals_from_rows(rows) for key, rows in groups.items()}

    def forget(self, **dimensions: str | int) -> int:
        """Drop the roll-up rows of everything recorded with these dimensions (a pruned session, say).

        Scope entries keep their own totals; only `totals`, `snapshot` and their memory forget.

        Returns:
            The number of rows dropped.

        Raises:
            ConfigurationError: when no dimension is given, or one is invalid.
        """
        if not dimensions:
            raise ConfigurationError(
                "forget() needs at least one dimension, e.g. forget(session='s1'); use reset()"
            )
        check_names(tuple(dimensions), "forget")
        wanted = [(name, str(value)) for name, value in dimensions.items()]

        def matches(key: _RowKey) -> bool:
            return all(_value_of(key, name) == value for name, value in wanted)

        dropped = 0
        if self._budgets is not None:
            self._budgets.forget(dict(wanted))
        with self._lock:
            for key in [key for key in self._cube if matches(key)]:
                del self._cube[key]
                dropped += 1
            for frame in (self._root, *self._live):
                for key, row in list(frame._rows.items()):
                    if matches(row.cube_key):
                        del frame._rows[key]
                        row.live = False  # before settling: a later append sees it and settles itself
                        row.settle()
                        if frame is not self._root:
                            frame._fold(_totals_key(key, frame), row)
                        dropped += 1
        return dropped

    def stats(self) -> MeterStats:
        """Counters of the meter's machinery: events, subscriber failures, live keys, overflow."""
        with self._lock:
            live = len(self._rows_locked())
            return MeterStats(
                events=self._ids.issued,
                subscriber_errors=self._subscriber_errors,
                machinery_errors=self._machinery_errors,
                live_keys=live,
                max_live_keys=self._max_live_keys,
                overflowed_events=self._overflowed,
                unpriced_models=tuple(sorted(self._unpriced_models, key=lambda pm: (pm[0] or "", pm[1]))),
            )

    # -- subscribers --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any], object], *, alerts: bool = False) -> Callable[[], None]:
        """Call ``callback(event)`` after every recorded event; returns an unsubscribe function.

        Callbacks run synchronously in the recording thread; hand slow work to a queue. An
        exception in a callback is logged on the ``meterline`` logger and counted in
        `stats`, and never reaches the caller of ``record()``.

        Args:
            callback: Called with each `UsageEvent`.
            alerts: Also call it with each `BudgetAlert` (a budget's soft threshold reached).
        """
        if not callable(callback):
            raise ConfigurationError(f"callback={callback!r}: expected a callable taking a UsageEvent")
        if alerts:
            engine = self._engine()
            with self._lock:
                engine.alert_subscribers = (*engine.alert_subscribers, callback)
        with self._lock:
            # Replaced, never mutated, so record() iterates it without the lock.
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                subscribers = list(self._subscribers)
                if callback in subscribers:
                    subscribers.remove(callback)
                self._subscribers = tuple(subscribers)
                engine = self._budgets
                if alerts and engine is not None:
                    watchers = list(engine.alert_subscribers)
                    if callback in watchers:
                        watchers.remove(callback)
                    engine.alert_subscribers = tuple(watchers)

        return unsubscribe

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The live totals as a `Snapshot` (JSON-serialisable, mergeable)."""
        with self._lock:
            rows = self._rows_locked()
        return Snapshot(rows=tuple(rows.items()), taken_ns=_time_ns())

    def snapshot_and_reset(self) -> Snapshot:
        """Take a snapshot and reset, atomically: every event is in exactly one snapshot."""
        with self._lock:
            rows = self._take_rows_locked()
        return Snapshot(rows=tuple(rows.items()), taken_ns=_time_ns())

    def merge(self, snapshot: Snapshot) -> None:
        """Add a snapshot (from this or another process) into the live totals.

        Merging the snapshots of N processes gives exactly the totals of one process that
        recorded everything.
        """
        if not isinstance(snapshot, Snapshot):
            raise ConfigurationError(f"snapshot={snapshot!r}: expected a meterline.Snapshot")
        with self._lock:
            for key, acc in snapshot.rows:
                self._cube_row(key).merge(acc)

    def reset(self) -> None:
        """Drop every live roll-up (scope entries keep their own totals)."""
        with self._lock:
            self._take_rows_locked()

    def __repr__(self) -> str:
        return f"<meterline.Meter events={self._ids.issued}>"


_NOT_MODEL_CALLS: Final = frozenset({TOOL_OPERATION, CACHE_OPERATION})


def _value_of(key: _RowKey, name: str) -> str | None:
    if name == "operation":
        return key[0]
    if name == "status":
        return key[1]
    if name == "provider":
        return key[2]
    if name == "model":
        return key[3]
    for dim, value in key[4]:
        if dim == name:
            return value
    return None


def _accumulate(acc: Acc, event: UsageEvent) -> None:
    """Add one tool call or cache lookup to an accumulator (never priced, never unmeasured)."""
    acc.events += 1
    usage = event.usage
    if usage is not None:
        acc.input_tokens += usage.input_tokens
        acc.output_tokens += usage.output_tokens
        acc.cache_read_tokens += usage.cache_read_tokens
        acc.add_rare_usage(usage)
    if event.latency_ms is not None:
        acc.latency_ns += int(event.latency_ms * 1e6)
    if event.links:
        acc.add_links(event.links)
    acc.tokens_saved += event.tokens_saved
