"""Requests made with the client's own post() (LiteLLM's way) are metered as the endpoint of their path."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, fixture, openai_sse, usage_of

CHAT = fixture("openai/chat_plain")
CHAT_STREAM = fixture("openai/chat_stream_include_usage")
MESSAGE = fixture("anthropic/message_plain")
BODY: Any = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def test_post_to_chat_completions_is_metered_once(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """client.post("/chat/completions") records one event with the body's model and exact usage."""
    api.script(Reply(body=CHAT["payload"]))
    completion = client.post("/chat/completions", body=BODY, cast_to=ChatCompletion)
    assert completion.id == CHAT["payload"]["id"]
    assert api.received[0].body == BODY  # sent unchanged
    event = rec.only
    assert (event.usage, event.request_model, event.status) == (usage_of(CHAT), "gpt-4o-mini", "ok")


def test_resources_built_after_instrument_are_not_counted_twice(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI
) -> None:
    """A resource built after instrument() posts through the patched post() inside its own metered call."""
    api.default = Reply(body=CHAT["payload"])
    client.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"])
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=BODY["messages"])
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2


def test_post_stream_is_metered_when_it_ends(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """A streamed post is recorded once its stream ends, with the usage it asked for itself."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    stream = client.post(
        "/chat/completions",
        body=body,
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=openai.Stream[ChatCompletionChunk],
    )
    assert rec.events == []
    assert len(list(stream)) == len(CHAT_STREAM["chunks"])
    assert api.received[0].body == body
    assert (rec.only.usage, rec.only.status) == (usage_of(CHAT_STREAM), "ok")


def test_post_elsewhere_is_not_a_model_call(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """A post to a path that is no model endpoint goes through unmetered."""
    api.script(Reply(body={"object": "list", "data": []}))
    client.post("/files/search", body={"q": "x"}, cast_to=object)
    assert rec.events == []
    assert len(api.received) == 1


def test_post_refused_by_a_budget_sends_nothing(api: FakeAPI, rec: Recorded, client: openai.OpenAI) -> None:
    """An exhausted budget refuses a post before it reaches the server."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    client.post("/chat/completions", body=BODY, cast_to=ChatCompletion)
    with pytest.raises(meterline.BudgetExceeded):
        client.post("/chat/completions", body=BODY, cast_to=ChatCompletion)
    assert len(api.received) == 1


def test_async_post_and_anthropic_post(api: FakeAPI, rec: Recorded) -> None:
    """The async client's post() and the Anthropic client's post("/v1/messages") are metered too."""
    api.script(Reply(body=CHAT["payload"]), Reply(body=MESSAGE["payload"]))

    async def main() -> None:
        async with meterline.instrument(
            openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
        ) as client:
            await client.post("/chat/completions", body=BODY, cast_to=ChatCompletion)

    asyncio.run(main())
    with meterline.instrument(
        anthropic.Anthropic(api_key="k", base_url=api.url, max_retries=0), rec.meter
    ) as claude:
        claude.post(
            "/v1/messages",
            body={"model": "claude-opus-4-7", "max_tokens": 100, "messages": BODY["messages"]},
            cast_to=anthropic.types.Message,
        )
    assert [(event.provider, event.usage) for event in rec.events] == [
        ("openai", usage_of(CHAT)),
        ("anthropic", usage_of(MESSAGE)),
    ]
    meterline.uninstrument(claude)
    assert "post" not in vars(claude)


IMAGE = {
    "created": 1745920811,
    "data": [{"b64_json": "iVBORw0KGgo=", "revised_prompt": None}],
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"image_tokens": 40, "text_tokens": 10},
        "output_tokens": 4160,
        "total_tokens": 4210,
    },
}
"""An images.generate body as gpt-image-1 returns it (a usage meterline does not price yet)."""


def test_a_request_meterline_cannot_meter_is_counted_and_logged_once(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """An image generation goes through unchanged, is counted by kind, and is logged the first time only."""
    api.default = Reply(body=IMAGE)
    for _ in range(3):
        assert client.images.generate(model="gpt-image-1", prompt="a lighthouse").data
    assert rec.events == []
    assert rec.meter.stats().unmetered_calls == (("openai POST /images/generations", 3),)
    assert sum("cannot meter openai POST /images/generations" in message for message in caplog.messages) == 1


def test_requests_that_are_not_model_calls_are_not_counted(
    api: FakeAPI, rec: Recorded, client: openai.OpenAI
) -> None:
    """A metered call, a file upload and a batch cancellation count nothing as unmetered."""
    api.script(
        Reply(body=CHAT["payload"]),
        Reply(
            body={
                "id": "file-1a2",
                "object": "file",
                "bytes": 3,
                "created_at": 1,
                "filename": "b.jsonl",
                "purpose": "batch",
                "status": "processed",
            }
        ),
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"])
    client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    assert rec.meter.stats().unmetered_calls == ()
    assert len(rec.events) == 1


def test_unmetered_anthropic_batches_are_counted_with_ids_folded(api: FakeAPI, rec: Recorded) -> None:
    """Anthropic's batch creation is counted; the kind names the route, never an id."""
    api.default = Reply(body={"id": "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d", "type": "message_batch"})
    with meterline.instrument(
        anthropic.Anthropic(api_key="k", base_url=api.url, max_retries=0), rec.meter
    ) as sdk:
        sdk.post("/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/results", body={}, cast_to=object)
        sdk.post("/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/cancel", body={}, cast_to=object)
    assert rec.meter.stats().unmetered_calls == (("anthropic POST /v1/messages/batches/{id}/results", 1),)
