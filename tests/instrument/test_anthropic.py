"""The Anthropic client, sync and async, against a local server speaking Anthropic's SSE framing."""

from __future__ import annotations

import asyncio
import copy
import gc
from collections.abc import Iterator
from typing import Any

import anthropic
import pydantic
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, fixture, usage_of

MESSAGE = fixture("anthropic/message_plain")
STREAM = fixture("anthropic/stream_delta_output_only")
MESSAGES: Any = [{"role": "user", "content": "Hi"}]
MODEL = "claude-opus-4-7"


@pytest.fixture
def client(api: FakeAPI, rec: Recorded) -> Iterator[anthropic.Anthropic]:
    """A client of the local server, instrumented."""
    with anthropic.Anthropic(api_key="k", base_url=api.url, max_retries=0) as sdk_client:
        yield meterline.instrument(sdk_client, rec.meter)


def async_client(api: FakeAPI, rec: Recorded) -> anthropic.AsyncAnthropic:
    """An instrumented async client of the local server."""
    return meterline.instrument(
        anthropic.AsyncAnthropic(api_key="k", base_url=api.url, max_retries=0), rec.meter
    )


def test_create(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """A message is recorded with Anthropic's usage rules, served and requested model."""
    api.script(Reply(body=MESSAGE["payload"]))
    client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    event = rec.only
    assert (event.provider, event.model, event.request_model) == ("anthropic", MESSAGE["model"], MODEL)
    assert event.usage == usage_of(MESSAGE)


def test_create_stream(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """stream=True yields every event to the user and records the overwritten (not summed) usage."""
    api.script(Reply(events=event_sse(STREAM["chunks"])))
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    assert [event.type for event in events] == [c["type"] for c in STREAM["chunks"] if c["type"] != "ping"]
    assert rec.only.usage == usage_of(STREAM)
    assert rec.only.status == "ok"


def test_stream_helper(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """messages.stream() is metered when entered and settled when its block ends."""
    api.script(Reply(events=event_sse(STREAM["chunks"])))
    manager = client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert api.received == []
    with manager as stream:
        message = stream.get_final_message()
    assert message.usage.output_tokens == usage_of(STREAM).output_tokens
    assert rec.only.usage == usage_of(STREAM)


def test_stream_helper_early_exit(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """Leaving messages.stream() after one event records a cancelled call right away."""
    api.script(Reply(events=event_sse(STREAM["chunks"])))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        for _event in stream:
            break
    assert rec.only.status == "cancelled"


def test_async_create_stream_and_helper(api: FakeAPI, rec: Recorded) -> None:
    """The async client records create, create(stream=True) and stream() alike."""
    api.script(
        Reply(body=MESSAGE["payload"]),
        Reply(events=event_sse(STREAM["chunks"])),
        Reply(events=event_sse(STREAM["chunks"])),
    )

    async def main() -> None:
        async with async_client(api, rec) as sdk_client:
            await sdk_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
            stream = await sdk_client.messages.create(
                model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
            )
            async for _event in stream:
                pass
            async with sdk_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as helper:
                await helper.get_final_message()

    asyncio.run(main())
    assert [event.usage for event in rec.events] == [usage_of(MESSAGE), usage_of(STREAM), usage_of(STREAM)]


def test_connection_dropped_mid_stream(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """A stream dropped after message_start is unmeasured, never exact; what it reported is a lower bound."""
    api.script(Reply(events=event_sse(STREAM["chunks"]), drop_after=3))
    stream = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    with pytest.raises(Exception) as raised:
        list(stream)
    event = rec.only
    assert event.status == type(raised.value).__name__
    assert event.usage is None
    assert event.partial_usage is not None
    assert event.partial_usage.input_tokens == usage_of(STREAM).input_tokens
    assert event.partial_usage.output_tokens == 1  # message_start's placeholder, not a count
    assert rec.meter.totals().unmeasured == 1


def test_a_stream_that_ends_after_message_start_is_not_exact(
    api: FakeAPI, rec: Recorded, client: anthropic.Anthropic
) -> None:
    """A stream the server ends cleanly before message_delta is recorded unmeasured, charged by policy."""
    rec.meter.add_budget(meterline.Budget(max_tokens=100_000, on_unmeasured="fail_closed"))
    cut = fixture("anthropic/stream_cut_after_message_start")
    api.script(Reply(events=event_sse(cut["chunks"])))
    assert list(client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    event = rec.only
    assert (event.status, event.usage, event.partial_usage) == ("ok", None, usage_of(cut))
    (status,) = rec.meter.budget_status()
    assert status.used > usage_of(cut).total_tokens  # the whole reservation, not the placeholder
    assert status.reserved == 0


def test_abandoned_stream(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """A stream dropped after one event is recorded once collected."""
    api.script(Reply(events=event_sse(STREAM["chunks"])))
    stream = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    assert rec.only.status == "cancelled"


def test_overloaded(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """A 529 reaches the user as the SDK's error and is recorded as status 529."""
    api.script(
        Reply(status=529, body={"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    )
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert rec.only.status == "529"


def test_parse_validation_error_is_recorded(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """A message messages.parse() fails to validate was sent: it is recorded with the error's status."""
    parse: Any = getattr(client.messages, "parse", None)
    if parse is None:
        pytest.skip(f"messages.parse() did not exist in anthropic {anthropic.__version__}")
    body = copy.deepcopy(MESSAGE["payload"])
    body["content"] = [{"type": "text", "text": '{"a": "not-an-int"}'}]

    class Out(pydantic.BaseModel):
        a: int

    api.script(Reply(body=body))
    with pytest.raises(pydantic.ValidationError):
        parse(model=MODEL, max_tokens=100, messages=MESSAGES, output_format=Out)
    assert rec.only.status == "ValidationError"


def test_beta_messages_are_metered(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """client.beta.messages (pydantic-ai's path): create, a stream, and the stream helper, each once."""
    api.script(
        Reply(body=MESSAGE["payload"]),
        Reply(events=event_sse(STREAM["chunks"])),
        Reply(events=event_sse(STREAM["chunks"])),
    )
    client.beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    list(client.beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    with client.beta.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        stream.until_done()
    assert [(event.usage, event.status) for event in rec.events] == [
        (usage_of(MESSAGE), "ok"),
        (usage_of(STREAM), "ok"),
        (usage_of(STREAM), "ok"),
    ]


def test_beta_messages_refused_by_a_budget_send_nothing(
    api: FakeAPI, rec: Recorded, client: anthropic.Anthropic
) -> None:
    """An exhausted budget refuses a beta call before anything reaches the server."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=MESSAGE["payload"])
    client.beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    with pytest.raises(meterline.BudgetExceeded):
        client.beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert len(api.received) == 1
    assert len(rec.events) == 1


def test_anthropic_raw_message_and_stream(api: FakeAPI, rec: Recorded, client: anthropic.Anthropic) -> None:
    """ChatAnthropic's path (messages.with_raw_response) records Anthropic's usage, plain and streamed."""
    api.script(Reply(body=MESSAGE["payload"]), Reply(events=event_sse(STREAM["chunks"])))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert raw.parse().id == MESSAGE["payload"]["id"]
    streamed = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    assert [event.type for event in streamed.parse()][-1] == "message_stop"
    assert [(event.status, event.usage) for event in rec.events] == [
        ("ok", usage_of(MESSAGE)),
        ("ok", usage_of(STREAM)),
    ]
