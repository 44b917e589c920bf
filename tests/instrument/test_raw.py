"""Calls through with_raw_response and with_streaming_response are metered from the bytes the caller reads."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import openai
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, fixture, openai_sse, usage_of

CHAT = fixture("openai/chat_plain")
CHAT_STREAM = fixture("openai/chat_stream_include_usage")
RESPONSES_STREAM = fixture("openai/responses_stream_completed")
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("gzip", [False, True])
def test_raw_response_records_the_usage(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI, gzip: bool
) -> None:
    """with_raw_response (LangChain's ChatOpenAI.invoke) records the exact usage; the body is unchanged."""
    api.script(Reply(body=CHAT["payload"], gzip=gzip))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert json.loads(raw.http_response.content) == CHAT["payload"]
    assert raw.parse().id == CHAT["payload"]["id"]
    event = rec.only
    assert (event.status, event.usage, event.model, event.request_model) == (
        "ok",
        usage_of(CHAT),
        CHAT["model"],
        "gpt-4o-mini",
    )


@pytest.mark.parametrize("gzip", [False, True])
def test_raw_stream_records_the_usage_it_carries(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI, gzip: bool
) -> None:
    """A raw chat stream that asked for usage is recorded with it once the caller has read it."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"]), gzip=gzip))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert rec.events == []  # nothing read yet
    chunks = list(raw.parse())
    assert len(chunks) == len(CHAT_STREAM["chunks"])
    assert (rec.only.status, rec.only.usage) == ("ok", usage_of(CHAT_STREAM))


def test_streaming_response_read_line_by_line(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """with_streaming_response read with iter_lines gives the caller the server's lines, and the usage."""
    frames = openai_sse(CHAT_STREAM["chunks"])
    api.script(Reply(events=frames))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines == [line for frame in frames for line in frame.decode().split("\n") if line]
    assert (rec.only.status, rec.only.usage) == ("ok", usage_of(CHAT_STREAM))


def test_streaming_response_parsed_json(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """A non-streamed with_streaming_response body is recorded when the caller parses it."""
    api.script(Reply(body=CHAT["payload"]))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        assert rec.events == []
        assert response.parse().id == CHAT["payload"]["id"]
    assert (rec.only.status, rec.only.usage) == ("ok", usage_of(CHAT))


def test_streaming_response_left_unread_is_cancelled(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI
) -> None:
    """A response closed before its body was read is recorded once, cancelled and unmeasured."""
    api.script(Reply(body=CHAT["payload"]))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES):
        pass
    gc.collect()
    assert (rec.only.status, rec.only.usage) == ("cancelled", None)


def test_responses_stream_through_streaming_response(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI
) -> None:
    """A Responses stream read through with_streaming_response (the Agents SDK's way) is measured."""
    if not hasattr(client, "responses"):
        pytest.skip(f"the Responses API arrived in openai 1.66; this is openai {openai.__version__}")
    api.script(Reply(events=event_sse(RESPONSES_STREAM["chunks"])))
    with client.responses.with_streaming_response.create(
        model="gpt-4o-mini", input="Hi", stream=True
    ) as response:
        events = list(response.parse())
    assert len(events) == len(RESPONSES_STREAM["chunks"])
    assert (rec.only.status, rec.only.usage) == ("ok", usage_of(RESPONSES_STREAM))


def test_async_raw_and_streaming_responses(api: FakeAPI, rec: Recorded) -> None:
    """The async client's raw and streaming responses are metered the same way."""
    api.script(Reply(body=CHAT["payload"]), Reply(events=openai_sse(CHAT_STREAM["chunks"])))

    async def main() -> None:
        async with meterline.instrument(
            openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
        ) as sdk_client:
            raw = await sdk_client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
            assert raw.parse().id == CHAT["payload"]["id"]
            async with sdk_client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            ) as response:
                assert len([chunk async for chunk in await response.parse()]) == len(CHAT_STREAM["chunks"])

    asyncio.run(main())
    assert [(event.status, event.usage) for event in rec.events] == [
        ("ok", usage_of(CHAT)),
        ("ok", usage_of(CHAT_STREAM)),
    ]


def test_a_budget_is_charged_what_raw_calls_used(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """Raw calls settle their reservation with the real usage, not the whole hold (as LangChain's did)."""
    rec.meter.add_budget(meterline.Budget(max_tokens=100_000, window="day"))
    api.default = Reply(body=CHAT["payload"])
    for _ in range(5):
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=4000
        )
    assert len(rec.events) == 5
    assert all(event.usage == usage_of(CHAT) for event in rec.events)
    (status,) = [row for row in rec.meter.budget_status() if row.metric == "tokens"]
    assert status.used == 5 * (usage_of(CHAT).input_tokens + usage_of(CHAT).output_tokens)
    assert status.reserved == 0
