"""OpenTelemetry GenAI metrics and span attributes, read back through the SDK's in-memory reader."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from meterline import ConfigurationError, Meter, Usage
from meterline.exporters import OTelExporter
from meterline.exporters._otel import DURATION_BUCKETS, TOKEN_BUCKETS

USAGE = Usage(input_tokens=1200, cache_read_tokens=1000, output_tokens=300, reasoning_tokens=100)


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """An SDK meter provider (never the global one) whose metrics the test reads."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]
    yield reader
    provider.shutdown()


@pytest.fixture
def spans() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """A tracer of an SDK provider, and the exporter its finished spans go to."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("app"), exporter
    provider.shutdown()


def metrics_of(reader: InMemoryMetricReader) -> dict[str, Any]:
    """The metrics the reader holds, by name."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_released_metrics_follow_the_genai_conventions(reader: InMemoryMetricReader) -> None:
    """Token usage is a {token} histogram by gen_ai.token.type with the recommended buckets; duration in s."""
    meter = Meter()
    OTelExporter(meter_provider=reader.provider, semconv="released").attach(meter)  # type: ignore[attr-defined]
    meter.record(
        USAGE, model="gpt-4o-2024-08-06", request_model="gpt-4o", provider="openai", latency_ms=812.0
    )
    found = metrics_of(reader)
    usage = found["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = {point.attributes["gen_ai.token.type"]: point for point in usage.data.data_points}
    assert (points["input"].sum, points["output"].sum) == (1200, 300)
    assert tuple(points["input"].explicit_bounds) == TOKEN_BUCKETS
    assert dict(points["input"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.token.type": "input",
    }
    duration = found["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.sum == pytest.approx(0.812)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert not any(name.startswith("gen_ai.client.inference") for name in found)
    (cost,) = found["meterline.cost"].data.data_points
    assert cost.value == pytest.approx(float(Decimal("0.00475")))


def test_latest_metrics_are_the_inference_counters(reader: InMemoryMetricReader) -> None:
    """The switch emits gen_ai.client.inference.usage.* counters by modality instead of the histogram."""
    meter = Meter()
    OTelExporter(meter_provider=reader.provider, semconv="latest").attach(meter)  # type: ignore[attr-defined]
    meter.record(
        Usage(input_tokens=500, audio_input_tokens=200, output_tokens=40), model="gpt-4o", provider="openai"
    )
    meter.record(USAGE, model="gpt-4o", provider="openai", latency_ms=100.0)
    found = metrics_of(reader)
    assert "gen_ai.client.token.usage" not in found
    assert "gen_ai.client.operation.duration" not in found

    def by_modality(name: str) -> dict[str, int]:
        return {
            point.attributes["gen_ai.token.modality"]: point.value for point in found[name].data.data_points
        }

    assert by_modality("gen_ai.client.inference.usage.input_tokens") == {"audio": 200, "unknown": 1500}
    assert by_modality("gen_ai.client.inference.usage.output_tokens") == {"unknown": 340}
    assert by_modality("gen_ai.client.inference.usage.cache_read.input_tokens") == {"unknown": 1000}
    assert by_modality("gen_ai.client.inference.usage.reasoning.output_tokens") == {"unknown": 100}
    assert found["gen_ai.client.inference.duration"].unit == "s"
    (per_call,) = found["gen_ai.client.inference.operation.input_tokens"].data.data_points
    assert (per_call.count, per_call.sum) == (2, 1700)


def test_the_opt_in_variable_selects_the_latest_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental switches the default to latest."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    assert OTelExporter(meter_provider=MeterProvider()).semconv == "latest"
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
    assert OTelExporter(meter_provider=MeterProvider()).semconv == "released"


def test_an_unknown_semconv_is_refused() -> None:
    """The semconv option takes released or latest only, naming the bad value."""
    with pytest.raises(ConfigurationError, match="'newest'"):
        OTelExporter(semconv="newest")  # type: ignore[arg-type]


def test_unknown_usage_records_no_tokens_but_counts_unmeasured(reader: InMemoryMetricReader) -> None:
    """A call without usage reports no token usage (as the conventions require) and is counted unmeasured."""
    meter = Meter()
    OTelExporter(meter_provider=reader.provider).attach(meter)  # type: ignore[attr-defined]
    meter.record(None, model="gpt-4o", provider="openai", status="timeout", latency_ms=30_000.0)
    meter.record(Usage(input_tokens=10, output_tokens=5), model="my-private-model", provider="ollama")
    found = metrics_of(reader)
    points = found["gen_ai.client.token.usage"].data.data_points
    assert {point.attributes["gen_ai.request.model"] for point in points} == {"my-private-model"}
    (unmeasured,) = found["meterline.requests.unmeasured"].data.data_points
    assert unmeasured.value == 1
    assert unmeasured.attributes["error.type"] == "timeout"
    (unpriced,) = found["meterline.requests.unpriced"].data.data_points
    assert unpriced.attributes["gen_ai.request.model"] == "my-private-model"


def test_tools_and_cache_lookups_are_not_model_calls(reader: InMemoryMetricReader) -> None:
    """Tool and cache events produce no GenAI metrics."""
    meter = Meter()
    OTelExporter(meter_provider=reader.provider).attach(meter)  # type: ignore[attr-defined]
    meter.record_tool("web_search", duration_ms=120.0)
    meter.record_cache_hit(tokens_saved=100)
    data = reader.get_metrics_data()
    assert data is None or not metrics_of(reader)


def test_usage_and_cost_go_on_the_current_span(spans: tuple[Any, InMemorySpanExporter]) -> None:
    """Each call sets gen_ai.usage.* and meterline.cost.* on the span current at record()."""
    tracer, exporter = spans
    meter = Meter()
    OTelExporter(meter_provider=MeterProvider()).attach(meter)
    with tracer.start_as_current_span("chat gpt-4o"):
        event = meter.record(
            Usage(
                input_tokens=1200,
                cache_read_tokens=1000,
                cache_write_tokens=100,
                output_tokens=300,
                reasoning_tokens=100,
            ),
            model="claude-sonnet-4-5",
            provider="anthropic",
        )
    with tracer.start_as_current_span("lost stream"):
        meter.record(None, model="gpt-4o", provider="openai")
    first, second = exporter.get_finished_spans()
    assert first.attributes is not None
    assert second.attributes is not None
    assert {key: first.attributes[key] for key in first.attributes if key.startswith("gen_ai.")} == {
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_write.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 100,
    }
    assert event.cost is not None
    assert first.attributes["meterline.cost.amount"] == pytest.approx(float(event.cost))
    assert first.attributes["meterline.cost.currency"] == "USD"
    assert first.attributes["meterline.event.id"] == event.id
    assert second.attributes["meterline.usage.unmeasured"] is True
    assert "gen_ai.usage.input_tokens" not in second.attributes


def test_tool_calls_tier_and_stated_cost_go_on_the_span(spans: tuple[Any, InMemorySpanExporter]) -> None:
    """A call's server-side tool calls, tier, batch mode and stated cost are span attributes."""
    tracer, exporter = spans
    meter = Meter()
    OTelExporter(meter_provider=MeterProvider()).attach(meter)
    with tracer.start_as_current_span("search"):
        meter.record(
            Usage(input_tokens=100, output_tokens=10, web_search_requests=2),
            model="gpt-4o",
            provider="openai",
            service_tier="flex",
            batch=True,
        )
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["meterline.usage.web_search_requests"] == 2
    assert "meterline.usage.file_search_requests" not in span.attributes
    assert span.attributes["meterline.request.service_tier"] == "flex"
    assert span.attributes["meterline.request.batch"] is True


def test_without_an_sdk_the_global_proxies_record_nothing() -> None:
    """With the API only (no provider set), exporting is a silent no-op."""
    meter = Meter()
    exporter = OTelExporter()
    exporter.attach(meter)
    meter.record(USAGE, model="gpt-4o", provider="openai", latency_ms=1.0)
    assert exporter.errors == 0
    assert meter.stats().subscriber_errors == 0


def test_a_failing_provider_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    """An exporter whose instruments raise logs and counts the failure; record() still returns."""

    class Broken:
        def record(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("collector down")

    meter = Meter()
    exporter = OTelExporter(meter_provider=MeterProvider())
    exporter._token_usage = Broken()
    exporter.attach(meter)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        event = meter.record(USAGE, model="gpt-4o", provider="openai")
    assert event.usage == USAGE
    assert exporter.errors == 1
    assert "OpenTelemetry exporter failed" in caplog.text
