"""The LangChain handler meters each chat model call once, exactly, in the caller's scopes, with budgets."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.langchain_models import chat_openai_of
from tests.instrument.server import FakeAPI, Reply, openai_sse, usage_of
from tests.integrations.bodies import CHAT, CHAT_CACHED, CHAT_STREAM, MESSAGE, chat_tool_call

langchain_openai = pytest.importorskip("langchain_openai")
langchain_anthropic = pytest.importorskip("langchain_anthropic")
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

from meterline.integrations.langchain import (  # noqa: E402
    AsyncMeterlineCallbackHandler,
    MeterlineCallbackHandler,
    metered,
)


@pytest.fixture
def llm(api: FakeAPI) -> Iterator[Any]:
    """A plain ChatOpenAI of the local server (nothing instrumented)."""
    model = chat_openai_of(api.url, model="gpt-4o")
    yield model
    model.root_client.close()


def test_a_model_handler_records_the_providers_usage(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Per model: invoke is one event with OpenAI's own usage block, the served and requested model."""
    api.script(Reply(body=CHAT_CACHED["payload"]))
    model = llm.model_copy(update={"callbacks": [MeterlineCallbackHandler(rec.meter)]})
    with rec.meter.scope(user="u1", session="s1"):
        message = model.invoke("Hi")
    event = rec.only
    assert event.usage == usage_of(CHAT_CACHED)
    assert (event.provider, event.model, event.request_model) == ("openai", "gpt-4o-2024-08-06", "gpt-4o")
    assert (event.dimensions["user"], event.dimensions["session"], event.status) == ("u1", "s1", "ok")
    # The response id, where LangChain keeps it (langchain-openai 0.3.0 drops it).
    assert event.response_id == message.response_metadata.get("id")
    assert event.cost is not None
    assert event.latency_ms is not None


def test_per_call_and_per_chain_handlers_record_once(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """A handler on the chain and another on the model see one call: one event."""
    api.default = Reply(body=CHAT["payload"])
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | llm.model_copy(
        update={"callbacks": [MeterlineCallbackHandler(rec.meter, tags={"feature": "qa"})]}
    )
    chain.invoke({"question": "Capital?"}, config={"callbacks": [MeterlineCallbackHandler(rec.meter)]})
    llm.invoke("Hi", config={"callbacks": [MeterlineCallbackHandler(rec.meter)]})
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2
    assert len(api.received) == 2


def test_metered_streams_ask_for_usage(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """metered() turns stream_usage on: a streamed call is one event with the stream's exact usage."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    model = metered(llm, rec.meter)
    assert model.stream_usage is True
    assert type(model) is type(llm)
    assert "".join(str(chunk.content) for chunk in model.stream("Hi"))
    assert rec.only.usage == usage_of(CHAT_STREAM)
    assert api.received[0].body["stream_options"] == {"include_usage": True}


def test_a_stream_without_usage_is_unmeasured_and_said_once(
    api: FakeAPI, rec: Recorded, llm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream whose usage was not asked for is recorded unmeasured (never free), with one warning."""
    chunks = [chunk for chunk in copy.deepcopy(CHAT_STREAM["chunks"]) if chunk.get("choices")]
    api.default = Reply(events=openai_sse(chunks))
    model = llm.model_copy(update={"callbacks": [MeterlineCallbackHandler(rec.meter)], "stream_usage": False})
    for _ in range(2):
        list(model.stream("Hi"))
    assert [event.usage for event in rec.events] == [None, None]
    assert rec.meter.totals().unmeasured == 2
    assert sum("stream_usage=True" in message for message in caplog.messages) == 1


def test_async_handler_keeps_each_tasks_scope(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Concurrent ainvoke tasks: each event lands in its own task's scope."""
    api.default = Reply(body=CHAT["payload"])
    model = llm.model_copy(update={"callbacks": [AsyncMeterlineCallbackHandler(rec.meter)]})

    async def ask(user: str) -> None:
        with rec.meter.scope(user=user):
            await model.ainvoke("Hi")

    async def run() -> None:
        await asyncio.gather(*(ask(f"u{i}") for i in range(6)))
        await llm.root_async_client.close()

    asyncio.run(run())
    assert sorted(event.dimensions["user"] for event in rec.events) == [f"u{i}" for i in range(6)]
    assert all(event.usage == usage_of(CHAT) for event in rec.events)


def test_astream(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """An async stream is one exact event."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    model = metered(llm, rec.meter)

    async def run() -> None:
        async for _chunk in model.astream("Hi"):
            pass
        await llm.root_async_client.close()

    asyncio.run(run())
    assert rec.only.usage == usage_of(CHAT_STREAM)


def test_batch_on_langchains_threads_keeps_the_callers_scope(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """batch() runs calls on LangChain's thread pool: every event carries the caller's scope."""
    api.default = Reply(body=CHAT["payload"])
    model = metered(llm, rec.meter)
    with rec.meter.scope(user="u7"):
        model.batch(["a", "b", "c", "d"], config={"max_concurrency": 4})
    assert [event.dimensions["user"] for event in rec.events] == ["u7"] * 4


def test_scopes_of_callers_on_two_threads(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Two application threads with their own scopes share one metered model: no event crosses over."""
    api.default = Reply(body=CHAT["payload"])
    model = metered(llm, rec.meter)

    def work(user: str) -> None:
        with rec.meter.scope(user=user):
            for _ in range(3):
                model.invoke("Hi")

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(event.dimensions["user"] for event in rec.events) == ["t0"] * 3 + ["t1"] * 3


def test_tool_calling_run_records_each_model_call(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """A tool-calling loop (tool call, tool result, answer) is two events, one per model call."""

    @tool
    def capital(country: str) -> str:
        """The capital of a country."""
        return "Canberra"

    api.script(Reply(body=chat_tool_call("capital", {"country": "Australia"})), Reply(body=CHAT["payload"]))
    model = metered(llm, rec.meter).bind_tools([capital])
    messages: list[Any] = [HumanMessage("Capital of Australia?")]
    with rec.meter.scope(agent="geo"):
        reply = model.invoke(messages)
        messages.append(reply)
        messages += [
            ToolMessage(capital.invoke(call["args"]), tool_call_id=call["id"]) for call in reply.tool_calls
        ]
        model.invoke(messages)
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2
    assert {event.dimensions["agent"] for event in rec.events} == {"geo"}


def test_a_refusal_reaches_the_caller_before_the_request(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """Over budget, invoke raises BudgetExceeded and the server never sees the request."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    model = metered(llm, rec.meter)
    model.invoke("Hi")
    with pytest.raises(meterline.BudgetExceeded):
        model.invoke("Hi")
    with pytest.raises(meterline.BudgetExceeded):
        asyncio.run(model.ainvoke("Hi"))
    assert len(api.received) == 1
    assert len(rec.events) == 1


def test_a_failed_call_is_recorded_and_holds_nothing(api: FakeAPI, rec: Recorded, llm: Any) -> None:
    """A provider error raised through LangChain is one error event, and its reservation is gone."""
    rec.meter.add_budget(meterline.Budget(max_cost="1.00", window="day"))
    api.script(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    model = metered(llm, rec.meter)
    with pytest.raises(Exception, match="boom"):
        model.invoke("Hi")
    assert rec.only.status == "500"
    assert all(status.reserved == 0 for status in rec.meter.budget_status())


def test_chat_anthropic_keeps_cache_writes_by_lifetime(api: FakeAPI, rec: Recorded) -> None:
    """ChatAnthropic: Anthropic's usage block, 1-hour and 5-minute cache writes apart."""
    api.script(Reply(body=MESSAGE["payload"]))
    model = langchain_anthropic.ChatAnthropic(
        model="claude-opus-4-1", base_url=api.url, api_key="k", max_retries=0, max_tokens=512
    )
    metered(model, rec.meter).invoke("Hi")
    event = rec.only
    assert event.usage == usage_of(MESSAGE)
    assert event.usage.cache_write_1h_tokens == 3200
    assert (event.provider, event.model) == ("anthropic", MESSAGE["model"])


def test_bad_arguments_are_refused() -> None:
    """A meter that is not a Meter, a bad tag, or a non-model is refused with a clear error."""
    with pytest.raises(meterline.ConfigurationError, match="meter="):
        MeterlineCallbackHandler(meter="m")  # type: ignore[arg-type]
    with pytest.raises(meterline.ConfigurationError):
        MeterlineCallbackHandler(tags={"": "x"})
    with pytest.raises(meterline.ConfigurationError, match="LangChain chat model"):
        metered(object())
