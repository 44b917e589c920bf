"""instrument()/uninstrument() themselves: idempotence, restoring, versions, budgets, scopes, safety."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import logging
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import meterline
from meterline._instrument import _anthropic, _google, _openai
from tests.instrument.conftest import Recorded
from tests.instrument.server import FakeAPI, Reply, fixture

CHAT = fixture("openai/chat_plain")
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


_opened: list[openai.OpenAI] = []


def sdk_client(api: FakeAPI) -> openai.OpenAI:
    """An uninstrumented client of the local server (closed when the test ends)."""
    client = openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0)
    _opened.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the test's clients: a pool left to the collector warns of its unclosed sockets."""
    yield
    while _opened:
        _opened.pop().close()


def test_instrument_twice_counts_once(api: FakeAPI, rec: Recorded) -> None:
    """Instrumenting a client twice records each call once."""
    client = meterline.instrument(meterline.instrument(sdk_client(api), rec.meter), rec.meter)
    api.script(Reply(body=CHAT["payload"]))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(rec.events) == 1


def test_uninstrument_restores_the_client(api: FakeAPI, rec: Recorded) -> None:
    """After uninstrument() the client's methods are its own again and nothing is recorded."""
    client = sdk_client(api)
    completions = client.chat.completions
    meterline.instrument(client, rec.meter)
    assert "create" in vars(completions)
    assert meterline.uninstrument(client) is True
    assert "create" not in vars(completions)
    assert meterline.uninstrument(client) is False
    api.script(Reply(body=CHAT["payload"]))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert rec.events == []


def test_default_meter_is_looked_up_per_call(api: FakeAPI) -> None:
    """Without a meter, calls go to the process-wide default meter of the moment."""
    client = meterline.instrument(sdk_client(api))
    meter = meterline.configure(meter=meterline.Meter())
    api.script(Reply(body=CHAT["payload"]))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert meter.totals().requests == 1


def test_unsupported_client() -> None:
    """Anything but a supported SDK client is refused with an error naming it."""
    with pytest.raises(meterline.UnsupportedSDKError, match=r"builtins\.object"):
        meterline.instrument(object())


def test_bad_meter(api: FakeAPI) -> None:
    """A meter that is not a Meter is refused."""
    with pytest.raises(meterline.ConfigurationError, match=r"meter="):
        meterline.instrument(sdk_client(api), meter="m")  # type: ignore[arg-type]


def test_old_sdk_is_refused(api: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK older than the extra's floor is refused, naming both versions and the fix."""
    from meterline import _extras

    _extras.check_version.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "1.2.0")
    try:
        with pytest.raises(meterline.UnsupportedSDKError, match=r"openai 1\.2\.0 is older than 1\.55\.3"):
            meterline.instrument(sdk_client(api))
    finally:
        _extras.check_version.cache_clear()


def test_floors_match_the_extras() -> None:
    """The versions instrument() checks are the extras' minimum versions in pyproject.toml."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    for extra, dist, floor in (
        ("openai", "openai", _openai.MIN_VERSION),
        ("anthropic", "anthropic", _anthropic.MIN_VERSION),
        ("google", "google-genai", _google.MIN_VERSION),
    ):
        assert extras[extra] == [f"{dist}>={'.'.join(map(str, floor))}"]


def test_budget_refusal_sends_nothing(api: FakeAPI) -> None:
    """A call over budget raises BudgetExceeded and no request reaches the server."""
    meter = meterline.Meter(budgets=[meterline.Budget(max_tokens=50)])
    client = meterline.instrument(sdk_client(api), meter)
    with pytest.raises(meterline.BudgetExceeded):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)
    assert api.received == []


def test_budget_is_settled_by_the_call(api: FakeAPI) -> None:
    """A call within budget is reserved, sent, and settled with its actual usage."""
    meter = meterline.Meter(budgets=[meterline.Budget(max_tokens=1000)])
    client = meterline.instrument(sdk_client(api), meter)
    api.script(Reply(body=CHAT["payload"]))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)
    (status,) = meter.budget_status()
    assert status.used == meterline.Usage.from_dict(CHAT["expected"]).total_tokens
    assert status.reserved == 0


def test_threads_in_separate_scopes(api: FakeAPI, rec: Recorded) -> None:
    """Concurrent calls from threads are each attributed to their own thread's scope."""
    api.default = Reply(body=CHAT["payload"])
    client = meterline.instrument(sdk_client(api), rec.meter)

    def work(user: str) -> None:
        with rec.meter.scope(user=user):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    threads = [threading.Thread(target=work, args=(f"u{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_user = rec.meter.totals(by=("user",))
    assert {key: totals.requests for key, totals in by_user.items()} == {(f"u{i}",): 3 for i in range(4)}


def test_tasks_in_separate_scopes(api: FakeAPI, rec: Recorded) -> None:
    """Concurrent asyncio tasks' streams are attributed to the scope of the task that opened them."""
    chunks = fixture("openai/chat_stream_include_usage")["chunks"]
    from tests.instrument.server import openai_sse

    api.default = Reply(events=openai_sse(chunks))

    async def main() -> None:
        async with meterline.instrument(
            openai.AsyncOpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0), rec.meter
        ) as client:

            async def work(user: str) -> None:
                with rec.meter.scope(user=user):
                    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
                # Read outside the scope, in another context: still attributed to the call's scope.
                await asyncio.create_task(drain(stream), context=contextvars.Context())

            async def drain(stream: object) -> None:
                async for _chunk in stream:  # type: ignore[attr-defined]
                    pass

            await asyncio.gather(*(work(f"u{i}") for i in range(4)))

    asyncio.run(main())
    assert sorted(event.dimensions["user"] for event in rec.events) == ["u0", "u1", "u2", "u3"]
    assert all(event.usage is not None for event in rec.events)


def test_a_malformed_response_never_breaks_the_call(api: FakeAPI, caplog: pytest.LogCaptureFixture) -> None:
    """Usage meterline cannot read is logged and counted; the user still gets the SDK's response."""
    meter = meterline.Meter()
    client = meterline.instrument(sdk_client(api), meter)
    body = fixture("malformed/openai_negative_prompt_tokens")["payload"]
    api.script(Reply(body=body))
    with caplog.at_level(logging.ERROR, logger="meterline"):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.id == body["id"]
    assert meter.stats().machinery_errors == 1
    assert meter.totals().unmeasured == 1
    assert "instrumentation" in caplog.text


def test_raw_response_wrappers_follow_instrument_and_uninstrument(api: FakeAPI, rec: Recorded) -> None:
    """with_raw_response wrappers built before instrument() meter, and stop metering after uninstrument()."""
    client = sdk_client(api)
    raw = client.chat.completions.with_raw_response  # built (and cached) before instrument()
    # Newer openai caches the client's own wrapper (rebuilt on demand); older ones build it
    # once in __init__, out of reach: only the resources' wrappers are checked there.
    whole = "with_raw_response" in vars(type(client))
    if whole:
        assert client.with_raw_response.chat.completions is not None
    meterline.instrument(client, rec.meter)
    api.default = Reply(body=CHAT["payload"])
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    if whole:
        client.with_raw_response.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(rec.events) == (2 if whole else 1)
    meterline.uninstrument(client)
    raw.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    if whole:
        client.with_raw_response.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES):
        pass
    assert len(rec.events) == (2 if whole else 1)
