"""OpenTelemetry: GenAI metrics and span attributes for every recorded model call.

Uses the OpenTelemetry *API* only (extra ``otel``); the application's SDK, if any, decides
where the data goes. Without an SDK the API's proxies record nothing, at almost no cost.

The ``gen_ai.*`` names are copied here rather than imported from
``opentelemetry-semantic-conventions`` (which pins an exact API version and keeps them in a
private ``_incubating`` module). They track semantic-conventions-genai as released (the
``gen_ai.client.token.usage`` histogram), and its main branch for the opt-in
``gen_ai.client.inference.*`` instruments and the ``cache_write`` attribute name.
"""

from __future__ import annotations as _annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from meterline._events import NOT_MODEL_CALLS, UsageEvent
from meterline._extras import require
from meterline._usage import UNIT_FIELDS
from meterline._version import __version__
from meterline.exceptions import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from meterline._meter import Meter

__all__ = [
    "DURATION_BUCKETS",
    "SEMCONV_OPT_IN_ENV",
    "TOKEN_BUCKETS",
    "OTelExporter",
    "Semconv",
]

_log: Final = logging.getLogger("meterline")

Semconv = Literal["released", "latest"]
"""Which GenAI metrics to emit: ``released`` (``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration``) or ``latest`` (the ``gen_ai.client.inference.*`` set)."""

SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
"""OpenTelemetry's opt-in variable; ``gen_ai_latest_experimental`` in it selects ``latest``."""
_LATEST_OPT_IN: Final = "gen_ai_latest_experimental"

TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""Bucket boundaries the GenAI conventions recommend for token histograms."""
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""Bucket boundaries the GenAI conventions recommend for durations, in seconds."""

# Attribute names (semantic-conventions-genai; every one has Development stability).
OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
TOKEN_TYPE: Final = "gen_ai.token.type"  # noqa: S105 - an attribute name, not a secret
TOKEN_MODALITY: Final = "gen_ai.token.modality"  # noqa: S105 - an attribute name, not a secret
ERROR_TYPE: Final = "error.type"
USAGE_INPUT: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_WRITE: Final = "gen_ai.usage.cache_write.input_tokens"
"""Named ``gen_ai.usage.cache_creation.input_tokens`` before semantic-conventions-genai #440."""
USAGE_REASONING: Final = "gen_ai.usage.reasoning.output_tokens"
# meterline's own namespace: there is no standard cost attribute yet (semconv-genai PR #443).
COST_AMOUNT: Final = "meterline.cost.amount"
COST_CURRENCY: Final = "meterline.cost.currency"
EVENT_ID: Final = "meterline.event.id"
UNMEASURED: Final = "meterline.usage.unmeasured"
SERVER_TOOL_CALLS: Final = {name: f"meterline.usage.{name}" for name in UNIT_FIELDS}
"""The server-side tool calls of a call (no semantic convention names them yet)."""
SERVICE_TIER: Final = "meterline.request.service_tier"
"""The tier that served the call (OpenAI's own is ``openai.response.service_tier``)."""
BATCH: Final = "meterline.request.batch"
REPORTED_COST: Final = "meterline.cost.reported"

_Key = tuple[str, str, str | None, str | None, str | None]


class OTelExporter:
    """Exports every model call a meter records to OpenTelemetry.

    Metrics, with ``gen_ai.operation.name``, ``gen_ai.provider.name``,
    ``gen_ai.request.model`` and ``gen_ai.response.model`` (and ``error.type`` when the
    status is not ``ok``):

    - ``semconv="released"`` (default): the ``gen_ai.client.token.usage`` histogram
      (``{token}``, by ``gen_ai.token.type`` ``input``/``output``, the recommended buckets) and
      ``gen_ai.client.operation.duration`` (seconds, when the call reported a latency). A call
      whose usage is unknown records no token usage, as the conventions require.
    - ``semconv="latest"``: the ``gen_ai.client.inference.usage.{input_tokens,output_tokens,
      cache_read.input_tokens,cache_write.input_tokens,reasoning.output_tokens}`` counters (by
      ``gen_ai.token.modality``: audio tokens as ``audio``, the rest as ``unknown``; a call
      without usage adds 0), the ``gen_ai.client.inference.operation.{input,output}_tokens``
      histograms and ``gen_ai.client.inference.duration``.

    Both add the counters ``meterline.cost`` (unit ``usd``, a float: monitoring, not billing),
    ``meterline.requests.unmeasured`` and ``meterline.requests.unpriced``.

    Span attributes, on the span current when ``record()`` is called (if it is recording):
    ``gen_ai.usage.input_tokens``, ``output_tokens``, ``cache_read.input_tokens``,
    ``cache_write.input_tokens`` and ``reasoning.output_tokens`` (the last three when not
    zero), ``meterline.cost.amount`` (float USD) and ``meterline.cost.currency`` when priced,
    ``meterline.usage.unmeasured`` when the usage is unknown, and ``meterline.event.id``. A
    span that covers several calls keeps the last call's values: give each call its own span.

    Tool and cache events are not exported. Failures are logged on the ``meterline`` logger
    and counted in `errors`, never raised into ``record()``.

    Args:
        meter_provider: Where the metrics go; the global provider by default. (Spans need no
            provider: the attributes go on the current span, whichever provider made it.)
        semconv: ``released`` or ``latest`` (see above). By default ``latest`` when
            ``$OTEL_SEMCONV_STABILITY_OPT_IN`` contains ``gen_ai_latest_experimental``.
        spans: Set the span attributes (default ``True``).

    Raises:
        MissingExtraError: without the ``otel`` extra.
        ConfigurationError: on an unknown ``semconv``.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        semconv: Semconv | None = None,
        spans: bool = True,
    ) -> None:
        metrics = require("otel", "opentelemetry.metrics")
        trace = require("otel", "opentelemetry.trace")
        if semconv is None:
            opt_in = os.environ.get(SEMCONV_OPT_IN_ENV, "")
            semconv = (
                "latest" if _LATEST_OPT_IN in (part.strip() for part in opt_in.split(",")) else "released"
            )
        if semconv not in ("released", "latest"):
            raise ConfigurationError(f"semconv={semconv!r}: expected 'released' or 'latest'")
        self.semconv: Semconv = semconv
        """The metric set this exporter emits."""
        self.errors = 0
        """Events this exporter failed to export (each logged on the ``meterline`` logger)."""
        self._get_current_span: Callable[[], Any] = trace.get_current_span
        self._spans = spans
        self._attributes: dict[_Key, tuple[dict[str, str], ...]] = {}
        otel_meter = metrics.get_meter("meterline", __version__, meter_provider)
        tokens, seconds = list(TOKEN_BUCKETS), list(DURATION_BUCKETS)
        if semconv == "released":
            self._token_usage = otel_meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=tokens,
            )
            self._duration = otel_meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=seconds,
            )
        else:
            self._duration = otel_meter.create_histogram(
                "gen_ai.client.inference.duration",
                unit="s",
                description="Duration of GenAI inference operations.",
                explicit_bucket_boundaries_advisory=seconds,
            )
            self._counters = tuple(
                otel_meter.create_counter(
                    f"gen_ai.client.inference.usage.{name}", unit="{token}", description=description
                )
                for name, description in (
                    ("input_tokens", "Input tokens used, cached ones included."),
                    ("output_tokens", "Output tokens used, reasoning ones included."),
                    ("cache_read.input_tokens", "Input tokens served from a prompt cache."),
                    ("cache_write.input_tokens", "Input tokens written to a prompt cache."),
                    ("reasoning.output_tokens", "Output tokens used for reasoning."),
                )
            )
            self._per_call = tuple(
                otel_meter.create_histogram(
                    f"gen_ai.client.inference.operation.{name}",
                    unit="{token}",
                    description=f"{label} tokens per inference operation.",
                    explicit_bucket_boundaries_advisory=tokens,
                )
                for name, label in (("input_tokens", "Input"), ("output_tokens", "Output"))
            )
        self._cost = otel_meter.create_counter(
            "meterline.cost", unit="usd", description="Estimated spend of priced model calls, in USD."
        )
        self._unmeasured = otel_meter.create_counter(
            "meterline.requests.unmeasured",
            unit="{request}",
            description="Model calls whose usage is unknown.",
        )
        self._unpriced = otel_meter.create_counter(
            "meterline.requests.unpriced",
            unit="{request}",
            description="Measured model calls without a price.",
        )

    def attach(self, meter: Meter) -> Callable[[], None]:
        """Export every event ``meter`` records from now on; returns the function that stops it."""
        return meter.subscribe(self)

    def __call__(self, event: UsageEvent) -> None:
        """Export one event (a `Meter` subscriber). Never raises."""
        if event.operation in NOT_MODEL_CALLS:
            return
        try:
            self._export(event)
        except Exception:  # noqa: BLE001 - an exporter never breaks record()
            self.errors += 1
            if self.errors <= 10 or self.errors % 1000 == 0:
                _log.exception("meterline: the OpenTelemetry exporter failed (failure #%d)", self.errors)

    def _labels(self, event: UsageEvent) -> tuple[dict[str, str], ...]:
        """(base, input, output, audio, unknown) attribute dicts of the event's call, made once per key."""
        key: _Key = (event.operation, event.status, event.provider, event.model, event.request_model)
        found = self._attributes.get(key)
        if found is None:
            base = {OPERATION: event.operation, PROVIDER: event.provider or "unknown"}
            request_model = event.request_model or event.model
            if request_model is not None:
                base[REQUEST_MODEL] = request_model
            if event.model is not None:
                base[RESPONSE_MODEL] = event.model
            if event.status != "ok":
                base[ERROR_TYPE] = event.status
            found = (
                base,
                {**base, TOKEN_TYPE: "input"},
                {**base, TOKEN_TYPE: "output"},
                {**base, TOKEN_MODALITY: "audio"},
                {**base, TOKEN_MODALITY: "unknown"},
            )
            if len(self._attributes) < 10_000:  # bounded, whatever the models' variety
                self._attributes[key] = found
        return found

    def _export(self, event: UsageEvent) -> None:
        base, as_input, as_output, audio, unknown = self._labels(event)
        usage = event.usage
        if self.semconv == "released":
            if usage is not None:
                self._token_usage.record(usage.input_tokens, as_input)
                self._token_usage.record(usage.output_tokens, as_output)
        else:
            counts = (
                (0, 0, 0, 0, 0)
                if usage is None
                else (
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cache_read_tokens,
                    usage.cache_write_tokens,
                    usage.reasoning_tokens,
                )
            )
            audio_parts = (0, 0) if usage is None else (usage.audio_input_tokens, usage.audio_output_tokens)
            for index, (counter, count) in enumerate(zip(self._counters, counts, strict=True)):
                in_audio = audio_parts[index] if index < 2 else 0
                if in_audio:
                    counter.add(in_audio, audio)
                counter.add(count - in_audio, unknown)
            if usage is not None:
                self._per_call[0].record(usage.input_tokens, base)
                self._per_call[1].record(usage.output_tokens, base)
        if event.latency_ms is not None:
            self._duration.record(event.latency_ms / 1000.0, base)
        cost = event.cost
        if usage is None:
            self._unmeasured.add(1, base)
        elif cost is None:
            self._unpriced.add(1, base)
        else:
            self._cost.add(float(cost), base)  # Decimal -> float only at this boundary
        if self._spans:
            span = self._get_current_span()
            if span.is_recording():
                span.set_attributes(_span_attributes(event))


def _span_attributes(event: UsageEvent) -> Mapping[str, str | int | float | bool]:
    usage = event.usage
    attributes: dict[str, str | int | float | bool] = {EVENT_ID: event.id}
    if usage is None:
        attributes[UNMEASURED] = True
        return attributes
    attributes[USAGE_INPUT] = usage.input_tokens
    attributes[USAGE_OUTPUT] = usage.output_tokens
    if usage.cache_read_tokens:
        attributes[USAGE_CACHE_READ] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes[USAGE_CACHE_WRITE] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes[USAGE_REASONING] = usage.reasoning_tokens
    if usage.has_units:
        for name, key in SERVER_TOOL_CALLS.items():
            count = getattr(usage, name)
            if count:
                attributes[key] = count
    if event.cost is not None:
        attributes[COST_AMOUNT] = float(event.cost)
        attributes[COST_CURRENCY] = "USD"
    if event.service_tier is not None:
        attributes[SERVICE_TIER] = event.service_tier
    if event.batch:
        attributes[BATCH] = True
    if event.reported_cost is not None:
        attributes[REPORTED_COST] = float(event.reported_cost)
    return attributes
