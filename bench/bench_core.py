"""Benchmarks of meterline's core paths, with the targets of the core issue.

Run from the project root (``make bench`` runs it too):

    .venv/bin/python bench/bench_core.py

Figures are microseconds per call (the median of several rounds of a tight loop), except
the import cost, which is seconds over a bare interpreter (median of fresh processes).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
import timeit
from datetime import UTC, datetime
from decimal import Decimal

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))

import meterline
from meterline import Meter, Usage
from meterline._money import to_usd

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
NUMBER = int(os.environ.get("BENCH_N", "20000"))

OPENAI_CHAT = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_50cad350e4",
}
ANTHROPIC = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 2048,
        "cache_read_input_tokens": 8192,
        "cache_creation": {"ephemeral_5m_input_tokens": 2048, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}
GEMINI = {
    "candidates": [
        {"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    ],
    "usageMetadata": {
        "promptTokenCount": 20,
        "candidatesTokenCount": 151,
        "totalTokenCount": 553,
        "thoughtsTokenCount": 382,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 20}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mKdvaJ2bOs6s1MkPqJ7x8Ac",
}


def per_call(stmt: str, namespace: dict[str, object], number: int = NUMBER) -> float:
    """Median microseconds per call of ``stmt`` over ROUNDS rounds."""
    times = timeit.repeat(stmt, globals=namespace, number=number, repeat=ROUNDS)
    return statistics.median(times) / number * 1e6


def import_cost() -> float:
    """Seconds ``import meterline`` adds over a bare interpreter (median of fresh processes)."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath("src")}

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - start

    bare = statistics.median(run("pass") for _ in range(ROUNDS))
    loaded = statistics.median(run("import meterline") for _ in range(ROUNDS))
    return loaded - bare


def main() -> int:
    """Run every benchmark, print a table, and exit non-zero when a target is missed."""
    meter = Meter()
    usage = Usage(input_tokens=1200, cache_read_tokens=100, output_tokens=300)
    meter.record(usage, model="gpt-4o", provider="openai")
    now_ns = time.time_ns()
    at = datetime.now(tz=UTC)
    pricer = meter.pricer
    pricer.cost(usage, "openai", "gpt-4o", at=at)  # the first lookup resolves and compiles
    plan = pricer.resolve("openai", "gpt-4o").plan_at(now_ns)
    assert plan is not None
    namespace: dict[str, object] = {
        "meterline": meterline,
        "meter": meter,
        "usage": usage,
        "pricer": pricer,
        "plan": plan,
        "now_ns": now_ns,
        "at": at,
        "OPENAI_CHAT": OPENAI_CHAT,
        "ANTHROPIC": ANTHROPIC,
        "GEMINI": GEMINI,
        "Decimal": Decimal,
        "to_usd": to_usd,
    }
    scoped = Meter()
    scoped.subscribe(lambda event: None)
    scoped.record(usage, model="gpt-4o-mini", provider="openai")
    namespace["scoped"] = scoped

    rows: list[tuple[str, float, float | None]] = []

    def add(name: str, value: float, target: float | None = None) -> None:
        rows.append((name, value, target))

    add("usage_from(OpenAI chat dict)", per_call("meterline.usage_from(OPENAI_CHAT)", namespace), 5.0)
    add("usage_from(Anthropic dict)", per_call("meterline.usage_from(ANTHROPIC)", namespace), 5.0)
    add("usage_from(Gemini dict)", per_call("meterline.usage_from(GEMINI)", namespace), 5.0)
    add(
        "price a known model (record path)",
        per_call(
            "p = pricer.resolve('openai', 'gpt-4o').plan_at(now_ns); to_usd(p.cost_pico(usage))",
            namespace,
        ),
        5.0,
    )
    add(
        "Pricer.cost(usage, ..., at=) (public)",
        per_call("pricer.cost(usage, 'openai', 'gpt-4o', at=at)", namespace),
    )
    add(
        "record(Usage), no scope",
        per_call("meter.record(usage, model='gpt-4o', provider='openai', latency_ms=812.0)", namespace),
    )
    add(
        "record(OpenAI chat dict), no scope", per_call("meter.record(OPENAI_CHAT, model='gpt-4o')", namespace)
    )
    with scoped.scope(org="org-1"), scoped.scope(session="thread-1"), scoped.scope(agent="agent-1"):
        add(
            "record(Usage), 3 scopes + subscriber",
            per_call(
                "scoped.record(usage, model='gpt-4o-mini', provider='openai', latency_ms=850.0)", namespace
            ),
        )
        add(
            "a step: scope entered, record(Usage), left",
            per_call(
                "with scoped.scope(step='plan'):\n"
                "    scoped.record(usage, model='gpt-4o-mini', provider='openai', latency_ms=850.0)",
                namespace,
            ),
        )
        add(
            "record(Usage) with tags, 3 scopes",
            per_call(
                "scoped.record(usage, model='gpt-4o-mini', provider='openai', tags={'feature': 'search'})",
                namespace,
            ),
        )
    # A new row each call: a session's id among its tags, outside any scope (a gateway's way).
    namespace["tagged"] = Meter(max_live_keys=10 * NUMBER * ROUNDS)
    namespace["sessions"] = itertools.count()
    add(
        "record(Usage) with a new session tag each call",
        per_call(
            "tagged.record(usage, model='gpt-4o', provider='openai',"
            " tags={'user': 'u1', 'session': f's{next(sessions)}'})",
            namespace,
        ),
    )
    add(
        "record_tool(...)",
        per_call("meter.record_tool('web_search', category='retrieval', duration_ms=5.0)", namespace),
    )
    imported = import_cost()

    failed = False
    print(f"{'benchmark':44} {'value':>10}  target")
    for name, value, target in rows:
        verdict = "" if target is None else ("ok" if value <= target else "MISSED")
        failed |= verdict == "MISSED"
        shown = "" if target is None else f"<= {target:g} us  {verdict}"
        print(f"{name:44} {value:8.2f} us  {shown}")
    verdict = "ok" if imported <= 0.3 else "MISSED"
    failed |= verdict == "MISSED"
    print(f"{'import meterline (over a bare interpreter)':44} {imported:8.3f} s   <= 0.3 s  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
