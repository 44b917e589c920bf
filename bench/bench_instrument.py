"""What ``meterline.instrument(client)`` adds to an SDK call: instrumented against plain.

Run from the project root, with the SDKs installed (``make install``):

    .venv/bin/python bench/bench_instrument.py            # in-process transport
    .venv/bin/python bench/bench_instrument.py --server   # the tests' HTTP server, over loopback

By default both clients get an ``httpx.MockTransport`` that answers every request in-process
with the bytes the tests' server would send (the same fixture body, or the same SSE frames):
the SDK still builds, sends and parses real HTTP messages, and the figure is all client CPU,
so meterline's share is measured to within a few microseconds. With ``--server`` the clients
talk to the scripted HTTP server of tests/instrument (127.0.0.1, keep-alive) in a child
process; the loopback round trip adds a few hundred noisy microseconds. Each round
times ``BENCH_N`` calls of the plain client and of the instrumented one (alternating which
goes first), and the figures are the medians over ``BENCH_ROUNDS`` rounds, in microseconds
per call. "overhead" is the median of the rounds' paired differences, which cancels most of
the machine's drift.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import anthropic  # noqa: E402
import openai  # noqa: E402
from tests.instrument.server import Reply, event_sse, fixture, openai_sse, serve  # noqa: E402

import meterline  # noqa: E402

httpx: Any = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
"""The SDKs' HTTP library: ``httpx2`` from openai 3 and anthropic 2 on, ``httpx`` before."""

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
NUMBER = int(os.environ.get("BENCH_N", "300"))
WARMUP = 20
MESSAGES: Any = [{"role": "user", "content": "Hi"}]

Call = Callable[[Any], object]


def _drain(stream: Any) -> object:
    for _chunk in stream:
        pass
    return stream


CASES: list[tuple[str, str, Reply, Call]] = [
    (
        "openai chat.completions.create",
        "openai",
        Reply(body=fixture("openai/chat_plain")["payload"]),
        lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
    ),
    (
        "openai chat.completions.create(stream=True)",
        "openai",
        Reply(events=openai_sse(fixture("openai/chat_stream_include_usage")["chunks"])),
        lambda c: _drain(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)),
    ),
    (
        "openai chat.completions.with_raw_response.create",
        "openai",
        Reply(body=fixture("openai/chat_plain")["payload"]),
        lambda c: c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse(),
    ),
    (
        "openai chat.completions.with_raw_response.create(stream=True)",
        "openai",
        Reply(events=openai_sse(fixture("openai/chat_stream_include_usage")["chunks"])),
        lambda c: _drain(
            c.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            ).parse()
        ),
    ),
    (
        "anthropic messages.create",
        "anthropic",
        Reply(body=fixture("anthropic/message_plain")["payload"]),
        lambda c: c.messages.create(model="claude-opus-4-7", max_tokens=100, messages=MESSAGES),
    ),
    (
        "anthropic messages.create(stream=True)",
        "anthropic",
        Reply(events=event_sse(fixture("anthropic/stream_delta_output_only")["chunks"])),
        lambda c: _drain(
            c.messages.create(model="claude-opus-4-7", max_tokens=100, messages=MESSAGES, stream=True)
        ),
    ),
    (
        "anthropic messages.with_raw_response.create(stream=True)",
        "anthropic",
        Reply(events=event_sse(fixture("anthropic/stream_delta_output_only")["chunks"])),
        lambda c: _drain(
            c.messages.with_raw_response.create(
                model="claude-opus-4-7", max_tokens=100, messages=MESSAGES, stream=True
            ).parse()
        ),
    ),
]
"""(label, SDK, the server's answer, one call)."""


def _serve(reply: Reply, urls: Any) -> None:
    """The child process: the test server, answering ``reply`` to every request."""
    _server, api = serve()
    api.default = reply
    urls.put(api.url)
    threading.Event().wait()


def _transport(reply: Reply) -> Any:
    """Answers every request in-process as the tests' server does (same status, body, frames)."""

    def handle(request: Any) -> Any:
        request.read()
        if reply.events is None:
            return httpx.Response(reply.status, json=reply.body)
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(reply.status, headers=headers, stream=httpx.ByteStream(b"".join(reply.events)))

    return httpx.MockTransport(handle)


def _client(sdk: str, url: str, reply: Reply | None) -> Any:
    http_client = None if reply is None else httpx.Client(transport=_transport(reply))
    if sdk == "openai":
        return openai.OpenAI(api_key="k", base_url=f"{url}/v1", max_retries=0, http_client=http_client)
    return anthropic.Anthropic(api_key="k", base_url=url, max_retries=0, http_client=http_client)


def _per_call_us(call: Call, client: Any) -> float:
    start = time.perf_counter_ns()
    for _ in range(NUMBER):
        call(client)
    return (time.perf_counter_ns() - start) / NUMBER / 1e3


def measure(url: str, sdk: str, call: Call, reply: Reply | None) -> tuple[float, float, float]:
    """(plain, instrumented, overhead): medians over the rounds, µs per call.

    ``reply`` is the in-process transport's answer; ``None`` to talk to the server at ``url``.
    """
    meter = meterline.Meter()
    with (
        _client(sdk, url, reply) as plain,
        meterline.instrument(_client(sdk, url, reply), meter) as metered,
    ):
        for _ in range(WARMUP):
            call(plain)
            call(metered)
        plain_us: list[float] = []
        metered_us: list[float] = []
        for round_ in range(ROUNDS):
            if round_ % 2:
                metered_us.append(_per_call_us(call, metered))
                plain_us.append(_per_call_us(call, plain))
            else:
                plain_us.append(_per_call_us(call, plain))
                metered_us.append(_per_call_us(call, metered))
    recorded = meter.totals().requests
    assert recorded == WARMUP + ROUNDS * NUMBER, recorded
    overhead = statistics.median(m - p for m, p in zip(metered_us, plain_us, strict=True))
    return statistics.median(plain_us), statistics.median(metered_us), overhead


def main() -> None:
    """Print one row per call: plain and instrumented µs per call, and the difference."""
    warnings.simplefilter("ignore", meterline.UnpricedModelWarning)
    over_http = "--server" in sys.argv[1:]
    print(
        f"openai {openai.__version__}, anthropic {anthropic.__version__}, "
        f"Python {sys.version.split()[0]}; {ROUNDS} rounds x {NUMBER} calls, medians in µs per call, "
        + ("HTTP server on 127.0.0.1" if over_http else "in-process transport")
    )
    print(f"{'call (sync)':<46}{'plain':>9}{'instrumented':>14}{'overhead':>10}{'%':>7}")
    spawn = multiprocessing.get_context("spawn")
    for label, sdk, reply, call in CASES:
        if not over_http:
            plain, metered, overhead = measure("http://meterline.invalid", sdk, call, reply)
            print(f"{label:<46}{plain:>9.1f}{metered:>14.1f}{overhead:>+10.1f}{overhead / plain:>+7.1%}")
            continue
        urls = spawn.Queue()
        server = spawn.Process(target=_serve, args=(reply, urls), daemon=True)
        server.start()
        try:
            plain, metered, overhead = measure(urls.get(timeout=30), sdk, call, None)
        finally:
            server.terminate()
            server.join()
        print(f"{label:<46}{plain:>9.1f}{metered:>14.1f}{overhead:>+10.1f}{overhead / plain:>+7.1%}")


if __name__ == "__main__":
    main()
