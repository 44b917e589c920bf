"""What each framework integration adds to a model call: metered against plain, per framework.

Run from the project root, with the frameworks installed (``make install``):

    .venv/bin/python bench/bench_integrations.py

Each framework's OpenAI client gets an in-process ``MockTransport`` answering every request
with the tests' fixture body (``tests/fixtures/openai/chat_plain``), so the framework still
builds, sends and parses real HTTP messages, and the figure is client CPU only (no loopback
noise). The plain setup and the metered one (the integration's one line, a meter with one
budget so every call reserves and settles) alternate over ``BENCH_ROUNDS`` rounds of
``BENCH_N`` calls; the figures are medians in microseconds per call, and "added" is the median
of the rounds' paired differences. LiteLLM logs on its own threads after the call returns:
its row is the caller's time, and the run waits for every event before it ends.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import openai  # noqa: E402
from tests.instrument.server import fixture  # noqa: E402

import meterline  # noqa: E402

httpx: Any = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
"""The OpenAI SDK's HTTP library: ``httpx2`` from openai 3 on, ``httpx`` before."""

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
NUMBER = int(os.environ.get("BENCH_N", "100"))
WARMUP = 10
BODY = fixture("openai/chat_plain")["payload"]
URL = "http://meterline.invalid/v1"
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


def _transport() -> Any:
    def handle(request: Any) -> Any:
        request.read()
        return httpx.Response(200, json=BODY)

    return httpx.MockTransport(handle)


def _sync_client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="k", base_url=URL, max_retries=0, http_client=httpx.Client(transport=_transport())
    )


def _async_client() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="k", base_url=URL, max_retries=0, http_client=httpx.AsyncClient(transport=_transport())
    )


def _meter() -> meterline.Meter:
    meter = meterline.Meter()
    meter.add_budget(meterline.Budget(max_cost="1000000", window="day"))
    return meter


Setup = Callable[[meterline.Meter | None], Callable[[], object]]
"""Given a meter (``None``: plain), the call to time."""

_switch: dict[str, Callable[[bool], None]] = {}
"""Per framework with a process-wide hook (LiteLLM's callback list): turn the integration on or off."""


def langchain(meter: meterline.Meter | None) -> Callable[[], object]:
    from langchain_openai import ChatOpenAI

    from meterline.integrations.langchain import MeterlineCallbackHandler

    chat_openai: Any = ChatOpenAI
    callbacks = None if meter is None else [MeterlineCallbackHandler(meter)]
    llm = chat_openai(model="gpt-4o", api_key="k", base_url=URL, callbacks=callbacks)
    llm = llm.model_copy(update={"root_client": _sync_client()})
    llm.client = llm.root_client.chat.completions
    return lambda: llm.invoke("Hi")


def litellm(meter: meterline.Meter | None) -> Callable[[], object]:
    import litellm as sdk

    from meterline.integrations import litellm as metered

    client = _sync_client()
    if meter is None:
        return lambda: sdk.completion(model="openai/gpt-4o", messages=MESSAGES, client=client, api_key="k")
    logger = metered.MeterlineLogger(meter)

    def switch(on: bool) -> None:  # LiteLLM's loggers are global: the plain rounds run without it
        for name in ("callbacks", "success_callback", "_async_success_callback", "input_callback"):
            callbacks = getattr(sdk, name, None)
            if isinstance(callbacks, list):
                callbacks[:] = [
                    callback for callback in callbacks if not isinstance(callback, metered.MeterlineLogger)
                ]
        if on:
            time.sleep(0.5)  # the plain calls' logging threads finish without the logger
            sdk.callbacks.append(logger)

    _switch["litellm"] = switch
    return lambda: metered.completion(
        model="openai/gpt-4o", messages=MESSAGES, client=client, api_key="k", meter=meter
    )


def pydantic_ai(meter: meterline.Meter | None) -> Callable[[], object]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from meterline.integrations.pydantic_ai import MeteredModel

    model: Any = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=_async_client()))
    agent = Agent(model if meter is None else MeteredModel(model, meter))
    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(agent.run("Hi"))


def openai_agents(meter: meterline.Meter | None) -> Callable[[], object]:
    import agents
    from agents.models.openai_provider import OpenAIProvider

    from meterline.integrations.openai_agents import MeteredModelProvider

    agents.set_tracing_disabled(True)
    provider: Any = OpenAIProvider(openai_client=_async_client(), use_responses=False)
    config = agents.RunConfig(
        model_provider=provider if meter is None else MeteredModelProvider(provider, meter)
    )
    agent = agents.Agent(name="a", model="gpt-4o")
    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(agents.Runner.run(agent, "Hi", run_config=config))


CASES: tuple[tuple[str, Setup], ...] = (
    ("LangChain ChatOpenAI.invoke", langchain),
    ("LiteLLM completion", litellm),
    ("pydantic-ai Agent.run", pydantic_ai),
    ("OpenAI Agents SDK Runner.run (chat)", openai_agents),
)


def _per_call_us(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    for _ in range(NUMBER):
        call()
    return (time.perf_counter_ns() - start) / NUMBER / 1e3


def _always_on(on: bool) -> None:
    """No process-wide hook to switch: the plain and metered setups are separate objects."""


def _settled(meter: meterline.Meter, expected: int) -> None:
    """Wait until ``expected`` events are recorded (LiteLLM records on its own threads)."""
    deadline = time.monotonic() + 30
    while meter.totals().requests < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    recorded = meter.totals().requests
    assert recorded == expected, (recorded, expected)


def measure(name: str, setup: Setup) -> tuple[float, float, float]:
    """(plain, metered, added): medians over the rounds, µs per call."""
    meter = _meter()
    plain, metered = setup(None), setup(meter)
    switch = _switch.get(name, _always_on)
    switch(False)
    for _ in range(WARMUP):
        plain()
    switch(True)
    for _ in range(WARMUP):
        metered()
    expected = WARMUP
    _settled(meter, expected)
    plain_us: list[float] = []
    metered_us: list[float] = []
    for round_ in range(ROUNDS):
        pair = [(plain, plain_us, False), (metered, metered_us, True)]
        for call, into, on in pair if round_ % 2 == 0 else reversed(pair):
            switch(on)
            into.append(_per_call_us(call))
            if on:
                expected += NUMBER
                _settled(meter, expected)
    added = statistics.median(m - p for m, p in zip(metered_us, plain_us, strict=True))
    return statistics.median(plain_us), statistics.median(metered_us), added


def main() -> None:
    """Print one row per framework: plain and metered µs per call, and what the integration adds."""
    warnings.simplefilter("ignore")
    print(
        f"openai {openai.__version__}, Python {sys.version.split()[0]}; {ROUNDS} rounds x {NUMBER} calls, "
        "medians in µs per call, in-process transport, a meter with one cost budget"
    )
    print(f"{'call':<40}{'plain':>10}{'metered':>10}{'added':>10}{'%':>8}")
    for label, setup in CASES:
        plain, metered, added = measure(setup.__name__, setup)
        print(f"{label:<40}{plain:>10.1f}{metered:>10.1f}{added:>+10.1f}{added / plain:>+8.1%}")


if __name__ == "__main__":
    main()
