"""MeteredModel meters every request of a pydantic-ai run, for any model class, with budgets."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, event_sse, fixture, openai_sse, usage_of
from tests.integrations.bodies import CHAT, CHAT_CACHED, CHAT_STREAM, MESSAGE, RESPONSES, chat_tool_call

pydantic_ai = pytest.importorskip("pydantic_ai")
from pydantic_ai.models.anthropic import AnthropicModel  # noqa: E402
from pydantic_ai.models.google import GoogleModel  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel  # noqa: E402
from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: E402
from pydantic_ai.providers.google import GoogleProvider  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

from meterline.integrations.pydantic_ai import MeteredModel, metered  # noqa: E402

GEMINI = fixture("gcp.gemini/generate_thinking")


def openai_chat(api: FakeAPI, name: str = "gpt-4o") -> Any:
    """pydantic-ai's OpenAI chat model on the local server."""
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=f"{api.url}/v1", api_key="k"))


def anthropic_provider(api: FakeAPI) -> Any:
    """pydantic-ai's Anthropic provider on the local server (its client closed with the agent)."""
    return AnthropicProvider(base_url=api.url, api_key="k")


def run(agent: Any, prompt: str = "Hi") -> Any:
    """Run ``agent`` once inside its own context (which closes the model's HTTP client)."""

    async def main() -> Any:
        async with agent:
            return await agent.run(prompt)

    return asyncio.run(main())


def test_a_run_is_one_exact_event_in_the_callers_scope(api: FakeAPI, rec: Recorded) -> None:
    """OpenAI chat: the request's usage (cache reads apart), served model, response id and scope."""
    api.script(Reply(body=CHAT_CACHED["payload"]))
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))
    with rec.meter.scope(user="u1"):
        run(agent)
    event = rec.only
    assert event.usage == usage_of(CHAT_CACHED)
    assert (event.provider, event.model, event.request_model) == ("openai", "gpt-4o-2024-08-06", "gpt-4o")
    assert (event.dimensions["user"], event.response_id) == ("u1", CHAT_CACHED["payload"]["id"])


def test_each_model_class(api: FakeAPI, rec: Recorded) -> None:
    """OpenAI Responses, Anthropic and Google models, wrapped alike, each record their provider's usage."""
    api.script(
        Reply(body=RESPONSES["payload"]), Reply(body=MESSAGE["payload"]), Reply(body=GEMINI["payload"])
    )
    models: list[Any] = [
        OpenAIResponsesModel("o4-mini", provider=OpenAIProvider(base_url=f"{api.url}/v1", api_key="k")),
        AnthropicModel("claude-opus-4-1", provider=anthropic_provider(api)),
        GoogleModel("gemini-2.5-flash", provider=GoogleProvider(base_url=api.url, api_key="k")),
    ]
    for model in models:
        run(pydantic_ai.Agent(MeteredModel(model, rec.meter)))
    assert [(event.provider, event.usage) for event in rec.events] == [
        ("openai", usage_of(RESPONSES)),
        ("anthropic", usage_of(MESSAGE)),
        ("gcp.gemini", usage_of(GEMINI)),
    ]


def test_a_tool_calling_run_records_every_request(api: FakeAPI, rec: Recorded) -> None:
    """A run that calls a tool makes two requests: two events, one per request."""
    api.script(Reply(body=chat_tool_call("capital", {"country": "Australia"})), Reply(body=CHAT["payload"]))
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter, tags={"agent": "geo"}))

    @agent.tool_plain
    def capital(country: str) -> str:
        """The capital of a country."""
        return "Canberra"

    run(agent, "Capital of Australia?")
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2
    assert {event.dimensions["agent"] for event in rec.events} == {"geo"}
    assert len(api.received) == 2


def test_streamed_runs(api: FakeAPI, rec: Recorded) -> None:
    """run_stream is one event with the stream's usage, recorded when the stream closes."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))

    async def main() -> None:
        async with agent, agent.run_stream("Hi") as result:
            assert await result.get_output()

    asyncio.run(main())
    assert rec.only.usage == usage_of(CHAT_STREAM)
    assert api.received[0].body["stream_options"] == {"include_usage": True}


def test_concurrent_runs_keep_their_scopes(api: FakeAPI, rec: Recorded) -> None:
    """Runs on concurrent tasks: each event in its task's scope."""
    api.default = Reply(body=CHAT["payload"])
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))

    async def ask(user: str) -> None:
        with rec.meter.scope(user=user):
            await agent.run("Hi")

    async def main() -> None:
        async with agent:
            await asyncio.gather(*(ask(f"u{i}") for i in range(5)))

    asyncio.run(main())
    assert sorted(event.dimensions["user"] for event in rec.events) == [f"u{i}" for i in range(5)]


def test_a_refusal_is_raised_before_the_request(api: FakeAPI, rec: Recorded) -> None:
    """Over budget, agent.run raises BudgetExceeded and the server never sees the request."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))
    run(agent)
    with pytest.raises(meterline.BudgetExceeded):
        run(agent)
    assert len(api.received) == 1


def test_a_failed_request_is_recorded_and_holds_nothing(api: FakeAPI, rec: Recorded) -> None:
    """A provider error out of a run is one error event; the budget holds nothing afterwards."""
    rec.meter.add_budget(meterline.Budget(max_cost="1.00", window="day"))
    api.script(Reply(status=400, body={"error": {"message": "bad request", "type": "invalid_request_error"}}))
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))
    with pytest.raises(Exception, match="bad request"):
        run(agent)
    assert rec.only.status == "400"
    assert all(status.reserved == 0 for status in rec.meter.budget_status())


def test_a_stream_cut_by_the_network_is_not_exact(api: FakeAPI, rec: Recorded) -> None:
    """A stream dropped before its usage is recorded unmeasured, and the error reaches the caller."""
    chunks = copy.deepcopy(CHAT_STREAM["chunks"])
    api.script(Reply(events=openai_sse(chunks), drop_after=2))
    agent = pydantic_ai.Agent(metered(openai_chat(api), rec.meter))

    async def main() -> None:
        async with agent, agent.run_stream("Hi") as result:
            await result.get_output()

    with pytest.raises(Exception):  # noqa: B017 - whatever the HTTP stack raises for a cut body
        asyncio.run(main())
    assert rec.only.usage is None


def test_bad_arguments_are_refused() -> None:
    """A meter that is not a Meter, or a bad tag, is refused when the model is wrapped."""
    with pytest.raises(meterline.ConfigurationError, match="meter="):
        MeteredModel("test", meter="m")  # type: ignore[arg-type]
    with pytest.raises(meterline.ConfigurationError):
        metered("test", tags={"": "x"})


def test_event_stream_fixture_for_anthropic(api: FakeAPI, rec: Recorded) -> None:
    """Anthropic streamed through run_stream: the stream's input and cache counts."""
    stream = fixture("anthropic/stream_delta_output_only")
    api.script(Reply(events=event_sse(stream["chunks"])))
    model = AnthropicModel("claude-opus-4-7", provider=anthropic_provider(api))
    agent = pydantic_ai.Agent(metered(model, rec.meter))

    async def main() -> None:
        async with agent, agent.run_stream("Hi") as result:
            await result.get_output()

    asyncio.run(main())
    assert rec.only.usage == usage_of(stream)
