"""Prometheus: counters of tokens, cost and requests, gauges of budgets, and a ledger collector.

Extra ``prometheus`` (``prometheus_client``). Labels are ``provider``, ``model`` and
``operation``, plus ``token_type`` or ``status``: never a user, session or customer id, whose
cardinality is unbounded (attribution belongs in events, the ledger and the billing feeds).

Metrics (model calls only; tool and cache events are not counted):

========================================  =================================================
``meterline_tokens_total``                tokens, by ``token_type`` (exclusive buckets, so
                                          ``sum()`` over them is the total; see below)
``meterline_cost_usd_total``              cost of priced calls, in USD (a float)
``meterline_requests_total``              model calls, by ``status`` (``ok`` or the error)
``meterline_unmeasured_requests_total``   calls whose usage is unknown (not in the tokens)
``meterline_unpriced_requests_total``     measured calls without a price (not in the cost)
``meterline_budget_remaining``            each budget's remaining amount, by ``budget`` and
                                          ``metric`` (``cost`` in USD, ``tokens``…)
``meterline_budget_limit``                each budget's limit, by ``budget`` and ``metric``
========================================  =================================================

``token_type`` buckets do not overlap: ``input`` is input *not* read from or written to a
cache, ``cache_read`` and ``cache_write`` the cached parts, ``output`` is output *other
than* reasoning and ``reasoning`` the rest. All input is ``input + cache_read +
cache_write``; all output ``output + reasoning``.

Multiprocess mode: the counters work under ``prometheus_client``'s multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set before the process starts); serve the directory with
``meterline serve-metrics``. The budget gauges come from a custom collector, which that mode
cannot aggregate: they are exported by single-process registries only.
"""

from __future__ import annotations as _annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from meterline._events import NOT_MODEL_CALLS, UsageEvent
from meterline._extras import require
from meterline._usage import UNIT_FIELDS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from meterline._meter import Meter
    from meterline.ledger._backend import LedgerBackend

__all__ = ["BudgetCollector", "LedgerCollector", "PrometheusExporter"]

_log: Final = logging.getLogger("meterline")

TOKEN_TYPES: Final = ("input", "cache_read", "cache_write", "output", "reasoning")
"""Values of the ``token_type`` label: exclusive buckets whose sum is the total tokens."""
SERVER_TOOLS: Final = ("web_search", "web_fetch", "file_search", "code_execution")
"""Values of the ``tool`` label of ``meterline_server_tool_calls_total``."""
LABELS: Final = ("provider", "model", "operation")
"""Labels of every usage metric (``meterline_tokens_total`` adds ``token_type``, requests ``status``)."""
_MAX_CACHED: Final = 10_000


def _exclusive(usage: Any) -> tuple[int, int, int, int, int]:
    """A usage's token counts in the exclusive `TOKEN_TYPES` buckets."""
    return (
        usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens - usage.reasoning_tokens,
        usage.reasoning_tokens,
    )


class PrometheusExporter:
    """Counts every model call a meter records in ``prometheus_client`` metrics.

    The metric children of each (provider, model, operation, status) are looked up once and
    kept, so recording an event costs a few counter increments. Failures are logged on the
    ``meterline`` logger and counted in `errors`, never raised into ``record()``.

    Args:
        registry: Where the metrics are registered (``prometheus_client.REGISTRY`` by default).
            In multiprocess mode keep the default: the values go to the multiprocess
            directory, whichever registry is named.
        namespace: Prefix of every metric name.

    Raises:
        MissingExtraError: without the ``prometheus`` extra.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None, namespace: str = "meterline") -> None:
        prometheus = require("prometheus", "prometheus_client")
        self._registry: CollectorRegistry = prometheus.REGISTRY if registry is None else registry
        self._namespace = namespace
        self.errors = 0
        """Events this exporter failed to count (each logged on the ``meterline`` logger)."""
        counter = prometheus.Counter
        registered = {"registry": self._registry, "namespace": namespace}
        self.tokens = counter(
            "tokens",
            "Tokens used by model calls, by exclusive token type (sum over token_type = all tokens).",
            (*LABELS, "token_type"),
            **registered,
        )
        self.cost = counter("cost", "Cost of priced model calls, in USD.", LABELS, unit="usd", **registered)
        self.requests = counter("requests", "Model calls, by status.", (*LABELS, "status"), **registered)
        self.unmeasured = counter(
            "unmeasured_requests",
            "Model calls whose usage is unknown (not in tokens or cost).",
            LABELS,
            **registered,
        )
        self.unpriced = counter(
            "unpriced_requests", "Measured model calls without a price (not in cost).", LABELS, **registered
        )
        self.tool_calls = counter(
            "server_tool_calls",
            "Calls of the provider's own tools that model calls ran (web searches…), by tool.",
            (*LABELS, "tool"),
            **registered,
        )
        self._children: dict[tuple[str, str, str | None, str | None], tuple[Any, ...]] = {}

    def attach(self, meter: Meter) -> Callable[[], None]:
        """Count every event ``meter`` records from now on, and export its budgets' gauges.

        The gauges are registered when the meter offers ``budget_status()``.

        Returns:
            The function that stops both.
        """
        unsubscribe = meter.subscribe(self)
        collector: BudgetCollector | None = None
        if hasattr(meter, "budget_status"):
            collector = BudgetCollector(meter, namespace=self._namespace)
            self._registry.register(collector)

        def detach() -> None:
            unsubscribe()
            if collector is not None:
                self._registry.unregister(collector)

        return detach

    def __call__(self, event: UsageEvent) -> None:
        """Count one event (a `Meter` subscriber). Never raises."""
        if event.operation in NOT_MODEL_CALLS:
            return
        try:
            self._count(event)
        except Exception:  # noqa: BLE001 - an exporter never breaks record()
            self.errors += 1
            if self.errors <= 10 or self.errors % 1000 == 0:
                _log.exception("meterline: the Prometheus exporter failed (failure #%d)", self.errors)

    def _children_of(self, event: UsageEvent) -> tuple[Any, ...]:
        key = (event.operation, event.status, event.provider, event.model)
        children = self._children.get(key)
        if children is None:
            labels = (event.provider or "", event.model or "", event.operation)
            children = (
                *(self.tokens.labels(*labels, token_type) for token_type in TOKEN_TYPES),
                self.cost.labels(*labels),
                self.requests.labels(*labels, event.status),
                self.unmeasured.labels(*labels),
                self.unpriced.labels(*labels),
            )
            if len(self._children) < _MAX_CACHED:
                self._children[key] = children
        return children

    def _count(self, event: UsageEvent) -> None:
        children = self._children_of(event)
        children[6].inc()
        usage = event.usage
        if usage is None:
            children[7].inc()
            return
        for child, count in zip(children[:5], _exclusive(usage), strict=True):
            if count:
                child.inc(count)
        cost = event.cost
        if cost is None:
            children[8].inc()
        elif cost:
            children[5].inc(float(cost))  # Decimal -> float only at this boundary
        if usage.has_units:
            labels = (event.provider or "", event.model or "", event.operation)
            for name, tool in zip(UNIT_FIELDS, SERVER_TOOLS, strict=True):
                count = getattr(usage, name)
                if count:
                    self.tool_calls.labels(*labels, tool).inc(count)


def _min_remaining(statuses: Iterable[Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """(budget, metric) -> (remaining, limit) of the key with the least remaining."""
    lowest: dict[tuple[str, str], tuple[Decimal | int, Decimal | int]] = {}
    for status in statuses:
        group = (str(status.budget), str(status.metric))
        found = lowest.get(group)
        if found is None or status.remaining < found[0]:
            lowest[group] = (status.remaining, status.limit)
    return {group: (float(remaining), float(limit)) for group, (remaining, limit) in lowest.items()}


class BudgetCollector:
    """Gauges of a meter's budgets, read from ``meter.budget_status()`` at each scrape.

    ``meterline_budget_remaining{budget, metric}`` and ``meterline_budget_limit{budget,
    metric}``. A per-key budget (``per=("user",)``) has one status per key; labelling by key
    would put user ids in labels, so the gauge is the **minimum remaining over its keys**:
    the key closest to its limit, which is what an alert needs. A budget no call has used yet
    has no status and no series. Units follow ``metric`` (``cost``: USD; ``tokens``: tokens).

    Args:
        meter: A meter with ``budget_status()``.
        namespace: Prefix of the metric names.
    """

    def __init__(self, meter: Any, *, namespace: str = "meterline") -> None:
        self._meter = meter
        self._namespace = namespace
        self.errors = 0
        """Scrapes whose ``budget_status()`` failed (logged; the scrape then has no budget series)."""

    def describe(self) -> list[Metric]:
        """No description up front: the registry then calls `collect` only at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The budget gauges, from the meter's current budget status."""
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415 - the extra is installed

        try:
            groups = _min_remaining(self._meter.budget_status())
        except Exception:  # noqa: BLE001 - a failing budget store must not break the scrape
            self.errors += 1
            _log.exception("meterline: budget_status() failed; the scrape has no budget gauges")
            return
        remaining = GaugeMetricFamily(
            f"{self._namespace}_budget_remaining",
            "Remaining amount of each budget (per-key budgets: the minimum over their keys).",
            labels=("budget", "metric"),
        )
        limit = GaugeMetricFamily(
            f"{self._namespace}_budget_limit", "Limit of each budget.", labels=("budget", "metric")
        )
        for (budget, metric), (left, cap) in sorted(groups.items()):
            remaining.add_metric((budget, metric), left)
            limit.add_metric((budget, metric), cap)
        yield remaining
        yield limit


class LedgerCollector:
    """The usage counters computed from a ledger's roll-ups at each scrape.

    For a process that meters nothing itself (``meterline serve-metrics --ledger URL``): the
    same ``meterline_*_total`` series as `PrometheusExporter`, over every event the ledger
    holds. Reading the roll-ups costs one grouped query per scrape, however many events. A
    ``meterline ledger prune`` lowers the totals, which Prometheus treats as a counter reset.
    Do not scrape this and live exporters of the same events into one sum: they count the
    same calls.

    Args:
        ledger: The ledger to read.
        namespace: Prefix of the metric names.
    """

    def __init__(self, ledger: LedgerBackend, *, namespace: str = "meterline") -> None:
        self._ledger = ledger
        self._namespace = namespace
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        """No description up front: the registry then calls `collect` only at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The counters, from the ledger's roll-ups by operation, status, provider and model."""
        from prometheus_client.core import CounterMetricFamily  # noqa: PLC0415 - the extra is installed

        with self._lock:  # scrapes may be concurrent; a ledger connection is used by one at a time
            rows = self._ledger.totals(by=("operation", "status", "provider", "model"))
        prefix = self._namespace
        tokens = CounterMetricFamily(
            f"{prefix}_tokens",
            "Tokens used by model calls, by exclusive token type.",
            labels=(*LABELS, "token_type"),
        )
        cost = CounterMetricFamily(f"{prefix}_cost_usd", "Cost of priced model calls, in USD.", labels=LABELS)
        requests = CounterMetricFamily(
            f"{prefix}_requests", "Model calls, by status.", labels=(*LABELS, "status")
        )
        unmeasured = CounterMetricFamily(
            f"{prefix}_unmeasured_requests", "Model calls whose usage is unknown.", labels=LABELS
        )
        unpriced = CounterMetricFamily(
            f"{prefix}_unpriced_requests", "Measured model calls without a price.", labels=LABELS
        )
        per_labels: dict[tuple[str, str, str], list[Any]] = {}
        for row in rows:
            operation, status, provider, model = row.key
            if operation is None or operation in NOT_MODEL_CALLS:
                continue
            labels = (provider or "", model or "", operation)
            requests.add_metric((*labels, status or ""), row.events)
            sums = per_labels.setdefault(labels, [Decimal(0), 0, 0, [0] * len(TOKEN_TYPES)])
            sums[0] += row.cost
            sums[1] += row.unmeasured
            sums[2] += row.unpriced
            for index, count in enumerate(_exclusive(row.usage)):
                sums[3][index] += count
        for labels, (money, missing, free, counts) in sorted(per_labels.items()):
            cost.add_metric(labels, float(money))
            unmeasured.add_metric(labels, missing)
            unpriced.add_metric(labels, free)
            for token_type, count in zip(TOKEN_TYPES, counts, strict=True):
                tokens.add_metric((*labels, token_type), count)
        yield from (tokens, cost, requests, unmeasured, unpriced)
