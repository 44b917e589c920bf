"""``meterline demo``: a simulated day of a small multi-agent product, metered end to end.

A research assistant serves three organisations. Every session runs three agents: a
*planner* (Anthropic Claude with a cached system prompt, or a self-hosted Ollama model that
has no price), a *researcher* (an application cache, OpenAI embeddings, a retrieval tool,
Gemini with thinking and a ``web_search`` tool) and a *writer* (OpenAI GPT-4o with prompt
caching and a ``code_exec`` tool, DeepSeek's reasoner for one organisation, and a streamed
GPT-4o mini answer; one of these streams ends without a usage record).

Every call is a realistic provider response body (token counts drawn from a seeded
``random.Random``, so a seed always gives the same report) fed to a `meterline.Meter` through
the public API only. The report is derived from ``meter.totals(by=...)`` and from the scopes'
own live totals, never from counters kept on the side.

Every model call is made under a reservation (`Meter.reserve`) against two budgets: each
org's daily spend, with soft alerts, and each session's tokens. At the end of the day a
runaway agent asks for a call far larger than its session has left, and is refused before
anything is sent.
"""

from __future__ import annotations as _annotations

import json
import random
import string
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import meterline
from meterline._cli_format import cost_places, format_cost, format_table, format_tokens

__all__ = ["DemoResult", "DemoRow", "render_report", "run_demo"]

# --------------------------------------------------------------------------------------------
# The simulated product

DAY_START: Final = 1_772_438_400
"""2026-03-02T08:00:00Z: when the simulated day starts (the ``created`` stamps of the bodies)."""
TOP_SESSIONS: Final = 8
"""Sessions shown in the report's session table."""
AGENTS: Final = ("planner", "researcher", "writer")
RESERVED_OUTPUT: Final = 2048
"""The ``max_output_tokens`` every simulated call reserves."""
RUNAWAY_OUTPUT: Final = 64_000
"""What the runaway call at the end of the day asks for."""


def demo_budgets() -> list[meterline.Budget]:
    """The budgets the demo enforces: each org's daily spend, and each session's tokens."""
    return [
        meterline.Budget(
            name="org daily spend",
            per=("org",),
            max_cost="1.00",
            window="day",
            alert_at=(0.25, 0.5),
            on_unpriced="fail_open",  # the self-hosted planner has no price: count no cost for it
        ),
        meterline.Budget(name="session tokens", per=("session",), max_tokens=100_000, alert_at=()),
    ]


@dataclass(frozen=True, slots=True)
class _Org:
    name: str
    users: tuple[str, ...]
    planner: str
    """``anthropic`` (Claude with a cached system prompt) or ``ollama`` (self-hosted, unpriced)."""
    researcher: str
    """The Gemini model the researcher thinks with."""
    verifier: bool
    """Whether the writer checks its draft with DeepSeek's reasoner."""
    system_prompt: int
    """Tokens of the planner's (cacheable) system prompt."""
    topics: tuple[str, ...]


_ORGS: Final = (
    _Org(
        "acme",
        ("alice", "bob"),
        planner="anthropic",
        researcher="gemini-2.5-flash",
        verifier=False,
        system_prompt=2_816,
        topics=("supplier contracts", "EU battery regulation", "warehouse robotics"),
    ),
    _Org(
        "globex",
        ("carol",),
        planner="anthropic",
        researcher="gemini-2.5-pro",
        verifier=True,
        system_prompt=3_904,
        topics=("bond ladder strategy", "Basel III endgame", "FX hedging costs"),
    ),
    _Org(
        "initech",
        ("dave",),
        planner="ollama",
        researcher="gemini-2.5-flash",
        verifier=False,
        system_prompt=1_450,
        topics=("TPS report automation", "legacy COBOL migration"),
    ),
)

_ALNUM: Final = string.ascii_letters + string.digits


class _Simulation:
    """Drives the simulated day: builds response bodies and records them on the meter."""

    def __init__(self, meter: meterline.Meter, rng: random.Random) -> None:
        self.meter = meter
        self.rng = rng
        self.clock = 0.0
        """Seconds since `DAY_START`."""
        self.events: list[meterline.UsageEvent] = []
        """Every event the meter returned, in order (for inspection; the report reads totals)."""
        self.requested: dict[str, set[str]] = {}
        """Served ``provider/model`` -> the model ids the application asked for."""
        self.research_cache: dict[tuple[str, str], int] = {}
        """The application's own cache of research briefs: (org, topic) -> tokens the brief cost."""

    # -- helpers --------------------------------------------------------------------------

    def ident(self, length: int) -> str:
        """A random identifier of ``length`` letters and digits (for response ids)."""
        return "".join(self.rng.choice(_ALNUM) for _ in range(length))

    def created(self) -> int:
        """The simulated Unix time, for the bodies' ``created`` stamps."""
        return DAY_START + int(self.clock)

    def latency(self, base_ms: float, per_output_token_ms: float, output_tokens: int) -> float:
        """A plausible latency (time to first token plus decoding, with jitter); advances the clock."""
        latency = round((base_ms + per_output_token_ms * output_tokens) * self.rng.uniform(0.85, 1.3), 1)
        self.clock += latency / 1000 + self.rng.uniform(0.2, 3.0)
        return latency

    def record(
        self,
        body: object,
        *,
        model: str,
        provider: str,
        latency_ms: float,
        operation: str = "chat",
        requested: str | None = None,
    ) -> meterline.UsageEvent:
        """Reserve, then record one model call (``body``: a response dict, a `Usage` or ``None``).

        The reservation counts the prompt as the application would before sending it (here,
        read back from the body) and `RESERVED_OUTPUT` tokens of output.
        """
        found = meterline.usage_from(body, provider=provider) if body is not None else None
        prompt = found.input_tokens if found is not None else 0
        with self.meter.reserve(
            model=model, provider=provider, input_tokens=prompt, max_output_tokens=RESERVED_OUTPUT
        ):
            event = self.meter.record(
                body, model=model, provider=provider, operation=operation, latency_ms=latency_ms
            )
        self.events.append(event)
        self.requested.setdefault(f"{event.provider}/{event.model}", set()).add(
            requested or event.request_model or model
        )
        return event

    def tool(
        self,
        name: str,
        category: str,
        duration_ms: float,
        llm_call: meterline.UsageEvent,
        failure_rate: float,
    ) -> None:
        """Record one tool run asked for by ``llm_call``; it fails with probability ``failure_rate``."""
        status = "error" if self.rng.random() < failure_rate else "success"
        self.events.append(
            self.meter.record_tool(
                name,
                category=category,
                status=status,
                duration_ms=round(duration_ms, 1),
                llm_call_id=llm_call.id,
            )
        )
        self.clock += duration_ms / 1000

    # -- the day --------------------------------------------------------------------------

    def run(self) -> dict[str, meterline.Totals]:
        """Simulate every org, user and session; return each org scope's totals."""
        roster = [(org, user, self.rng.randint(2, 4)) for org in _ORGS for user in org.users]
        # The one session whose final answer is streamed without usage.
        cut_stream = self.rng.randrange(sum(sessions for _, _, sessions in roster))
        by_org: dict[str, meterline.Totals] = {}
        index = 0
        for org in _ORGS:
            with self.meter.scope(org=org.name) as org_scope:
                for _, user, sessions in (entry for entry in roster if entry[0] is org):
                    with self.meter.scope(user=user):
                        for number in range(1, sessions + 1):
                            with self.meter.scope(session=f"{user}-{number:02d}"):
                                self.session(org, stream_usage=index != cut_stream)
                            index += 1
            by_org[org.name] = org_scope.totals
        return by_org

    def runaway(self) -> str:
        """An agent of the busiest session asks for a huge call; returns why it was refused."""
        busiest = max(
            self.meter.totals(by=("org", "user", "session")).items(),
            key=lambda item: item[1].usage.total_tokens,
        )[0]
        org, user, session = (value or "" for value in busiest)
        with self.meter.scope(org=org, user=user, session=session, agent="writer"):
            try:
                self.meter.reserve(
                    model="gpt-4o-mini",
                    provider="openai",
                    input_tokens=8_000,
                    max_output_tokens=RUNAWAY_OUTPUT,
                ).release()
            except meterline.BudgetExceeded as refused:
                return str(refused)
        return "nothing was refused"

    def session(self, org: _Org, *, stream_usage: bool) -> None:
        """One session: plan, research, write."""
        topic = self.rng.choice(org.topics)
        with self.meter.scope(agent="planner"):
            plan_tokens = self.plan(org)
        with self.meter.scope(agent="researcher"):
            brief_tokens = self.research(org, topic)
        with self.meter.scope(agent="writer"):
            self.write(org, plan_tokens + brief_tokens, stream_usage=stream_usage)

    def plan(self, org: _Org) -> int:
        """Plan the session in 1-3 turns; return the plan's size in tokens."""
        history = 0
        for turn in range(self.rng.randint(1, 3)):
            question = self.rng.randint(40, 420)
            output = self.rng.randint(120, 680)
            if org.planner == "ollama":
                latency = self.latency(180, 14.0, output)
                body = _ollama_chat(
                    self, "llama3.2:3b", org.system_prompt + history + question, output, latency
                )
                self.record(body, model="llama3.2:3b", provider="ollama", latency_ms=latency)
            else:
                # The first turn writes the system prompt to the cache (5 min TTL); later turns read it.
                write, read = (org.system_prompt, 0) if turn == 0 else (0, org.system_prompt)
                latency = self.latency(650, 16.0, output)
                body = _anthropic_message(
                    self, "claude-sonnet-4-5-20250929", history + question, write, read, output
                )
                self.record(body, model="claude-sonnet-4-5", provider="anthropic", latency_ms=latency)
            history += question + output
        return history

    def research(self, org: _Org, topic: str) -> int:
        """Research ``topic``, or serve the brief from the application's cache; return the brief's size."""
        saved = self.research_cache.get((org.name, topic))
        if saved is not None:
            self.events.append(self.meter.record_cache_hit(tokens_saved=saved))
            return self.rng.randint(350, 1_100)
        self.events.append(self.meter.record_cache_miss())

        # Embed the sub-questions, then look them up in the vector store.
        inputs = self.rng.randint(3, 8)
        tokens = sum(self.rng.randint(9, 48) for _ in range(inputs))
        latency = self.latency(60 + 6 * inputs, 0.0, 0)
        embedding = self.record(
            _openai_embeddings(self, "text-embedding-3-small", inputs, tokens),
            model="text-embedding-3-small",
            provider="openai",
            operation="embeddings",
            latency_ms=latency,
        )
        self.tool("retrieval", "retrieval", self.rng.uniform(12, 95), embedding, failure_rate=0.0)

        # Think, ask for a web search, then write the brief from the results.
        model = org.researcher
        slow = 2.2 if model.endswith("-pro") else 1.0
        prompt = self.rng.randint(1_800, 4_200)
        thoughts = self.rng.randint(150, 900)
        latency = self.latency(420 * slow, 6.0 * slow, thoughts + 38)
        ask = self.record(
            _gemini(self, model, prompt, 0, thoughts, 38, search=topic),
            model=model,
            provider="gemini",
            operation="generate_content",
            latency_ms=latency,
        )
        self.tool("web_search", "search", self.rng.uniform(350, 2_600), ask, failure_rate=0.12)
        results = self.rng.randint(2_500, 9_000)
        thoughts = self.rng.randint(400, 2_800)
        output = self.rng.randint(350, 1_100)
        # Gemini's implicit cache serves the repeated prefix of the first request.
        cached = (prompt // 1_024) * 1_024 if prompt >= 2_048 else 0
        latency = self.latency(600 * slow, 7.0 * slow, thoughts + output)
        brief = self.record(
            _gemini(self, model, prompt + 38 + results, cached, thoughts, output),
            model=model,
            provider="gemini",
            operation="generate_content",
            latency_ms=latency,
        )
        self.research_cache[org.name, topic] = sum(
            e.usage.total_tokens for e in (ask, brief) if e.usage is not None
        )
        return output

    def write(self, org: _Org, context: int, *, stream_usage: bool) -> None:
        """Draft with GPT-4o (and code_exec), verify with DeepSeek's reasoner, stream the answer."""
        prefix = 1_640 + context  # the writer's instructions, then the plan and the brief
        history = 0
        for turn in range(self.rng.randint(1, 3)):
            prompt = prefix + history + self.rng.randint(30, 220)
            # OpenAI caches a repeated prefix of 1,024+ tokens in steps of 128.
            cached = 0 if turn == 0 or prefix < 1_024 else 1_024 + (prefix - 1_024) // 128 * 128
            wants_code = self.rng.random() < 0.35
            output = self.rng.randint(40, 130) if wants_code else self.rng.randint(300, 1_200)
            latency = self.latency(380, 11.0, output)
            body = _openai_chat(
                self, "gpt-4o-2024-08-06", prompt, output, cached, "code_exec" if wants_code else None
            )
            draft = self.record(body, model="gpt-4o", provider="openai", latency_ms=latency)
            if wants_code:
                self.tool("code_exec", "code", self.rng.uniform(180, 4_200), draft, failure_rate=0.3)
            history += output

        if org.verifier:
            prompt = prefix + history + self.rng.randint(60, 200)
            reasoning = self.rng.randint(700, 4_000)
            output = reasoning + self.rng.randint(80, 420)
            latency = self.latency(1_400, 21.0, output)
            body = _deepseek_reasoner(self, prompt, prefix // 64 * 64, output, reasoning)
            self.record(body, model="deepseek-reasoner", provider="deepseek", latency_ms=latency)

        prompt = prefix + history + self.rng.randint(40, 160)
        output = self.rng.randint(220, 760)
        latency = self.latency(260, 7.5, output)
        chunks = _openai_stream(self, "gpt-4o-mini-2024-07-18", prompt, output, include_usage=stream_usage)
        if stream_usage:
            stream = meterline.StreamAccumulator("openai")
            for chunk in chunks:
                stream.add(chunk)
            served = stream.model or "gpt-4o-mini"
            self.record(
                stream.usage, model=served, provider="openai", latency_ms=latency, requested="gpt-4o-mini"
            )
        else:
            # Requested without stream_options.include_usage: the stream never says what it used.
            usage = meterline.usage_from_stream(chunks, provider="openai")
            self.record(usage, model="gpt-4o-mini", provider="openai", latency_ms=latency)


# --------------------------------------------------------------------------------------------
# Response bodies (shaped like the providers' own, trimmed of long content)


def _openai_usage(prompt: int, output: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_chat(
    sim: _Simulation, model: str, prompt: int, output: int, cached: int, tool: str | None
) -> dict[str, Any]:
    """An OpenAI chat completion (``POST /v1/chat/completions``)."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if tool is None:
        message["content"] = "Here is the revised section, with the figures from the brief cited inline..."
    else:
        arguments = json.dumps(
            {"language": "python", "code": "import pandas as pd\nprint(pd.read_csv('q3.csv').describe())"}
        )
        message["tool_calls"] = [
            {
                "id": f"call_{sim.ident(24)}",
                "type": "function",
                "function": {"name": tool, "arguments": arguments},
            }
        ]
    return {
        "id": f"chatcmpl-{sim.ident(29)}",
        "object": "chat.completion",
        "created": sim.created(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop" if tool is None else "tool_calls",
            }
        ],
        "usage": _openai_usage(prompt, output, cached),
        "service_tier": "default",
        "system_fingerprint": "fp_f33640a400",
    }


def _openai_stream(
    sim: _Simulation, model: str, prompt: int, output: int, *, include_usage: bool
) -> list[dict[str, Any]]:
    """The chunks of a streamed OpenAI chat completion, with a usage chunk only when asked for."""
    stream_id = f"chatcmpl-{sim.ident(29)}"
    created = sim.created()
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        *(({"content": text}, None) for text in ("Here is", " your", " summary", ":", " ...")),
        ({}, "stop"),
    ]
    chunks: list[dict[str, Any]] = []
    for delta, finish in deltas:
        chunk: dict[str, Any] = {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_f33640a400",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            chunk["usage"] = None
        chunks.append(chunk)
    if include_usage:
        chunks.append({**chunks[-1], "choices": [], "usage": _openai_usage(prompt, output)})
    return chunks


def _openai_embeddings(sim: _Simulation, model: str, inputs: int, tokens: int) -> dict[str, Any]:
    """An OpenAI embeddings response (vectors trimmed to four dimensions)."""
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(sim.rng.uniform(-0.6, 0.6), 4) for _ in range(4)],
            }
            for i in range(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _anthropic_message(
    sim: _Simulation, model: str, uncached: int, cache_write: int, cache_read: int, output: int
) -> dict[str, Any]:
    """An Anthropic Messages response; ``input_tokens`` excludes cache reads and writes."""
    return {
        "id": f"msg_01{sim.ident(22)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "Plan: 1. scope the question 2. research 3. draft", "citations": None}
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": uncached,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output,
            "service_tier": "standard",
        },
    }


def _gemini(
    sim: _Simulation,
    model: str,
    prompt: int,
    cached: int,
    thoughts: int,
    candidates: int,
    search: str | None = None,
) -> dict[str, Any]:
    """A Gemini ``generateContent`` response; ``candidatesTokenCount`` excludes the thoughts."""
    part: dict[str, Any] = (
        {"text": "Brief: three sources agree that..."}
        if search is None
        else {"functionCall": {"name": "web_search", "args": {"query": search}}}
    )
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "thoughtsTokenCount": thoughts,
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return {
        "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": sim.ident(23),
    }


def _deepseek_reasoner(
    sim: _Simulation, prompt: int, cache_hit: int, output: int, reasoning: int
) -> dict[str, Any]:
    """A DeepSeek reasoner response: reasoning tokens are part of ``completion_tokens``."""
    raw = f"{sim.rng.getrandbits(128):032x}"
    return {
        "id": f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}",
        "object": "chat.completion",
        "created": sim.created(),
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The draft's figures are consistent with the sources.",
                    "reasoning_content": "Check each figure against the brief...",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": cache_hit},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
            "prompt_cache_hit_tokens": cache_hit,
            "prompt_cache_miss_tokens": prompt - cache_hit,
        },
        "system_fingerprint": "fp_393bca965e_prod0425fp8",
    }


def _ollama_chat(sim: _Simulation, model: str, prompt: int, output: int, latency_ms: float) -> dict[str, Any]:
    """The final line of an Ollama ``/api/chat`` response (durations in nanoseconds)."""
    total = int(latency_ms * 1_000_000)
    prompt_ns = total // 8
    return {
        "model": model,
        "created_at": datetime.fromtimestamp(DAY_START + sim.clock, tz=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "message": {"role": "assistant", "content": "1. Clarify the report format. 2. Research. 3. Draft."},
        "done_reason": "stop",
        "done": True,
        "total_duration": total,
        "load_duration": 1_334_875,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": prompt_ns,
        "eval_count": output,
        "eval_duration": total - prompt_ns - 1_334_875,
    }


# --------------------------------------------------------------------------------------------
# The result and its report


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoRow:
    """One row of a report table: the values of its dimensions and their totals."""

    labels: Mapping[str, str | None]
    """Dimension name -> value, e.g. ``{"user": "alice"}``."""
    totals: meterline.Totals
    """Everything recorded with those values."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (money as a decimal string)."""
        t = self.totals
        return {
            **self.labels,
            "events": t.events,
            "requests": t.requests,
            "input_tokens": t.usage.input_tokens,
            "output_tokens": t.usage.output_tokens,
            "total_tokens": t.usage.total_tokens,
            "cost": str(t.cost),
            "unmeasured": t.unmeasured,
            "unpriced": t.unpriced,
            "tool_calls": t.tool_calls,
            "tool_failures": t.tool_failures,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What `run_demo` metered, as tables derived from the meter's totals, and the report."""

    seed: int
    """The random seed of the simulation."""
    totals: meterline.Totals
    """Everything the meter recorded."""
    by_org: tuple[DemoRow, ...]
    """Per organisation, from each org scope's own live totals, by cost (descending)."""
    by_user: tuple[DemoRow, ...]
    """Per (org, user), from ``meter.totals(by=("org", "user"))``, by cost."""
    by_session: tuple[DemoRow, ...]
    """Per (user, session), every session, by cost (the report shows the first `TOP_SESSIONS`)."""
    by_agent: tuple[DemoRow, ...]
    """Per agent, by cost."""
    by_model: tuple[DemoRow, ...]
    """Per served (provider, model), model calls only, by cost."""
    by_tool: tuple[DemoRow, ...]
    """Per (tool, tool category), by calls."""
    requested_models: Mapping[str, tuple[str, ...]]
    """Served ``provider/model`` -> the model ids the application asked for."""
    unpriced_models: tuple[tuple[str | None, str], ...]
    """(provider, model) pairs that had no price (from `Meter.stats`)."""
    warnings: tuple[str, ...]
    """The `UnpricedModelWarning` messages caught while the demo ran."""
    price_version: str
    """The price data the costs come from."""
    budgets: tuple[meterline.BudgetStatus, ...] = ()
    """Where every budget and key stood at the end of the day (`Meter.budget_status`)."""
    alerts: tuple[meterline.BudgetAlert, ...] = ()
    """The soft thresholds crossed during the day, in order."""
    refused: str = ""
    """Why the runaway call at the end of the day was refused (the `BudgetExceeded` message)."""
    text: str = ""
    """The rendered report."""
    events: tuple[meterline.UsageEvent, ...] = field(default=(), repr=False, compare=False)
    """Every event, in order (ids and times differ between runs; the tables do not)."""
    meter: meterline.Meter | None = field(default=None, repr=False, compare=False)
    """The meter, to explore further (``result.meter.totals(by=...)``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of everything but the events and the meter.

        Event ids are left out (they differ from run to run; ``linked_calls`` counts the links),
        so one seed always gives the same dict.
        """
        totals = self.totals.to_dict()
        for group in ("tools", "tool_categories"):
            for stats in totals[group].values():
                del stats["llm_call_ids"]
        return {
            "seed": self.seed,
            "price_version": self.price_version,
            "totals": totals,
            "by_org": [row.to_dict() for row in self.by_org],
            "by_user": [row.to_dict() for row in self.by_user],
            "by_session": [row.to_dict() for row in self.by_session],
            "by_agent": [row.to_dict() for row in self.by_agent],
            "by_model": [
                {**row.to_dict(), "requested": list(self.requested_models.get(_model_key(row), ()))}
                for row in self.by_model
            ],
            "by_tool": [{**row.labels, **_tool_summary(row)} for row in self.by_tool],
            "cache": {
                "hits": self.totals.cache_hits,
                "misses": self.totals.cache_misses,
                "tokens_saved": self.totals.cache_tokens_saved,
                "provider_cache_read_tokens": self.totals.usage.cache_read_tokens,
                "provider_cache_write_tokens": self.totals.usage.cache_write_tokens,
            },
            "unpriced_models": [{"provider": p, "model": m} for p, m in self.unpriced_models],
            "warnings": list(self.warnings),
            "budgets": [
                {
                    "budget": row.budget,
                    "key": dict(row.key),
                    "metric": row.metric,
                    "limit": str(row.limit),
                    "used": str(row.used),
                    "remaining": str(row.remaining),
                }
                for row in self.budgets
            ],
            "alerts": [
                {"budget": a.budget, "key": dict(a.key), "threshold": a.threshold, "used": str(a.used)}
                for a in self.alerts
            ],
            "refused": self.refused,
        }


def _model_key(row: DemoRow) -> str:
    return f"{row.labels.get('provider')}/{row.labels.get('model')}"


def _tool_summary(row: DemoRow) -> dict[str, Any]:
    stats = row.totals.tools.get(row.labels.get("tool") or "", meterline.ToolStats())
    return {
        "calls": stats.calls,
        "failures": stats.failures,
        "duration_ms": stats.duration_ms,
        "mean_duration_ms": stats.duration_ms / stats.calls if stats.calls else None,
        "linked_calls": stats.linked_calls,
    }


def _by_cost(rows: Iterable[DemoRow]) -> tuple[DemoRow, ...]:
    return tuple(
        sorted(
            rows,
            key=lambda r: (
                -r.totals.cost,
                -r.totals.usage.total_tokens,
                tuple(v or "" for v in r.labels.values()),
            ),
        )
    )


def _rows(
    meter: meterline.Meter, by: tuple[str, ...], keep: Callable[[meterline.Totals], bool] | None = None
) -> tuple[DemoRow, ...]:
    groups = meter.totals(by=by)
    rows = (
        DemoRow(labels=MappingProxyType(dict(zip(by, key, strict=True))), totals=t)
        for key, t in groups.items()
    )
    return _by_cost(row for row in rows if keep is None or keep(row.totals))


def run_demo(seed: int = 7, ledger: str | None = None) -> DemoResult:
    """Meter a simulated day of a small multi-agent product and build its report.

    Args:
        seed: Seeds the simulation's token counts, latencies, cache hits and failures; the same
            seed always gives the same tables and report.
        ledger: A ledger URL to write every event to (flushed and closed before returning).

    Returns:
        The totals, the per-dimension tables, the rendered report and the events.
    """
    meter = meterline.Meter(ledger, budgets=demo_budgets())
    alerts: list[meterline.BudgetAlert] = []
    meter.subscribe(
        lambda item: alerts.append(item) if isinstance(item, meterline.BudgetAlert) else None, alerts=True
    )
    sim = _Simulation(meter, random.Random(seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", meterline.UnpricedModelWarning)
        org_totals = sim.run()
        refused = sim.runaway()
    budgets = tuple(meter.budget_status())
    meter.close()
    unpriced_warnings: list[str] = []
    for warning in caught:
        if issubclass(warning.category, meterline.UnpricedModelWarning):
            unpriced_warnings.append(str(warning.message))
        else:  # not ours to swallow
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    result = DemoResult(
        seed=seed,
        totals=meter.totals(),
        by_org=_by_cost(
            DemoRow(labels=MappingProxyType({"org": name}), totals=t) for name, t in org_totals.items()
        ),
        by_user=_rows(meter, ("org", "user")),
        by_session=_rows(meter, ("user", "session")),
        by_agent=_rows(meter, ("agent",)),
        by_model=_rows(meter, ("provider", "model"), keep=lambda t: t.requests > 0),
        by_tool=tuple(
            sorted(
                _rows(meter, ("tool", "tool_category"), keep=lambda t: t.tool_calls > 0),
                key=lambda r: (-r.totals.tool_calls, r.labels["tool"] or ""),
            )
        ),
        requested_models=MappingProxyType({k: tuple(sorted(v)) for k, v in sorted(sim.requested.items())}),
        unpriced_models=meter.stats().unpriced_models,
        warnings=tuple(unpriced_warnings),
        price_version=meter.pricer.version,
        budgets=budgets,
        alerts=tuple(alerts),
        refused=refused,
        events=tuple(sim.events),
        meter=meter,
    )
    return replace(result, text=render_report(result))


_Metric = Callable[[meterline.Totals], str]

_METRICS: Final[Mapping[str, _Metric]] = {
    "calls": lambda t: f"{t.requests:,}",
    "tool runs": lambda t: f"{t.tool_calls:,}",
    "input": lambda t: format_tokens(t.usage.input_tokens),
    "cache read": lambda t: format_tokens(t.usage.cache_read_tokens),
    "output": lambda t: format_tokens(t.usage.output_tokens),
    "reasoning": lambda t: format_tokens(t.usage.reasoning_tokens),
}
"""Numeric columns of the cost tables: header -> cell."""


def _not_in_cost(totals: meterline.Totals) -> str:
    """The model calls a row's cost leaves out (unmeasured and unpriced), or ``""``."""
    parts = []
    if totals.unmeasured:
        parts.append(f"{totals.unmeasured} unmeasured")
    if totals.unpriced:
        parts.append(f"{totals.unpriced} unpriced")
    return ", ".join(parts)


def _cost_table(
    title: str,
    rows: Sequence[DemoRow],
    labels: Mapping[str, Callable[[DemoRow], str]],
    metrics: Sequence[str],
    counts: Mapping[str, Callable[[DemoRow], str]] | None = None,
) -> str:
    """A titled table: label columns, then ``metrics``, cost and what the cost leaves out.

    The cost column uses one number of decimal places throughout; a row none of whose model
    calls was measured and priced shows ``unknown`` (never ``$0``). ``counts`` are numeric
    columns computed from the row (placed between the labels and the metrics).
    """
    counts = counts or {}
    places = cost_places(row.totals.cost for row in rows)
    cells = []
    for row in rows:
        t = row.totals
        unknown = t.requests > 0 and t.unmeasured + t.unpriced == t.requests
        cells.append(
            [
                *(cell(row) for cell in labels.values()),
                *(cell(row) for cell in counts.values()),
                *(_METRICS[name](t) for name in metrics),
                "unknown" if unknown else format_cost(t.cost, places),
                _not_in_cost(t),
            ]
        )
    headers = [*labels, *counts, *metrics, "cost", "not in cost"]
    align = "l" * len(labels) + "r" * (len(counts) + len(metrics) + 1) + "l"
    return f"{title}\n{format_table(headers, cells, align=align)}"


def _label(name: str) -> Callable[[DemoRow], str]:
    return lambda row: row.labels.get(name) or "-"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _header(result: DemoResult) -> list[str]:
    t = result.totals
    usage = t.usage
    operations = ", ".join(f"{name} {op.calls:,}" for name, op in sorted(t.by_operation.items()))
    unpriced = ", ".join(f"{provider}/{model}" for provider, model in result.unpriced_models) or "none"
    cost = format_cost(t.cost) + ("" if t.complete else " (measured and priced calls only: see the notes)")
    lookups = t.cache_hits + t.cache_misses
    cache_writes = usage.cache_write_tokens
    kinds = f"{t.requests:,} model calls, {t.tool_calls:,} tool runs, {lookups:,} cache lookups"
    facts = [
        ("events", f"{t.events:,} ({kinds})"),
        ("model calls", f"{t.requests:,} ({operations})"),
        ("total tokens", format_tokens(usage.total_tokens)),
        (
            "  input",
            f"{usage.input_tokens:,} ({usage.cache_read_tokens:,} cache read, {cache_writes:,} cache write)",
        ),
        ("  output", f"{usage.output_tokens:,} ({usage.reasoning_tokens:,} reasoning)"),
        ("total cost", cost),
        ("unmeasured", f"{_plural(t.unmeasured, 'model call')} (usage never arrived)"),
        ("unpriced", f"{_plural(t.unpriced, 'model call')} (no price: {unpriced})"),
        ("price data", result.price_version),
    ]
    width = max(len(label) for label, _ in facts)
    return [
        f"meterline demo (seed {result.seed}): a simulated day of a multi-agent research assistant",
        f"{_plural(len(result.by_org), 'org')}, {_plural(len(result.by_user), 'user')}, "
        f"{_plural(len(result.by_session), 'session')}; agents {', '.join(AGENTS)} in every session",
        "",
        *(f"  {label.ljust(width)}  {value}" for label, value in facts),
    ]


def _tools_table(result: DemoResult) -> str:
    cells = []
    for row in result.by_tool:
        name = row.labels.get("tool") or "-"
        stats = row.totals.tools.get(name, meterline.ToolStats())
        calls = stats.calls or 1
        cells.append(
            [
                name,
                row.labels.get("tool_category") or "-",
                f"{stats.calls:,}",
                f"{stats.failures:,}",
                f"{100 * stats.failures / calls:.0f}%",
                f"{stats.duration_ms / calls:,.1f}",
                f"{stats.linked_calls:,}",
            ]
        )
    headers = ("tool", "category", "runs", "failures", "failure rate", "mean ms", "linked model calls")
    return "Tools\n" + format_table(headers, cells, align="llrrrrr")


def _caches_table(result: DemoResult) -> str:
    t = result.totals
    lookups = t.cache_hits + t.cache_misses
    rate = f"{100 * t.cache_hits / lookups:.0f}%" if lookups else "-"
    app = ["application cache (research briefs)", f"{t.cache_hits:,}", f"{t.cache_misses:,}", rate]
    provider = ["provider prompt caches", "-", "-", "-"]
    cells = [
        [*app, f"{t.cache_tokens_saved:,} saved"],
        [*provider, f"{t.usage.cache_read_tokens:,} read, {t.usage.cache_write_tokens:,} written"],
    ]
    return "Caches\n" + format_table(("cache", "hits", "misses", "hit rate", "tokens"), cells, align="lrrrr")


def _budgets_section(result: DemoResult) -> str:
    """The org budgets, the sessions closest to their cap, the alerts and the refusal."""
    orgs = [row for row in result.budgets if row.budget == "org daily spend"]
    sessions = sorted(
        (row for row in result.budgets if row.budget == "session tokens"), key=lambda row: row.remaining
    )[:3]
    places = cost_places((Decimal(row.used) for row in orgs), minimum=2)
    cells = [
        [
            row.budget,
            ", ".join(f"{name}={value}" for name, value in row.key.items()),
            format_cost(Decimal(row.limit), places)
            if row.metric == "cost"
            else format_tokens(int(row.limit)),
            format_cost(Decimal(row.used), places) if row.metric == "cost" else format_tokens(int(row.used)),
            format_cost(Decimal(row.remaining), places)
            if row.metric == "cost"
            else format_tokens(int(row.remaining)),
        ]
        for row in (*sorted(orgs, key=lambda row: row.remaining), *sessions)
    ]
    lines = [
        "Budgets (every model call reserved first: input plus "
        f"{RESERVED_OUTPUT:,} output tokens, then settled by its usage)",
        format_table(("budget", "key", "limit", "used", "remaining"), cells, align="llrrr"),
        "",
        "  Alerts fired (once per window and key):",
    ]
    for alert in result.alerts:
        used, limit = format_cost(Decimal(alert.used), places), format_cost(Decimal(alert.limit), places)
        key = ", ".join(f"{name}={value}" for name, value in alert.key.items())
        lines.append(f"    {alert.budget} {key}: {alert.threshold:.0%} reached ({used} of {limit})")
    if not result.alerts:
        lines.append("    none")
    lines.append("  Refused before sending:")
    lines.extend(textwrap.wrap(result.refused, width=96, initial_indent="    ", subsequent_indent="      "))
    return "\n".join(lines)


def _notes(result: DemoResult) -> list[str]:
    t = result.totals
    unpriced = ", ".join(f"{provider}/{model}" for provider, model in result.unpriced_models) or "none"
    notes = [
        f"Unmeasured ({_plural(t.unmeasured, 'model call')}): an OpenAI stream requested without "
        "stream_options.include_usage ended without a usage record. An unmeasured call is counted apart, "
        "never as free: its tokens and cost are unknown, so the total cost is a lower bound.",
        f"Unpriced ({_plural(t.unpriced, 'model call')}): {unpriced} is self-hosted and has no price. "
        "Unpriced usage is measured, so its tokens are in the totals, but it has no cost (not a cost of $0). "
        "Price it with a PriceTable row (see `meterline prices --help`).",
        *(f"Warning caught: {message}" for message in result.warnings),
        "Budgets: an org's budget counts the unmeasured stream at its whole reservation (the budget's "
        "on_unmeasured policy is 'fail_closed'), and the self-hosted model at no cost "
        "(on_unpriced='fail_open'); a budget's used amount can therefore differ from the org's cost above.",
        "Every number above comes from meter.totals(by=...) or a scope's live totals; costs are exact "
        "Decimal USD from the price data named in the header.",
    ]
    lines = ["Notes"]
    for note in notes:
        lines.extend(textwrap.wrap(note, width=100, initial_indent="  * ", subsequent_indent="    "))
    return lines


def render_report(result: DemoResult) -> str:
    """Render the report of a `DemoResult` as plain text (cost tables sorted by cost, descending)."""
    sessions: dict[str | None, int] = {}
    for row in result.by_session:
        sessions[row.labels.get("user")] = sessions.get(row.labels.get("user"), 0) + 1
    top = result.by_session[:TOP_SESSIONS]
    sections = [
        "\n".join(_header(result)),
        _cost_table(
            "Cost by org (each org scope's own totals)",
            result.by_org,
            {"org": _label("org")},
            ("calls", "tool runs", "input", "output"),
        ),
        _cost_table(
            "Cost by user",
            result.by_user,
            {"user": _label("user"), "org": _label("org")},
            ("calls", "input", "output"),
            counts={"sessions": lambda row: str(sessions.get(row.labels.get("user"), 0))},
        ),
        _cost_table(
            f"Top {len(top)} of {len(result.by_session)} sessions by cost",
            top,
            {"session": _label("session"), "user": _label("user")},
            ("calls", "tool runs", "input", "output"),
        ),
        _cost_table(
            "Cost by agent",
            result.by_agent,
            {"agent": _label("agent")},
            ("calls", "tool runs", "input", "cache read", "output", "reasoning"),
        ),
        _cost_table(
            "Cost by model (the model that served the call, and the one asked for)",
            result.by_model,
            {
                "provider": _label("provider"),
                "model": _label("model"),
                "asked for": lambda row: ", ".join(result.requested_models.get(_model_key(row), ())),
            },
            ("calls", "input", "cache read", "output", "reasoning"),
        ),
        _tools_table(result),
        _caches_table(result),
        _budgets_section(result),
        "\n".join(_notes(result)),
    ]
    return "\n\n".join(sections)
