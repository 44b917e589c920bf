"""pydantic-ai and the OpenAI Agents SDK, given instrumented SDK clients, meter every model call of a run."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, fixture, usage_of

CHAT = fixture("openai/chat_plain")
RESPONSES = fixture("openai/responses_plain")
RESPONSES_STREAM = fixture("openai/responses_stream_completed")
MESSAGE_STREAM = fixture("anthropic/stream_delta_output_only")


def _async_openai(api: FakeAPI, rec: Recorded) -> openai.AsyncOpenAI:
    return meterline.instrument(
        openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
    )


def test_pydantic_ai_openai_chat_model(api: FakeAPI, rec: Recorded) -> None:
    """A pydantic-ai agent on an instrumented AsyncOpenAI records its model call with the exact usage."""
    models = pytest.importorskip("pydantic_ai.models.openai")
    providers = pytest.importorskip("pydantic_ai.providers.openai")
    pydantic_ai = pytest.importorskip("pydantic_ai")
    api.script(Reply(body=CHAT["payload"]))

    async def main() -> Any:
        async with _async_openai(api, rec) as client:
            model = models.OpenAIChatModel(
                "gpt-4o-mini", provider=providers.OpenAIProvider(openai_client=client)
            )
            return await pydantic_ai.Agent(model).run("Hi")

    result = asyncio.run(main())
    assert rec.only.usage == usage_of(CHAT)
    assert rec.only.usage.input_tokens == result.usage.input_tokens


def test_pydantic_ai_anthropic_model_goes_through_beta_messages(api: FakeAPI, rec: Recorded) -> None:
    """pydantic-ai's Anthropic model (client.beta.messages) is metered, and refused by a budget unsent."""
    models = pytest.importorskip("pydantic_ai.models.anthropic")
    providers = pytest.importorskip("pydantic_ai.providers.anthropic")
    pydantic_ai = pytest.importorskip("pydantic_ai")
    api.default = Reply(events=event_sse(MESSAGE_STREAM["chunks"]))

    async def main() -> None:
        async with meterline.instrument(
            anthropic.AsyncAnthropic(api_key="k", base_url=api.url, max_retries=0), rec.meter
        ) as client:
            provider = providers.AnthropicProvider(anthropic_client=client)
            agent = pydantic_ai.Agent(models.AnthropicModel("claude-opus-4-7", provider=provider))
            rec.meter.add_budget(meterline.Budget(max_requests=1))
            await agent.run("Hi")
            with pytest.raises(meterline.BudgetExceeded):
                await agent.run("Hi")

    asyncio.run(main())
    assert (rec.only.provider, rec.only.usage) == ("anthropic", usage_of(MESSAGE_STREAM))
    assert len(api.received) == 1


@pytest.fixture
def agents_sdk() -> Any:
    """The OpenAI Agents SDK, its tracing export off."""
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    return agents


def test_agents_sdk_runs(api: FakeAPI, rec: Recorded, agents_sdk: Any) -> None:
    """A run (the Responses API) and a streamed run are each one event with the exact usage."""
    api.script(Reply(body=RESPONSES["payload"]), Reply(events=event_sse(RESPONSES_STREAM["chunks"])))

    async def main() -> None:
        async with _async_openai(api, rec) as client:
            agents_sdk.set_default_openai_client(client, use_for_tracing=False)
            agent = agents_sdk.Agent(name="a", model="gpt-4o-mini")
            await agents_sdk.Runner.run(agent, "Hi")
            streamed = agents_sdk.Runner.run_streamed(agent, "Hi")
            async for _event in streamed.stream_events():
                pass

    asyncio.run(main())
    assert [(event.usage, event.status, event.request_model) for event in rec.events] == [
        (usage_of(RESPONSES), "ok", "gpt-4o-mini"),
        (usage_of(RESPONSES_STREAM), "ok", "gpt-4o-mini"),
    ]
