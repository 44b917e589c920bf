"""The meter: records events, attributes them to scopes, prices them once, and hands them on.

`Meter` is a facade over the parts that do the work: the scopes in force (`_scope`), the live
roll-ups (`_rollup`), the price engine (`_pricing`), the budget engine (`meterline.budgets`)
and the ledger writer (`meterline.ledger`). `Meter.record` is the hot path: it normalises the
payload, finds its scope's row, prices the event (the one place an event's cost is worked
out), settles any reservation, appends the event's share to its row without a lock, and
hands the event to the ledger and the subscribers.

One concept, the facade, over 600 lines: two-fifths of it are the public methods'
documentation, and the record path stays in one function on purpose (each call it would
make costs about 1,400 of its ~17,000 instructions).
"""

from __future__ import annotations as _annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, overload

from meterline._dimensions import Dimensions, check_dimensions, check_names, check_size
from meterline._entry import ActiveScope
from meterline._events import (
    CACHE_OPERATION,
    MAX_DURATION_MS,
    TOOL_OPERATION,
    UsageEvent,
    check_billing,
    check_grouping,
    check_latency,
    check_operation_id,
    check_status,
    recorded_event,
)
from meterline._guard import Guard, logger
from meterline._ids import IdFactory
from meterline._money import pico_of
from meterline._pricing import STANDARD_TIERS, Plan, PriceContext, Pricer, PriceTable, price_context
from meterline._providers import extract
from meterline._reported import check_reported_cost, cost_disagrees
from meterline._rollup import RollUps
from meterline._row import TALLY_AT, RowKey
from meterline._scope import Scope, ScopeStack
from meterline._snapshot import Snapshot
from meterline._totals import Sums, Totals
from meterline._usage import MAX_EVENT_TOKENS, Usage, check_count, check_event_tokens
from meterline.budgets import (
    DEFAULT_LEASE,
    DEFAULT_MAX_OUTPUT_TOKENS,
    Budget,
    BudgetEngine,
    BudgetStatus,
    BudgetStore,
    CatchUp,
    MemoryBudgetStore,
    Reservation,
    checked_request,
    load_budgets,
    open_budget_store,
    rebuild_from_ledger,
    unbudgeted,
)
from meterline.budgets import ENV_VAR as BUDGET_STORE_ENV_VAR
from meterline.exceptions import BudgetExceeded, BudgetStoreError, ConfigurationError, MalformedUsageError
from meterline.ledger import ENV_VAR as LEDGER_ENV_VAR
from meterline.ledger import DeliveryStats, LedgerBackend, ledger_writer

__all__ = ["DEFAULT_MAX_LIVE_KEYS", "Meter", "MeterStats"]

DEFAULT_MAX_LIVE_KEYS: Final = 100_000
"""The default bound on the rows `Meter.totals` keeps."""
_CHAT: Final = "chat"
_OK: Final = "ok"
_INF: Final = float("inf")
_time_ns = time.time_ns


MAX_PICO: Final = 2**63 - 1
"""The largest cost of one event, in pico-dollars (about 9.2 million USD): what every store's
64-bit integer columns hold. A usage priced above it is refused by `Meter.record`."""
MAX_UNPRICED: Final = 1000
"""Unpriced (provider, model) pairs a meter lists in `MeterStats.unpriced_models`, the latest first kept."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterStats:
    """Health of a meter's machinery (failures are counted here, never raised)."""

    events: int
    """Events recorded since the meter was made."""
    subscriber_errors: int
    """Exceptions raised by subscribers and alert callbacks (logged on the ``meterline`` logger)."""
    machinery_errors: int
    """Failures of meterline's own machinery, such as pricing (logged; the event was kept, unpriced)."""
    live_keys: int
    """Distinct (operation, status, provider, model, dimensions) rows held for `Meter.totals`."""
    max_live_keys: int
    """The bound on ``live_keys``."""
    overflowed_events: int
    """Events whose dimensions were folded into the overflow row because the bound was reached."""
    unpriced_models: tuple[tuple[str | None, str], ...]
    """(provider, model) pairs that could not be priced: the latest `MAX_UNPRICED` (1,000)."""
    unmetered_calls: tuple[tuple[str, int], ...] = ()
    """Requests instrumented clients sent that meterline cannot meter (image or audio
    generation, batches…), as (kind, count): each kind is logged the first time."""
    cost_disagreements: int = 0
    """Events whose cost, as the provider's response stated it (OpenRouter's ``usage.cost``),
    differs from meterline's by more than 1 % (or a micro-dollar), or that meterline could not
    price: each (provider, model) is logged the first time. A wrong price table shows up here."""
    ledger: DeliveryStats | None = None
    """The ledger writer's counters (``None`` without a ledger): what was committed, spooled,
    and ``lost`` (neither committed nor spooled: each logged), and whether the spool has a
    writable place (``spool_usable``)."""


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
            `flush` waits for them (a crash loses what was not yet committed); ``sync``:
            ``record()`` returns after its event is committed and on stable storage (or
            fsynced to the spool, if the store failed). See `meterline.ledger.LedgerWriter`.
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
        deployments: Model names the calls use that are not model ids (Azure OpenAI
            deployment names) mapped to the model each serves (``{"prod-4o": "gpt-4o"}``): an
            event recorded with such a name gets the model id, priced, and keeps the name as
            its ``request_model``. A response naming its model needs no entry.
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
        deployments: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(prices, (str, Path)):
            prices = PriceTable.from_toml(prices)
        if type(max_live_keys) is not int or max_live_keys < 1:
            raise ConfigurationError(f"max_live_keys={max_live_keys!r}: expected a positive int")
        if durability not in ("batch", "sync"):
            raise ConfigurationError(f"durability={durability!r}: expected 'batch' or 'sync'")
        if type(budget_lease) not in (int, float) or not 0 < budget_lease < _INF:
            raise ConfigurationError(f"budget_lease={budget_lease!r}: expected a positive number of seconds")
        self.pricer = Pricer(prices, builtin_corrections=builtin_corrections)
        """The price engine (overrides, then genai-prices)."""
        self.guard = Guard("meter", passes=(BudgetExceeded, BudgetStoreError))
        """Logs and counts failures of this meter's machinery and subscribers (see `stats`)."""
        self._rollups = RollUps(self._plan_for, max_live_keys)
        self._scopes = ScopeStack(
            f"meterline_scope_{id(self):x}", self._rollups.open_entry, self._rollups.close_entry
        )
        self._current = self._scopes.current
        self._root = self._rollups.root
        self._subscribers: tuple[Callable[[UsageEvent], object], ...] = ()
        self._unpriced_models: OrderedDict[tuple[str | None, str], None] = OrderedDict()
        """The (provider, model) pairs met without a price, the latest `MAX_UNPRICED` of them."""
        self._disagreements = 0
        self._disagreeing: OrderedDict[tuple[str | None, str], None] = OrderedDict()
        """The (provider, model) pairs whose stated cost meterline disagreed with (latest first out)."""
        self._version: str | None = None
        self._ids = IdFactory()
        self._ledger: LedgerBackend | None = None
        self._writer: Any = None
        self._sink: Callable[[UsageEvent], object] | None = None
        self._owns_ledger = False
        if ledger is None:
            ledger = os.environ.get(LEDGER_ENV_VAR) or None
        if ledger is not None:
            mode: Literal["batch", "sync"] = "sync" if durability == "sync" else "batch"
            self._ledger, self._writer, self._owns_ledger = ledger_writer(ledger, mode)
            self._sink = self._writer.submit
        self._budget_lease = float(budget_lease)
        self._default_max_output = check_count("default_max_output_tokens", default_max_output_tokens)
        self._deployments = _checked_deployments(deployments)
        self._budgets: BudgetEngine | None = None
        if budget_store is None:
            budget_store = os.environ.get(BUDGET_STORE_ENV_VAR) or None
        if budget_store is not None:
            self._budgets = self._new_engine(open_budget_store(budget_store))
            self._budgets.owned = not isinstance(budget_store, BudgetStore)
        if budgets is not None:
            for budget in load_budgets(budgets) if isinstance(budgets, (str, Path)) else budgets:
                self.add_budget(budget)

    def _new_engine(self, store: BudgetStore) -> BudgetEngine:
        return BudgetEngine(store, self._budget_lease, self.pricer, self.guard, name=f"{id(self):x}")

    @property
    def ledger(self) -> LedgerBackend | None:
        """The ledger every event is written to, if any."""
        return self._ledger

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded so far is committed to the ledger (or spooled).

        Returns:
            ``False`` if ``timeout`` seconds passed first, or if events were lost (neither
            committed nor spooled: a full disk) since the previous flush; ``True`` otherwise
            (and without a ledger). `stats` counts the losses (``ledger.lost``).
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

    def _load_version(self) -> str:
        version = self._version = self.pricer.version
        return version

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
        return Scope(self._scopes, check_dimensions(dimensions, "scope dimension"))

    def current_scope(self) -> ActiveScope | None:
        """The innermost active scope entry of this context, if any."""
        entry = self._current()
        return None if entry is None else entry.view

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
        api: str | None = None,
        complete: bool = True,
        service_tier: str | None = None,
        batch: bool = False,
        reported_cost: Decimal | None = None,
    ) -> UsageEvent:
        """Record one model call and return its event.

        Args:
            response_or_usage: A `Usage`; a provider response, usage block, dict or JSON
                text (normalised with `meterline.extract`); or ``None`` when the call's
                usage is unknown (the event counts as *unmeasured*, never as free).
            model: The model asked for. When the response names the model that served the
                call, that one is the event's ``model`` and this becomes ``request_model``.
            provider: Who served and bills the call: an OpenTelemetry provider name or
                alias. Without ``api``, it also selects how the payload is read (and is
                detected from the payload's shape when omitted).
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
            api: How to read the payload, one of `meterline.APIS` (``"openai.chat"``,
                ``"anthropic.messages"``…), when the caller knows it: an SDK integration, or
                a gateway that serves OpenAI-shaped bodies from any provider. Then the
                payload's shape is not sniffed, and ``provider`` only says who billed it.
            complete: ``False`` when the usage is only what arrived before the call was cut
                (a stream that ended before its final usage): it is kept as the event's
                ``partial_usage``, a lower bound, and the call is recorded *unmeasured* (budgets
                charge it by their ``on_unmeasured`` policy), never as exact.
            service_tier: The service tier asked for (``flex``, ``priority``…), used when the
                response does not report the tier that served it; a tier with prices of its
                own is priced at them.
            batch: The call went through the provider's Batch API: priced at the batch rate.
            reported_cost: The cost the provider stated for the call, in USD, when the response
                is not what states it (a stream's last chunk, read by the caller); a response
                that states its own cost wins. Compared with meterline's (see `stats`).

        Returns:
            The recorded `UsageEvent`.

        Raises:
            UsageError: the payload is malformed or unrecognised (nothing is recorded).
            ConfigurationError: an argument has the wrong type or value (nothing is recorded).
        """
        reported: int | None = None  # the cost the response states, in pico-dollars
        if service_tier is not None or batch is not False or reported_cost is not None:
            check_billing(service_tier, batch)  # the caller's (a response's tier was read checked)
            if reported_cost is not None:
                reported = check_reported_cost(reported_cost)
        if type(response_or_usage) is Usage:
            usage: Usage | None = response_or_usage
        elif response_or_usage is None:
            usage = None
        else:
            found = extract(response_or_usage, provider, api)
            usage = found.usage
            if provider is None:
                provider = found.provider
            if found.model is not None:
                if model is not None and model != found.model and request_model is None:
                    request_model = model
                model = found.model
            if response_id is None:
                response_id = found.response_id
            if found.service_tier is not None:
                service_tier = found.service_tier
            if found.reported_cost is not None:
                reported = pico_of(found.reported_cost)
        deployments = self._deployments
        if deployments is not None and type(model) is str and model in deployments:  # an Azure deployment
            if request_model is None:
                request_model = model
            model = deployments[model]
        partial = None
        if complete is not True:
            if complete is not False:
                raise ConfigurationError(f"complete={complete!r}: expected True or False")
            partial, usage = usage, None
            if partial is not None:
                check_event_tokens(partial)

        # Argument checks first: a bad call records nothing. Defaults skip their checks, and
        # so do model, provider, operation and status when their row exists (they were
        # checked, and the provider made canonical, when the row was made).
        if usage is not None and (
            usage.input_tokens > MAX_EVENT_TOKENS or usage.output_tokens > MAX_EVENT_TOKENS
        ):  # every other token count is a part of these two (and a `Usage` bounds its tool calls)
            check_event_tokens(usage)
        context: PriceContext = ()
        if batch or (service_tier is not None and service_tier not in STANDARD_TIERS):
            # Not for OpenAI's "default", which every response reports: that is the row's price.
            context = price_context(service_tier, batch)
            batch = batch or service_tier == "batch"
        if latency_ms is not None and (
            type(latency_ms) is not float or not 0.0 <= latency_ms <= MAX_DURATION_MS
        ):
            latency_ms = check_latency(latency_ms)
        if attempt != 1 or operation_id is not None or response_id is not None or request_model is not None:
            check_grouping(attempt, operation_id, response_id, request_model)
            if request_model == model:
                request_model = None

        entry = self._current()
        if entry is None:
            entry = self._root
        dimensions: Mapping[str, str]
        if tags:
            tagged, dimensions = entry.tagged(tags)
            key: RowKey = (operation, status, provider, model, tagged)
        else:
            key = (operation, status, provider, model, ())
            dimensions = entry.dimensions
        try:
            row = entry.rows.get(key)
        except TypeError:  # an unhashable argument: the checks below name it
            row = None
        if row is None:  # its model, provider, operation and status are checked when it is made
            if tags:
                check_size(dimensions, "the scopes' and tags' dimensions")
            row = self._rollups.add_row(entry, key)
        provider = row.provider

        # The one place an event is priced: totals, budgets and the ledger add up this integer.
        now = _time_ns()
        # Whether the usage is only input, output and cache-read tokens, as most are.
        common = usage is not None and not (
            usage.cache_write_tokens
            or usage.reasoning_tokens
            or usage.audio_input_tokens
            or usage.audio_output_tokens
            or usage.web_search_requests
            or usage.web_fetch_requests
            or usage.file_search_requests
            or usage.code_execution_requests
        )
        pico: int | None = None
        if usage is not None and row.model_call:
            plan = row.plan
            if context:  # a tier or batch mode: its price is not the row's
                pico = self._price(usage, provider, model, now, context)
            elif common and plan is not None and plan.flat:
                # `Plan.cost_pico` of the common case, inline: two calls fewer cost 1,200
                # instructions of the ~17,000 a record takes (callgrind, compare_reference).
                rates = plan.base
                pico = plan.const + usage.input_tokens * rates[0] + usage.output_tokens * rates[4]
                pico += usage.cache_read_tokens * rates[1]
            elif plan is not None and plan.fast_for(usage):
                pico = plan.cost_pico(usage)
            else:
                pico = self._price(usage, provider, model, now)
            if pico is not None and pico > MAX_PICO:
                raise MalformedUsageError(
                    "usage", usage, f"a usage priced under {MAX_PICO / 1e12:,.0f} USD (what a ledger holds)"
                )
        ids = self._ids
        event = recorded_event(
            now,
            operation,
            provider,
            model,
            request_model,
            usage,
            pico,
            None if pico is None else (self._version or self._load_version()),
            latency_ms,
            status,
            dimensions,
            operation_id,
            attempt,
            response_id,
            (),
            0,
            ids.high if now < ids.next_ns else ids.prefix(now),
            next(ids.counter),
            partial,
            service_tier,
            batch,
            reported,
        )
        if reported is not None and cost_disagrees(pico, reported):
            self._disagreed(event)

        budgets = self._budgets
        if budgets is not None:
            if reservation is None:
                reservation = budgets.current.get()
            if reservation is not None and not reservation.model_call:
                reservation = None  # a tool's reservation is settled by its record_tool()
            budgets.charge(dimensions, usage, pico, row.model_call, 0, reservation, now)

        # No lock: the append is atomic, and the totals add pending shares up when read.
        # The common usage goes as its three counts: a tuple of numbers only, which the
        # cyclic collector stops tracking in its first young collection, where a `Usage`
        # (and the tuple holding it) would be walked by every collection until the row's
        # next tally (a session's row seldom reaches `TALLY_AT`): 100,000 sessions of four
        # calls each kept 800,000 such objects, walked by each full collection.
        if common and usage is not None:  # (``common`` implies a usage: for the type checker)
            row.append((pico, latency_ms, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens))
        else:
            row.append((pico, latency_ms, usage))
        if len(row) >= TALLY_AT or not row.live:
            self._rollups.tally(entry, key, row)
        # `_publish`, inline: the call alone costs 1,400 instructions (8 % of a record).
        sink = self._sink
        if sink is not None:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - the ledger never breaks record()
                self.guard.failed("the ledger writer", event.id)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - a subscriber never breaks record()
                self.guard.callback_failed(subscriber)
        return event

    def _price(
        self, usage: Usage, provider: str | None, model: str | None, now: int, context: PriceContext = ()
    ) -> int | None:
        """Price a usage its row's plan cannot price.

        That is a price that depends on time, or on the call's tier or batch mode (``context``),
        or that needs genai-prices.
        """
        if model is None:
            self._note_unpriced(provider, "<no model>")
            return None
        try:
            pico = self.pricer.cost_pico(usage, provider, model, now, context)
        except Exception:  # noqa: BLE001 - a pricing bug never breaks record(): the event is unpriced
            self.guard.failed("pricing", f"{provider}/{model}")
            pico = None
        if pico is None:
            self._note_unpriced(provider, model)
        return pico

    def _disagreed(self, event: UsageEvent) -> None:
        """Count (and log, the first time per provider and model) a stated cost meterline disagrees with."""
        key = (event.provider, event.model or "")
        with self._rollups.lock:
            self._disagreements += 1
            first = key not in self._disagreeing
            self._disagreeing[key] = None
            self._disagreeing.move_to_end(key)
            if len(self._disagreeing) > MAX_UNPRICED:
                self._disagreeing.popitem(last=False)
        if first:
            logger.warning(
                "meterline: %s/%s stated a cost of %s USD for event %s, meterline priced it at %s USD:"
                " check the price table (counted in Meter.stats().cost_disagreements)",
                event.provider,
                event.model,
                event.reported_cost,
                event.id,
                event.cost,
            )

    def _note_unpriced(self, provider: str | None, model: str) -> None:
        unpriced = self._unpriced_models
        with self._rollups.lock:
            unpriced[(provider, model)] = None
            unpriced.move_to_end((provider, model))
            if len(unpriced) > MAX_UNPRICED:
                unpriced.popitem(last=False)

    def _plan_for(self, provider: str | None, model: str) -> Plan | None:
        """The model's time-independent compiled price, or ``None`` (then priced per event)."""
        with self.guard.capture("pricing", f"{provider}/{model}"):
            return self.pricer.resolve(provider, model).constant
        return None

    def _publish(self, event: UsageEvent) -> None:
        """Hand ``event`` to the ledger writer and the subscribers; their failures are only counted."""
        sink = self._sink
        if sink is not None:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - the ledger never breaks record()
                self.guard.failed("the ledger writer", event.id)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - a subscriber never breaks record()
                self.guard.callback_failed(subscriber)

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
        check_status(status)
        if latency_ms is not None:
            latency_ms = check_latency(
                latency_ms, "duration_ms" if operation == TOOL_OPERATION else "latency_ms"
            )
        check_operation_id(operation_id)
        entry = self._current()
        if entry is None:
            entry = self._root
        key: RowKey = (operation, status, None, None, tuple(sorted(extra.items())))
        dimensions = Dimensions({**entry.dimensions, **extra})
        if extra:
            check_size(dimensions, "the scopes' and tags' dimensions")
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
            dimensions=dimensions,
            operation_id=operation_id,
            links=links,
            tokens_saved=tokens_saved,
        )
        single = Sums()
        single.add_event(event)
        self._rollups.add(entry, key, single)
        budgets = self._budgets
        if budgets is not None and operation == TOOL_OPERATION:
            reservation = budgets.current.get()
            if reservation is not None and reservation.model_call:
                reservation = None  # a model call's reservation is settled by its record()
            # A tool's reported usage is informational (as in the totals): one tool call is charged.
            budgets.charge(event.dimensions, None, None, False, 1, reservation, now)
        self._publish(event)
        return event

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
        if usage is not None:
            check_event_tokens(usage)
        if llm_call_id is None:
            links: tuple[str, ...] = ()
        elif type(llm_call_id) is str:
            links = (llm_call_id,)
        else:
            links = tuple(llm_call_id)
            if not all(type(link) is str for link in links):
                raise ConfigurationError(f"llm_call_id={llm_call_id!r}: expected a str or an iterable of str")
        extra = check_dimensions(tags, "tag") if tags else {}
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
        extra = check_dimensions(tags, "tag") if tags else {}
        return self._record_other(CACHE_OPERATION, "hit", extra, tokens_saved=saved)

    def record_cache_miss(self, *, tags: Mapping[str, str | int] | None = None) -> UsageEvent:
        """Record a miss in the application's own response cache."""
        extra = check_dimensions(tags, "tag") if tags else {}
        return self._record_other(CACHE_OPERATION, "miss", extra)

    # -- budgets ------------------------------------------------------------------------

    def _engine(self) -> BudgetEngine:
        engine = self._budgets
        if engine is None:
            with self._rollups.lock:
                engine = self._budgets
                if engine is None:
                    engine = self._budgets = self._new_engine(MemoryBudgetStore())
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
            BudgetExceeded: a budget would pass its limit (nothing was reserved); a metric
                without a limit is limited by what a store's counter holds (2**63 - 1).
            BudgetStoreError: the store is unavailable and an applicable budget fails closed;
                or the store answers but refused this call's amounts (whatever
                ``on_store_error`` says: that policy is for a store that is down).
            ConfigurationError: an argument has the wrong type or value, or text past what a
                store keeps (`MAX_TEXT_BYTES`, `MAX_DIMENSIONS_BYTES` with the tags).
            MalformedUsageError: a count, or the worst case's tokens or estimated cost, past
                what a store's 64-bit counter holds.
        """
        model, provider, inputs, outputs, tools, seconds = checked_request(
            model,
            provider,
            input_tokens,
            messages,
            max_output_tokens,
            tool_calls,
            lease,
            default_output=self._default_max_output,
            default_lease=self._budget_lease,
        )
        entry = self._current()
        if entry is None:
            entry = self._root
        dims: Mapping[str, str] = entry.dimensions
        if tags:
            dims = entry.tagged(tags)[1]  # checked, and kept for the next equal tags (as record's)
            check_size(dims, "the scopes' and tags' dimensions")
        engine = self._budgets
        if engine is None or not engine.compiled:
            return unbudgeted(engine, inputs, outputs, model is not None)
        return engine.reserve(dims, model, provider, inputs, outputs, tools, seconds)

    def budget_status(self) -> list[BudgetStatus]:
        """Where every budget stands now: one row per budget, key (with usage) and limited metric.

        A global budget always has its row; a per-key budget has one for each key the store
        holds usage or reservations for.
        """
        return [] if self._budgets is None else self._budgets.status()

    # -- reading ------------------------------------------------------------------------

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
                A provider is matched by its canonical name (``"OpenAI"`` finds ``"openai"``).

        Returns:
            One `Totals` without ``by``; with ``by``, a dict from a tuple of the group's values
            (``None`` where an event lacks the dimension) to its `Totals`.

        Raises:
            ConfigurationError: on a dimension name that is not an identifier.
        """
        return self._rollups.group(by, where)

    def forget(self, **dimensions: str | int) -> int:
        """Drop the live roll-up rows of everything recorded with these dimensions (a finished session).

        Only `totals`, `snapshot` and their memory forget: scope entries keep their own totals,
        the ledger keeps every event, and budgets keep their usage (a user over a daily budget
        stays over it until the window resets; see `forget_budget_usage`). Costs in proportion
        to the rows it drops, not to the rows the meter holds.

        Returns:
            The number of rows dropped.

        Raises:
            ConfigurationError: when no dimension is given, or one is invalid.
        """
        return self._rollups.forget(_wanted(dimensions, "forget"))

    def forget_budget_usage(self, **dimensions: str | int) -> int:
        """Delete what budgets counted for keys made of these dimensions (a deleted thread, say).

        Only per-key budgets whose ``per`` includes every given dimension are touched; the
        usage is gone for good, so the key may spend its whole limit again. Budgets otherwise
        forget by their own window.

        Returns:
            The number of budget keys deleted.

        Raises:
            ConfigurationError: when no dimension is given, or one is invalid.
        """
        wanted = _wanted(dimensions, "forget_budget_usage")
        return 0 if self._budgets is None else self._budgets.forget(dict(wanted))

    def rebuild_budgets(self, *, flush: bool = True) -> list[CatchUp]:
        """Charge the budget store what the ledger holds beyond it, for every budget's window.

        After a budget store outage (calls let through by ``on_store_error="fail_open"``,
        settles that failed), the counters are behind the ledger: this adds, per key, bucket
        and metric, what the ledger holds beyond the store (never less, so it is safe while
        recording). See `meterline.budgets.rebuild_from_ledger`.

        Args:
            flush: Commit what was recorded so far to the ledger first (recommended).

        Returns:
            What was charged, one `CatchUp` per counter and bucket that was behind.

        Raises:
            ConfigurationError: without a ledger.
            BudgetStoreError: when the store fails (what was charged before stays charged).
            LedgerError: when the ledger cannot be read.
        """
        ledger = self.ledger
        if ledger is None:
            raise ConfigurationError("rebuild_budgets() needs a ledger: the meter has none")
        engine = self._budgets
        if engine is None or not engine.compiled:
            return []
        if flush:
            self.flush()
        return rebuild_from_ledger([compiled.budget for compiled in engine.compiled], engine.store, ledger)

    def stats(self) -> MeterStats:
        """Counters of the meter's machinery: events, failures, live keys, overflow."""
        rollups = self._rollups
        with rollups.lock:
            unpriced = list(self._unpriced_models)
        return MeterStats(
            events=self._ids.issued,
            subscriber_errors=self.guard.callback_errors,
            machinery_errors=self.guard.errors,
            live_keys=rollups.live_keys(),
            max_live_keys=rollups.max_live_keys,
            overflowed_events=rollups.overflowed_events(),
            unpriced_models=tuple(sorted(unpriced, key=lambda pm: (pm[0] or "", pm[1]))),
            unmetered_calls=self.guard.unmetered_counts(),
            cost_disagreements=self._disagreements,
            ledger=None if self._writer is None else self._writer.stats(),
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
        engine = self._engine() if alerts else None
        lock = self._rollups.lock
        with lock:
            if engine is not None:
                engine.alert_subscribers = (*engine.alert_subscribers, callback)
            # Replaced, never mutated, so record() iterates it without the lock.
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with lock:
                self._subscribers = _without(self._subscribers, callback)
                if engine is not None:
                    engine.alert_subscribers = _without(engine.alert_subscribers, callback)

        return unsubscribe

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The live totals as a `Snapshot` (JSON-serialisable, mergeable)."""
        return Snapshot(rows=tuple(self._rollups.rows().items()), taken_ns=_time_ns())

    def snapshot_and_reset(self) -> Snapshot:
        """Take a snapshot and reset, atomically: every event is in exactly one snapshot."""
        return Snapshot(rows=tuple(self._rollups.take().items()), taken_ns=_time_ns())

    def merge(self, snapshot: Snapshot) -> None:
        """Add a snapshot (from this or another process) into the live totals.

        Merging the snapshots of N processes gives exactly the totals of one process that
        recorded everything.
        """
        if not isinstance(snapshot, Snapshot):
            raise ConfigurationError(f"snapshot={snapshot!r}: expected a meterline.Snapshot")
        self._rollups.merge(snapshot.rows)

    def reset(self) -> None:
        """Drop every live roll-up (scope entries keep their own totals) and every memo of names.

        The memory that model, provider and dimension names took is given back: the price
        memo (`meterline.Pricer.clear`) and the list of unpriced models are emptied too.
        """
        self._rollups.take()
        self.pricer.clear()
        with self._rollups.lock:
            self._unpriced_models.clear()

    def __repr__(self) -> str:
        return f"<meterline.Meter events={self._ids.issued}>"


def _checked_deployments(deployments: object) -> dict[str, str] | None:
    """``deployments`` as a dict of names to model ids, or ``None`` when there are none.

    Raises:
        ConfigurationError: unless it maps non-empty strs to non-empty strs.
    """
    if deployments is None:
        return None
    if not isinstance(deployments, Mapping):
        raise ConfigurationError(
            f"deployments={deployments!r}: expected a mapping of deployment names to model ids"
        )
    for name, model in deployments.items():
        if type(name) is not str or type(model) is not str or not name or not model:
            raise ConfigurationError(
                f"deployments[{name!r}]={model!r}: expected a deployment name mapped to a model id (both str)"
            )
    return dict(deployments) or None


def _wanted(dimensions: Mapping[str, str | int], method: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs a forget call was given, checked."""
    if not dimensions:
        raise ConfigurationError(f"{method}() needs at least one dimension, e.g. {method}(session='s1')")
    check_names(tuple(dimensions), method)
    return [(name, str(value)) for name, value in dimensions.items()]


def _without(callbacks: tuple[Any, ...], callback: object) -> tuple[Any, ...]:
    """``callbacks`` less the first ``callback`` among them."""
    kept = list(callbacks)
    if callback in kept:
        kept.remove(callback)
    return tuple(kept)
