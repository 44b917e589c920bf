"""The LiteLLM logger records each call once, exactly, in its caller's scopes; the wrappers refuse."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import meterline
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, openai_sse, usage_of
from tests.integrations.bodies import CHAT, CHAT_CACHED, CHAT_STREAM, MESSAGE, chat_tool_call

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price map fetched from GitHub
litellm = pytest.importorskip("litellm")
from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402

from meterline.integrations import litellm as metered  # noqa: E402

# LiteLLM runs a sync call's async handlers on event loops of its own and leaves them to the
# collector (an unclosed loop and its sockets): a warning about LiteLLM, not meterline.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)
"""LiteLLM's global lists a logger is copied into."""

MESSAGES = [{"role": "user", "content": "Capital of Australia?"}]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for LiteLLM's logging threads and tasks (they run after the call returns)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for LiteLLM's logging"
        time.sleep(0.01)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """`wait_for` inside an event loop: LiteLLM's async logging runs as tasks of the caller's loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for LiteLLM's logging"
        await asyncio.sleep(0.01)


@pytest.fixture
def logger(rec: Recorded) -> Iterator[metered.MeterlineLogger]:
    """A MeterlineLogger in litellm.callbacks for the test, taken out of every LiteLLM list after it."""
    handler = metered.MeterlineLogger(rec.meter)
    litellm.callbacks.append(handler)
    yield handler
    remove_loggers()


def remove_loggers() -> None:
    """Take every MeterlineLogger out of LiteLLM's global callback lists."""
    for name in CALLBACK_LISTS:
        callbacks = getattr(litellm, name, None)
        if isinstance(callbacks, list):
            callbacks[:] = [
                callback for callback in callbacks if not isinstance(callback, metered.MeterlineLogger)
            ]


def openai_args(api: FakeAPI, **extra: Any) -> dict[str, Any]:
    """Arguments of a LiteLLM call to the local server as an OpenAI endpoint."""
    return {
        "model": "openai/gpt-4o",
        "messages": MESSAGES,
        "api_base": f"{api.url}/v1",
        "api_key": "k",
        **extra,
    }


def test_a_completion_is_one_exact_event_in_the_callers_scope(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """LiteLLM logs on its own thread; the event still carries the caller's scope and the provider's usage."""
    api.script(Reply(body=CHAT_CACHED["payload"]))
    with rec.meter.scope(user="u1"):
        litellm.completion(**openai_args(api))
    wait_for(lambda: len(rec.events) == 1)
    event = rec.only
    assert event.usage == usage_of(CHAT_CACHED)
    assert (event.provider, event.model, event.dimensions["user"]) == ("openai", "gpt-4o-2024-08-06", "u1")
    assert event.cost is not None


def test_a_stream_is_recorded_once_when_it_ends(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """A stream is one event with its final usage, however many handlers LiteLLM runs."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))
    stream = litellm.completion(**openai_args(api, stream=True, stream_options={"include_usage": True}))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    wait_for(lambda: len(rec.events) == 1)
    time.sleep(0.2)  # a second handler, if LiteLLM ran one, has had its chance
    assert rec.only.usage == usage_of(CHAT_STREAM)


def test_async_calls_keep_each_tasks_scope(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """Concurrent acompletion tasks (plain and streamed): one event each, in its task's scope."""
    api.default = Reply(body=CHAT["payload"])

    async def ask(user: str) -> None:
        with rec.meter.scope(user=user):
            await litellm.acompletion(**openai_args(api))

    async def run() -> None:
        await asyncio.gather(*(ask(f"u{i}") for i in range(4)))
        await until(lambda: len(rec.events) == 4)
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert sorted(event.dimensions["user"] for event in rec.events) == ["u0", "u1", "u2", "u3"]
    assert all(event.usage == usage_of(CHAT) for event in rec.events)


def test_anthropic_through_litellm_keeps_cache_writes(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """Anthropic through LiteLLM: its OpenAI-shaped usage read back to Anthropic's counts and bill."""
    api.script(Reply(body=MESSAGE["payload"]))
    litellm.completion(model="anthropic/claude-opus-4-1", messages=MESSAGES, api_base=api.url, api_key="k")
    wait_for(lambda: len(rec.events) == 1)
    event = rec.only
    assert event.usage == usage_of(MESSAGE)
    assert (event.provider, event.model) == ("anthropic", MESSAGE["model"])


def test_the_wrapper_refuses_before_litellm_sends(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """metered.completion / acompletion raise BudgetExceeded over budget; the server never sees the call."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    metered.completion(**openai_args(api), meter=rec.meter)
    with pytest.raises(meterline.BudgetExceeded):
        metered.completion(**openai_args(api), meter=rec.meter)
    with pytest.raises(meterline.BudgetExceeded):
        asyncio.run(metered.acompletion(**openai_args(api), meter=rec.meter))
    wait_for(lambda: len(rec.events) == 1)
    assert len(api.received) == 1
    assert all(status.reserved == 0 for status in rec.meter.budget_status())


def test_the_wrapper_registers_a_logger_and_settles(api: FakeAPI, rec: Recorded) -> None:
    """With no logger registered, the wrapper adds one; the reservation is settled by the call's cost."""
    remove_loggers()
    try:
        rec.meter.add_budget(meterline.Budget(max_cost="1.00", window="day"))
        api.script(Reply(body=CHAT["payload"]))
        metered.completion(**openai_args(api), meter=rec.meter)
        wait_for(lambda: len(rec.events) == 1)
        assert any(isinstance(callback, metered.MeterlineLogger) for callback in litellm.callbacks)
        (status,) = rec.meter.budget_status()
        assert (status.used, status.reserved) == (rec.only.cost, 0)
    finally:
        remove_loggers()


def test_a_failed_call_is_recorded_and_holds_nothing(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """A provider error is one error event; the reservation is not left held."""
    rec.meter.add_budget(meterline.Budget(max_cost="1.00", window="day"))
    api.script(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    with pytest.raises(Exception, match="boom"):
        metered.completion(**openai_args(api, num_retries=0), meter=rec.meter)
    wait_for(lambda: len(rec.events) == 1)
    time.sleep(0.2)
    assert rec.only.status == "500"
    assert all(status.reserved == 0 for status in rec.meter.budget_status())


def test_the_proxy_hook_budgets_by_key_team_and_user(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """The proxy's pre-call hook reserves in the key's dimensions; over budget it refuses with 429."""
    rec.meter.add_budget(meterline.Budget(per=("team",), max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    auth = UserAPIKeyAuth(
        token="hashed-token", key_alias="ci-key", team_id="t1", user_id="u1", end_user_id="e1"
    )

    async def request() -> None:
        data = await logger.async_pre_call_hook(auth, None, openai_args(api), "acompletion")
        await litellm.acompletion(**data)
        await until(lambda: len(rec.events) == 1)

    asyncio.run(request())
    dims = rec.only.dimensions
    assert (dims["team"], dims["user"], dims["end_user"], dims["api_key"]) == ("t1", "u1", "e1", "ci-key")
    with pytest.raises(Exception) as refused:  # fastapi's HTTPException, or BudgetExceeded without it
        asyncio.run(request())
    assert getattr(refused.value, "status_code", 429) == 429
    assert isinstance(refused.value, meterline.BudgetExceeded) or "budget" in str(refused.value).lower()
    assert len(api.received) == 1


def test_calls_on_two_threads(api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger) -> None:
    """Application threads with their own scopes: every event lands in its thread's scope."""
    api.default = Reply(body=CHAT["payload"])

    def work(user: str) -> None:
        with rec.meter.scope(user=user):
            for _ in range(3):
                litellm.completion(**openai_args(api))

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: len(rec.events) == 6)
    assert sorted(event.dimensions["user"] for event in rec.events) == ["t0"] * 3 + ["t1"] * 3


def test_an_async_stream_is_recorded_once(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """acompletion(stream=True) is one event with the stream's final usage, in the task's scope."""
    api.script(Reply(events=openai_sse(CHAT_STREAM["chunks"])))

    async def main() -> None:
        with rec.meter.scope(user="u9"):
            stream = await litellm.acompletion(
                **openai_args(api, stream=True, stream_options={"include_usage": True})
            )
            async for _chunk in stream:
                pass
        await until(lambda: len(rec.events) == 1)
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert (rec.only.usage, rec.only.dimensions["user"]) == (usage_of(CHAT_STREAM), "u9")


def test_a_tool_calling_loop_records_each_call(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """A tool call and the answer after it are two model calls: two events."""
    api.script(Reply(body=chat_tool_call("capital", {"country": "Australia"})), Reply(body=CHAT["payload"]))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "capital",
                "description": "The capital of a country.",
                "parameters": {"type": "object", "properties": {"country": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = list(MESSAGES)
    first = litellm.completion(**{**openai_args(api, tools=tools), "messages": messages})
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": call.id, "content": "Canberra"},
    ]
    litellm.completion(**{**openai_args(api, tools=tools), "messages": messages})
    wait_for(lambda: len(rec.events) == 2)
    assert [event.usage for event in rec.events] == [usage_of(CHAT)] * 2


def test_calls_past_a_budget_made_without_the_wrapper_are_still_recorded(
    api: FakeAPI, rec: Recorded, logger: metered.MeterlineLogger
) -> None:
    """LiteLLM's completion() is not refused by a logger: past the budget it is still recorded and charged."""
    rec.meter.add_budget(meterline.Budget(max_requests=1))
    api.default = Reply(body=CHAT["payload"])
    for _ in range(3):
        litellm.completion(**openai_args(api))
    wait_for(lambda: len(rec.events) == 3)
    (status,) = rec.meter.budget_status()
    assert (status.used, status.reserved) == (3, 0)
