"""LlamaIndex's OpenAI LLM on instrumented OpenAI clients is metered exactly: chat, stream, async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, openai_sse, usage_of
from tests.integrations.bodies import CHAT, CHAT_CACHED, CHAT_STREAM

llms = pytest.importorskip(
    "llama_index.llms.openai"
)  # only in its own environment (make test-frameworks-min)
ChatMessage = pytest.importorskip("llama_index.core.llms").ChatMessage


@pytest.fixture
def llm(api: FakeAPI, rec: Recorded) -> Iterator[Any]:
    """A LlamaIndex OpenAI LLM whose sync and async OpenAI clients are instrumented (two lines)."""
    base = f"{api.url}/v1"
    client = meterline.instrument(openai.OpenAI(api_key="k", base_url=base, max_retries=0), rec.meter)
    aclient = meterline.instrument(openai.AsyncOpenAI(api_key="k", base_url=base, max_retries=0), rec.meter)
    yield llms.OpenAI(
        model="gpt-4o", api_key="k", api_base=base, openai_client=client, async_openai_client=aclient
    )
    client.close()


def test_chat_and_complete(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """chat() and complete() are each one event with the response's usage, in the caller's scope."""
    api.script(Reply(body=CHAT_CACHED["payload"]), Reply(body=CHAT["payload"]))
    with rec.meter.scope(user="u1"):
        llm.chat([ChatMessage(role="user", content="Hi")])
        llm.complete("Hi")
    assert [event.usage for event in rec.events] == [usage_of(CHAT_CACHED), usage_of(CHAT)]
    assert {event.dimensions["user"] for event in rec.events} == {"u1"}
    assert rec.events[0].model == CHAT_CACHED["model"]


def test_stream_chat(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """A streamed chat is one event with the stream's final usage (LlamaIndex asks for it)."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    assert "".join(chunk.delta or "" for chunk in llm.stream_chat([ChatMessage(role="user", content="Hi")]))
    assert rec.only.usage == usage_of(CHAT_STREAM)


def test_async_chat(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Achat on the instrumented async client is one exact event."""
    api.script(Reply(body=CHAT["payload"]))

    async def main() -> None:
        await llm.achat([ChatMessage(role="user", content="Hi")])
        await llm._get_aclient().close()

    asyncio.run(main())
    assert rec.only.usage == usage_of(CHAT)


def test_a_refusal_sends_nothing(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Over budget, chat() raises BudgetExceeded and the server never sees the request."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    llm.chat([ChatMessage(role="user", content="Hi")])
    with pytest.raises(meterline.BudgetExceeded):
        llm.chat([ChatMessage(role="user", content="Hi")])
    assert len(api.received) == 1
