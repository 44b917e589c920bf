"""The live billing sink: batches POSTed to a local endpoint, retried with the same ids, spooled when down."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from meterline import ConfigurationError, Meter, Usage, UsageEvent
from meterline._delivery import DeliveryStats
from meterline.exporters import BillingSink, CloudEvents, SinkStats, Stripe, StripeMeter

from .conftest import Endpoint

FORMAT = CloudEvents(source="//meterline/test", subject_dimension="customer")


def record(meter: Meter, count: int, customer: str | None = "cus_1") -> list[UsageEvent]:
    """Record ``count`` priced calls (of ``customer``, when given)."""
    events = []
    for index in range(count):
        with meter.scope(**({"customer": customer} if customer else {})):
            events.append(
                meter.record(
                    Usage(input_tokens=100 + index, output_tokens=10), model="gpt-4o", provider="openai"
                )
            )
    return events


def sink_for(url: str, tmp_path: Path, **options: object) -> BillingSink:
    """A CloudEvents sink to ``url`` spooling under ``tmp_path``."""
    return BillingSink(url, FORMAT, spool_dir=tmp_path / "spool", **options)  # type: ignore[arg-type]


def test_batches_carry_every_event_once_with_its_id(endpoint: Endpoint, tmp_path: Path) -> None:
    """Events are POSTed as CloudEvents batches with their ids, customer and headers."""
    meter = Meter()
    sink = sink_for(endpoint.url, tmp_path, batch_size=4, headers={"Authorization": "Bearer t0k"})
    sink.attach(meter)
    events = record(meter, 10)
    assert sink.flush(10)
    documents = endpoint.documents()
    assert [document["id"] for document in documents] == [event.id for event in events]
    assert {document["subject"] for document in documents} == {"cus_1"}
    assert documents[0]["data"]["input_tokens"] == 100
    assert all(len(batch) <= 4 for batch in endpoint.batches)
    assert set(endpoint.content_types) == {"application/cloudevents-batch+json"}
    assert endpoint.headers[0]["Authorization"] == "Bearer t0k"
    stats = sink.stats()
    assert (stats.submitted, stats.delivered, stats.spooled, stats.failures) == (10, 10, 0, 0)
    sink.close()


def test_a_failing_endpoint_is_retried_with_the_same_ids(endpoint: Endpoint, tmp_path: Path) -> None:
    """After 503s the spooled events are re-sent, same ids, until the endpoint recovers; none is lost."""
    meter = Meter()
    endpoint.failures = 2
    sink = sink_for(endpoint.url, tmp_path, batch_size=5)
    sink.attach(meter)
    events = record(meter, 12)
    assert sink.flush(30)
    assert sorted(document["id"] for document in endpoint.documents()) == sorted(event.id for event in events)
    stats = sink.stats()
    assert stats.failures >= 1
    assert stats.spooled >= 5
    assert stats.delivered >= 12
    assert endpoint.attempts > len(endpoint.batches)
    assert sink.spool.pending() == 0
    sink.close()


def test_record_never_waits_for_the_endpoint(endpoint: Endpoint, tmp_path: Path) -> None:
    """record() returns while the endpoint is still holding the request."""
    meter = Meter()
    endpoint.release.clear()  # every request hangs until released
    sink = sink_for(endpoint.url, tmp_path, batch_size=1, flush_interval=0.01)
    sink.attach(meter)
    events = record(meter, 5)
    assert len(events) == 5
    assert not endpoint.release.is_set()  # the endpoint had not answered: record() did not wait for it
    endpoint.release.set()
    assert sink.flush(10)
    assert len(endpoint.documents()) == 5
    sink.close()


def test_an_unreachable_endpoint_spools_to_disk_for_a_later_sink(
    endpoint: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing listening, events go to the spool; a sink started later on it delivers them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/events"
    meter = Meter()
    down = BillingSink(dead, FORMAT, spool_dir=tmp_path / "spool", retry_max=0.2)
    down.attach(meter)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        events = record(meter, 6)
        assert not down.flush(1.0)
        down.close(0.5)
    assert down.stats().spooled == 6
    assert "events are spooled" in caplog.text
    assert down.spool.pending() == 6

    later = BillingSink(endpoint.url, FORMAT, spool_dir=tmp_path / "spool")
    assert later.flush(10)
    assert sorted(document["id"] for document in endpoint.documents()) == sorted(event.id for event in events)
    assert later.spool.pending() == 0
    later.close()


def test_a_refused_batch_is_counted_not_retried(
    endpoint: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 is logged and counted as rejected; sending the same batch again would not help."""
    meter = Meter()
    endpoint.status = 400
    sink = sink_for(endpoint.url, tmp_path)
    sink.attach(meter)
    record(meter, 3)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        assert sink.flush(10)
    assert endpoint.attempts == 1
    assert sink.stats().rejected == 3
    assert "refused 3 events" in caplog.text
    sink.close()


def test_stripe_events_without_a_customer_are_rejected_others_delivered(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    """Stripe batches are {"events": [...]}; an event without the customer is logged and counted."""
    meter = Meter()
    fmt = Stripe(
        meters=(StripeMeter(event_name="llm_tokens", quantity="total_tokens"),), customer_dimension="customer"
    )
    sink = BillingSink(endpoint.url, fmt, spool_dir=tmp_path / "spool")
    sink.attach(meter)
    billed = record(meter, 3)
    record(meter, 2, customer=None)
    meter.record_tool("web_search")
    assert sink.flush(10)
    assert isinstance(endpoint.batches[0], dict)
    assert [document["identifier"] for document in endpoint.documents()] == [
        f"{e.id}:llm_tokens" for e in billed
    ]
    stats = sink.stats()
    assert (stats.delivered, stats.rejected, stats.unbilled) == (3, 2, 1)
    sink.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_queue waiting events, new ones are dropped, logged and counted; record() carries on."""
    meter = Meter()
    sink = BillingSink(
        "http://127.0.0.1:9/none",
        FORMAT,
        spool_dir=tmp_path,
        batch_size=1000,
        flush_interval=600,
        max_queue=3,
    )
    sink.attach(meter)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        record(meter, 5)
    stats = sink.stats()
    assert (stats.submitted, stats.queued, stats.dropped) == (5, 3, 2)
    assert "dropped event" in caplog.text
    sink.close(0.1)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("file:///etc/passwd", {}, "http:// or https://"),
        ("http://user:secret@/x", {}, r"user:\*\*\*@"),
        ("http://127.0.0.1/x", {"batch_size": 0}, "batch_size=0"),
        ("http://127.0.0.1/x", {"flush_interval": float("nan")}, "flush_interval=nan"),
        ("http://127.0.0.1/x", {"timeout": True}, "timeout=True"),
    ],
)
def test_bad_settings_are_refused(url: str, options: dict[str, object], message: str, tmp_path: Path) -> None:
    """A non-http(s) URL or a non-positive size or interval raises ConfigurationError (password hidden)."""
    with pytest.raises(ConfigurationError, match=message) as info:
        BillingSink(url, FORMAT, spool_dir=tmp_path, **options)  # type: ignore[arg-type]
    assert "secret" not in str(info.value)


def test_sink_stats_are_the_batchers_stats(tmp_path: Path) -> None:
    """SinkStats is the one stats shape of every batcher, with the sink's counters as before."""
    sink = sink_for("http://127.0.0.1:9/none", tmp_path)
    stats = sink.stats()
    assert SinkStats is DeliveryStats
    assert isinstance(stats, SinkStats)
    assert (stats.submitted, stats.delivered, stats.unbilled, stats.rejected) == (0, 0, 0, 0)
    assert (stats.spooled, stats.dropped, stats.failures, stats.queued) == (0, 0, 0, 0)
    sink.close(0.1)
