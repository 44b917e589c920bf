"""LangChain's ChatOpenAI and ChatAnthropic, on instrumented SDK clients, are metered exactly and budgeted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.langchain_models import chat_openai_of
from tests.instrument.server import FakeAPI, Reply, fixture, openai_sse, usage_of

langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")

CHAT = fixture("openai/chat_plain")
CHAT_STREAM = fixture("openai/chat_stream_include_usage")
MESSAGE = fixture("anthropic/message_plain")


@pytest.fixture
def chat_openai(api: FakeAPI, rec: Recorded) -> Iterator[Any]:
    """A ChatOpenAI of the local server whose OpenAI clients are instrumented."""
    llm = chat_openai_of(api.url, model="gpt-4o-mini", stream_usage=True)
    meterline.instrument(llm.root_client, rec.meter)
    meterline.instrument(llm.root_async_client, rec.meter)
    yield llm
    llm.root_client.close()


def test_invoke_records_the_usage_langchain_reports(api: FakeAPI, rec: Recorded, chat_openai: Any) -> None:
    """ChatOpenAI.invoke (through with_raw_response) is one event with the response's exact usage."""
    api.script(Reply(body=CHAT["payload"]))
    message = chat_openai.invoke("Hi")
    event = rec.only
    assert event.usage == usage_of(CHAT)
    assert event.usage.input_tokens == message.usage_metadata["input_tokens"]
    assert (event.status, event.request_model) == ("ok", "gpt-4o-mini")


def test_a_cost_budget_charges_invokes_what_they_cost(api: FakeAPI, rec: Recorded, chat_openai: Any) -> None:
    """Under a $0.10 daily budget, ten invokes go through, charged their real cost, not their holds."""
    rec.meter.add_budget(meterline.Budget(max_cost="0.10", window="day"))
    api.default = Reply(body=CHAT["payload"])
    for _ in range(10):
        chat_openai.invoke("Hi")
    assert len(rec.events) == 10
    (status,) = [row for row in rec.meter.budget_status() if row.metric == "cost"]
    assert status.used == sum((event.cost for event in rec.events if event.cost is not None), Decimal(0))
    assert status.reserved == 0


def test_a_refused_invoke_sends_nothing(api: FakeAPI, rec: Recorded, chat_openai: Any) -> None:
    """A budget refusal reaches the caller through LangChain before any request is sent."""
    rec.meter.add_budget(meterline.Budget(max_requests=2))
    api.default = Reply(body=CHAT["payload"])
    chat_openai.invoke("Hi")
    chat_openai.invoke("Hi")
    with pytest.raises(meterline.BudgetExceeded):
        chat_openai.invoke("Hi")
    assert len(api.received) == 2


def test_stream_and_ainvoke(api: FakeAPI, rec: Recorded, chat_openai: Any) -> None:
    """A streamed call (usage asked for by stream_usage) and an async invoke are each one exact event."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])), Reply(body=CHAT["payload"]))
    assert list(chat_openai.stream("Hi"))

    async def ainvoke() -> None:
        await chat_openai.ainvoke("Hi")
        await chat_openai.root_async_client.close()

    asyncio.run(ainvoke())
    assert [event.usage for event in rec.events] == [usage_of(CHAT_STREAM), usage_of(CHAT)]


def test_chat_anthropic_invoke(api: FakeAPI, rec: Recorded) -> None:
    """ChatAnthropic on an instrumented client records Anthropic's usage of each call."""
    # Its HTTP client is LangChain's, shared by base URL: closing it here could close another
    # test's, should that test's server reuse this port.
    llm = langchain_anthropic.ChatAnthropic(
        model="claude-opus-4-7", base_url=api.url, api_key="k", max_retries=0
    )
    meterline.instrument(llm._client, rec.meter)
    api.script(Reply(body=MESSAGE["payload"]))
    llm.invoke("Hi")
    assert (rec.only.provider, rec.only.usage) == ("anthropic", usage_of(MESSAGE))
