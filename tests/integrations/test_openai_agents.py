"""MeteredModelProvider meters every model call of an Agents SDK run, both APIs, streamed or not."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import openai
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, openai_sse, usage_of
from tests.integrations.bodies import CHAT, CHAT_STREAM, RESPONSES, RESPONSES_STREAM, chat_tool_call

agents = pytest.importorskip("agents")
from agents.models.openai_provider import OpenAIProvider  # noqa: E402

from meterline.integrations.openai_agents import MeteredModel, MeteredModelProvider  # noqa: E402


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    """The SDK's trace export off (it would post to OpenAI)."""
    agents.set_tracing_disabled(True)


def run(api: FakeAPI, rec: Recorded, agent: Any, *, chat: bool = False, stream: bool = False) -> Any:
    """Run ``agent`` once on the local server with a metered model provider."""

    async def main() -> Any:
        async with openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as client:
            provider = MeteredModelProvider(
                OpenAIProvider(openai_client=client, use_responses=not chat), rec.meter
            )
            config = agents.RunConfig(model_provider=provider)
            if not stream:
                return await agents.Runner.run(agent, "Hi", run_config=config)
            streamed = agents.Runner.run_streamed(agent, "Hi", run_config=config)
            async for _event in streamed.stream_events():
                pass
            return streamed

    return asyncio.run(main())


def test_a_responses_run_is_one_exact_event(api: FakeAPI, rec: Recorded) -> None:
    """Responses API, not streamed: the call's usage (reasoning apart), response id and scope."""
    api.script(Reply(body=RESPONSES["payload"]))
    with rec.meter.scope(user="u1"):
        run(api, rec, agents.Agent(name="a", model="o4-mini"))
    event = rec.only
    assert event.usage == usage_of(RESPONSES)
    assert (event.provider, event.model, event.dimensions["user"]) == ("openai", "o4-mini", "u1")
    assert event.response_id == RESPONSES["payload"]["id"]


def test_a_streamed_responses_run(api: FakeAPI, rec: Recorded) -> None:
    """Responses API, streamed: the usage of the response.completed event, and the served model."""
    api.script(Reply(events=event_sse(RESPONSES_STREAM["chunks"])))
    run(api, rec, agents.Agent(name="a", model="gpt-4.1-mini"), stream=True)
    assert rec.only.usage == usage_of(RESPONSES_STREAM)
    assert rec.only.model == RESPONSES_STREAM["model"]


def test_chat_completions_runs(api: FakeAPI, rec: Recorded) -> None:
    """Chat Completions, plain and streamed: each one exact event."""
    api.script(Reply(body=CHAT["payload"]), Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    agent = agents.Agent(name="a", model="gpt-4o")
    run(api, rec, agent, chat=True)
    run(api, rec, agent, chat=True, stream=True)
    assert [event.usage for event in rec.events] == [usage_of(CHAT), usage_of(CHAT_STREAM)]


def test_a_tool_calling_run_records_every_model_call(api: FakeAPI, rec: Recorded) -> None:
    """A run that calls a tool makes two model calls: two events."""

    @agents.function_tool
    def capital(country: str) -> str:
        """The capital of a country."""
        return "Canberra"

    api.script(Reply(body=chat_tool_call("capital", {"country": "Australia"})), Reply(body=CHAT["payload"]))
    run(api, rec, agents.Agent(name="geo", model="gpt-4o", tools=[capital]), chat=True)
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2
    assert len(api.received) == 2


def test_a_model_object_wrapped_directly(api: FakeAPI, rec: Recorded) -> None:
    """An agent holding a model object is metered by wrapping that object."""
    api.script(Reply(body=CHAT["payload"]))

    async def main() -> None:
        async with openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as client:
            model = MeteredModel(
                agents.OpenAIChatCompletionsModel("gpt-4o", client), rec.meter, tags={"agent": "a"}
            )
            await agents.Runner.run(agents.Agent(name="a", model=model), "Hi")

    asyncio.run(main())
    assert (rec.only.usage, rec.only.model, rec.only.dimensions["agent"]) == (usage_of(CHAT), "gpt-4o", "a")


def test_a_refusal_is_raised_before_the_request(api: FakeAPI, rec: Recorded) -> None:
    """Over budget, Runner.run raises BudgetExceeded and the server never sees the request."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=RESPONSES["payload"])
    agent = agents.Agent(name="a", model="o4-mini")
    run(api, rec, agent)
    with pytest.raises(meterline.BudgetExceeded):
        run(api, rec, agent)
    with pytest.raises(meterline.BudgetExceeded):
        run(api, rec, agent, stream=True)
    assert len(api.received) == 1


def test_a_failed_call_is_recorded_and_holds_nothing(api: FakeAPI, rec: Recorded) -> None:
    """A provider error out of a run is one error event; the budget holds nothing afterwards."""
    rec.meter.add_budget(meterline.Budget(max_cost="1.00", window="day"))
    api.script(Reply(status=400, body={"error": {"message": "bad request", "type": "invalid_request_error"}}))
    with pytest.raises(openai.BadRequestError):
        run(api, rec, agents.Agent(name="a", model="o4-mini"))
    assert rec.only.status == "400"
    assert all(status.reserved == 0 for status in rec.meter.budget_status())


def test_a_stream_without_its_completed_event_is_unmeasured(api: FakeAPI, rec: Recorded) -> None:
    """A streamed Responses call that ends without response.completed is recorded unmeasured, never exact."""
    chunks = [
        chunk for chunk in copy.deepcopy(RESPONSES_STREAM["chunks"]) if chunk["type"] != "response.completed"
    ]
    api.script(Reply(events=event_sse(chunks)))
    with contextlib.suppress(Exception):  # the SDK may call a stream without its end an error
        run(api, rec, agents.Agent(name="a", model="gpt-4.1-mini"), stream=True)
    assert rec.only.usage is None


def test_concurrent_runs_keep_their_scopes(api: FakeAPI, rec: Recorded) -> None:
    """Runs on concurrent tasks: each event in its task's scope."""
    api.default = Reply(body=RESPONSES["payload"])
    agent = agents.Agent(name="a", model="o4-mini")

    async def main() -> None:
        async with openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as client:
            config = agents.RunConfig(
                model_provider=MeteredModelProvider(OpenAIProvider(openai_client=client), rec.meter)
            )

            async def ask(user: str) -> None:
                with rec.meter.scope(user=user):
                    await agents.Runner.run(agent, "Hi", run_config=config)

            await asyncio.gather(*(ask(f"u{i}") for i in range(4)))

    asyncio.run(main())
    assert sorted(event.dimensions["user"] for event in rec.events) == ["u0", "u1", "u2", "u3"]
