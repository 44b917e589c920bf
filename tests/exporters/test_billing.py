"""Billing formats: CloudEvents for OpenMeter and Stripe meter events, including hostile input."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline import ConfigurationError, ExportError, MalformedUsageError, Meter, Usage, UsageEvent
from meterline._usage import MAX_EVENT_TOKENS
from meterline.exporters import CLOUDEVENT_TYPE, CloudEvents, Stripe, StripeMeter, cloudevent


def priced_event() -> UsageEvent:
    """A priced gpt-4o call of customer cus_123."""
    meter = Meter()
    with meter.scope(customer="cus_123", session="s1"):
        return meter.record(
            Usage(input_tokens=1200, cache_read_tokens=1000, output_tokens=300),
            model="gpt-4o-2024-08-06",
            provider="openai",
            request_model="gpt-4o",
        )


def test_a_cloudevent_carries_the_event_id_subject_and_decimal_cost() -> None:
    """The id is the event id, the subject the customer dimension, cost an exact decimal string in USD."""
    event = priced_event()
    document = CloudEvents(source="//meterline/test", subject_dimension="customer").render(event)[0]
    assert document == cloudevent(event, source="//meterline/test", subject_dimension="customer")
    assert (document["id"], document["subject"], document["type"]) == (event.id, "cus_123", CLOUDEVENT_TYPE)
    assert document["data"]["cost"] == {"amount": "0.00475", "currency": "USD", "source": "local"}
    assert document["data"]["dimensions"] == {"customer": "cus_123", "session": "s1"}


def test_a_cloudevent_carries_tool_calls_tier_batch_and_the_stated_cost() -> None:
    """Server-side tool calls, the tier, batch mode and the provider's own cost are in ``data``."""
    from tests.ledger.conformance import OPENROUTER_BODY

    meter = Meter()
    searched = meter.record(
        Usage(input_tokens=900, output_tokens=80, web_search_requests=2),
        model="claude-sonnet-4-5",
        provider="anthropic",
        service_tier="priority",
        batch=True,
    )
    data = cloudevent(searched, source="//meterline/test")["data"]
    assert data["server_tool_calls"] == {
        "web_search": 2,
        "web_fetch": 0,
        "file_search": 0,
        "code_execution": 0,
    }
    assert (data["service_tier"], data["batch"], data["reported_cost"]) == ("priority", True, None)
    stated = cloudevent(meter.record(OPENROUTER_BODY, provider="openrouter"), source="//meterline/test")[
        "data"
    ]
    assert stated["reported_cost"] == {"amount": "0.00036", "currency": "USD", "source": "provider"}
    unknown = cloudevent(meter.record(None, model="gpt-4o", provider="openai"), source="//m")["data"]
    assert unknown["server_tool_calls"] is None


def test_stripe_bills_web_searches() -> None:
    """A Stripe meter of ``web_search_requests`` sends the searches of each call."""
    meter = Meter()
    with meter.scope(customer="cus_9"):
        event = meter.record(
            Usage(input_tokens=10, output_tokens=1, web_search_requests=3),
            model="claude-sonnet-4-5",
            provider="anthropic",
        )
    searches = (StripeMeter(event_name="searches", quantity="web_search_requests"),)
    (document,) = Stripe(meters=searches, customer_dimension="customer").render(event)
    assert document["payload"] == {"stripe_customer_id": "cus_9", "value": "3"}


def test_a_cloudevents_batch_is_a_json_array() -> None:
    """A batch body is the JSON array OpenMeter's batch ingest takes."""
    fmt = CloudEvents(source="//meterline/test")
    documents = fmt.render(priced_event()) + fmt.render(priced_event())
    assert fmt.content_type == "application/cloudevents-batch+json"
    assert json.loads(fmt.body(documents)) == documents


def test_cloudevents_refuse_an_empty_source_or_a_bad_dimension() -> None:
    """Bad CloudEvents settings raise ConfigurationError naming the value."""
    with pytest.raises(ConfigurationError, match="source=''"):
        CloudEvents(source="")
    with pytest.raises(ConfigurationError, match="'Customer Id'"):
        CloudEvents(source="s", subject_dimension="Customer Id")


METERS = (
    StripeMeter(event_name="llm_input_tokens", quantity="input_tokens"),
    StripeMeter(event_name="llm_output_tokens", quantity="output_tokens"),
    StripeMeter(event_name="llm_cost_micro_usd", quantity="cost", unit=Decimal("0.000001")),
)


def test_stripe_gets_one_meter_event_per_billed_quantity() -> None:
    """Each meter gets its value as a string, the customer, the event time and an id-derived identifier."""
    event = priced_event()
    documents = Stripe(meters=METERS, customer_dimension="customer").render(event)
    assert documents == [
        {
            "event_name": name,
            "identifier": f"{event.id}:{name}",
            "timestamp": event.time_ns // 1_000_000_000,
            "payload": {"stripe_customer_id": "cus_123", "value": value},
        }
        for name, value in (
            ("llm_input_tokens", "1200"),
            ("llm_output_tokens", "300"),
            ("llm_cost_micro_usd", "4750"),
        )
    ]
    again = Stripe(meters=METERS, customer_dimension="customer").render(event)
    assert again == documents


def test_stripe_identifiers_stay_within_100_characters() -> None:
    """A long event name gives an identifier of at most 100 characters, still stable and distinct."""
    long = StripeMeter(event_name="x" * 100, quantity="output_tokens")
    other = StripeMeter(event_name="x" * 99 + "y", quantity="input_tokens")
    event = priced_event()
    first, second = Stripe(meters=(long, other), customer_dimension="customer").render(event)
    assert len(first["identifier"]) <= 100
    assert len(second["identifier"]) <= 100
    assert first["identifier"] != second["identifier"]
    assert first["identifier"] == long.identifier(event.id)


def test_stripe_skips_what_bills_nothing() -> None:
    """Unknown usage, unpriced cost, zero quantities, tools and cache lookups produce no meter event."""
    meter = Meter()
    fmt = Stripe(meters=METERS, customer_dimension="customer")
    with meter.scope(customer="cus_1"):
        assert fmt.render(meter.record(None, model="gpt-4o", provider="openai")) == []
        assert fmt.render(meter.record_tool("web_search")) == []
        assert fmt.render(meter.record_cache_hit(tokens_saved=10)) == []
        unpriced = fmt.render(meter.record(Usage(input_tokens=5), model="my-model", provider="ollama"))
    assert [document["event_name"] for document in unpriced] == ["llm_input_tokens"]


def test_stripe_needs_the_customer() -> None:
    """An event without the customer dimension cannot be billed: ExportError names the dimension."""
    event = Meter().record(Usage(input_tokens=5, output_tokens=1), model="gpt-4o", provider="openai")
    with pytest.raises(ExportError, match="no 'customer' dimension"):
        Stripe(meters=METERS, customer_dimension="customer").render(event)


def test_stripe_refuses_events_outside_its_time_window() -> None:
    """Events older than 35 days (or over 5 minutes ahead) raise ExportError instead of a rejected request."""
    event = priced_event()
    fmt = Stripe(meters=METERS, customer_dimension="customer")
    with pytest.raises(ExportError, match="outside Stripe's window"):
        fmt.render(event, now=time.time() + 36 * 86400)
    with pytest.raises(ExportError, match="outside Stripe's window"):
        fmt.render(event, now=time.time() - 3600)


def test_stripe_values_have_at_most_15_significant_digits() -> None:
    """Cost is rounded half-even to 15 significant digits; a value past 15 digits is refused."""
    meter = Meter()
    with meter.scope(customer="c"):
        event = meter.record(
            Usage(input_tokens=999_999_999_999, output_tokens=7), model="gpt-4o", provider="openai"
        )
    usd = StripeMeter(event_name="usd", quantity="cost", unit=Decimal("0.000001"))
    (document,) = Stripe(meters=(usd,), customer_dimension="customer").render(event)
    value = Decimal(document["payload"]["value"])
    assert len(value.as_tuple().digits) <= 15
    assert event.cost is not None
    assert abs(value - event.cost * 10**6) <= value.scaleb(-14)
    with pytest.raises(ExportError, match="15 significant digits"):
        Stripe(
            meters=(StripeMeter(event_name="in", quantity="input_tokens", unit=Decimal("1E-4")),),
            customer_dimension="customer",
        ).render(event)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"event_name": "", "quantity": "cost"}, "event_name=''"),
        ({"event_name": "e" * 101, "quantity": "cost"}, "1 to 100 characters"),
        ({"event_name": "e", "quantity": "words"}, "quantity='words'"),
        ({"event_name": "e", "quantity": "cost", "unit": 0}, "unit=0"),
        ({"event_name": "e", "quantity": "cost", "unit": 0.001}, "unit=0.001"),
        ({"event_name": "e", "quantity": "cost", "unit": "NaN"}, "unit='NaN'"),
    ],
)
def test_stripe_meters_validate_their_settings(arguments: dict[str, object], message: str) -> None:
    """A bad meter raises ConfigurationError naming the value and what is expected."""
    with pytest.raises(ConfigurationError, match=message):
        StripeMeter(**arguments)  # type: ignore[arg-type]


def test_stripe_refuses_repeated_event_names() -> None:
    """Two meters with one event name would share identifiers: refused."""
    meter = StripeMeter(event_name="e", quantity="cost")
    with pytest.raises(ConfigurationError, match="repeat"):
        Stripe(meters=(meter, meter), customer_dimension="customer")


MAX_PICO = 2**63 - 1  # what a ledger's BIGINT holds: record() refuses a usage priced past it


@given(
    input_tokens=st.integers(0, 2**63 - 1),
    output_tokens=st.integers(0, 2**40),
    unit=st.decimals(min_value=Decimal("1E-9"), max_value=Decimal("1E6"), allow_nan=False, places=9),
    customer=st.text(min_size=1, max_size=50),
)
def test_hostile_counts_and_units_give_valid_values_or_export_errors(
    input_tokens: int, output_tokens: int, unit: Decimal, customer: str
) -> None:
    """Any usage and unit gives positive decimal strings of at most 15 digits, or an ExportError."""
    if unit <= 0:
        return
    meter = Meter()
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    with meter.scope(customer=customer):
        if max(input_tokens, output_tokens) > MAX_EVENT_TOKENS:
            with pytest.raises(MalformedUsageError, match="tokens in one event"):
                meter.record(usage, model="gpt-4o", provider="openai")
            assert meter.totals().events == 0
            return
        if input_tokens * 2_500_000 + output_tokens * 10_000_000 > MAX_PICO:
            # Priced past what a ledger holds: refused at record(), nothing to export.
            with pytest.raises(MalformedUsageError, match="priced under"):
                meter.record(usage, model="gpt-4o", provider="openai")
            assert meter.totals().events == 0
            return
        event = meter.record(usage, model="gpt-4o", provider="openai")
    meters = (
        StripeMeter(event_name="tokens", quantity="total_tokens", unit=unit),
        StripeMeter(event_name="cost", quantity="cost", unit=unit),
    )
    fmt = Stripe(meters=meters, customer_dimension="customer")
    if input_tokens + output_tokens >= unit * 10**15:
        with pytest.raises(ExportError, match="15 significant digits"):
            fmt.render(event)
        return
    documents = fmt.render(event)
    for document in documents:
        value = Decimal(document["payload"]["value"])
        assert value > 0
        assert len(value.normalize().as_tuple().digits) <= 15
        assert document["payload"]["stripe_customer_id"] == customer
        assert len(document["identifier"]) <= 100
    json.dumps(documents)
