"""The simulated day, call by call: every session's planner, researcher and writer, and a runaway.

Every call is a realistic provider response body (`meterline._cli._demo._bodies`; token
counts drawn from a seeded ``random.Random``, so a seed always gives the same day) fed to a
`meterline.Meter` through the public API only, each under a reservation (`Meter.reserve`)
against the product's budgets. At the end of the day a runaway agent asks for a call far
larger than its session has left, and is refused before anything is sent.
"""

from __future__ import annotations as _annotations

import random
import string
from typing import Final

import meterline
from meterline._cli._demo._bodies import (
    anthropic_message,
    deepseek_reasoner,
    gemini,
    ollama_chat,
    openai_chat,
    openai_embeddings,
    openai_stream,
)
from meterline._cli._demo._product import DAY_START, ORGS, RESERVED_OUTPUT, RUNAWAY_OUTPUT, Org

__all__ = ["Simulation"]

_ALNUM: Final = string.ascii_letters + string.digits


class Simulation:
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
        roster = [(org, user, self.rng.randint(2, 4)) for org in ORGS for user in org.users]
        # The one session whose final answer is streamed without usage.
        cut_stream = self.rng.randrange(sum(sessions for _, _, sessions in roster))
        by_org: dict[str, meterline.Totals] = {}
        index = 0
        for org in ORGS:
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

    def session(self, org: Org, *, stream_usage: bool) -> None:
        """One session: plan, research, write."""
        topic = self.rng.choice(org.topics)
        with self.meter.scope(agent="planner"):
            plan_tokens = self.plan(org)
        with self.meter.scope(agent="researcher"):
            brief_tokens = self.research(org, topic)
        with self.meter.scope(agent="writer"):
            self.write(org, plan_tokens + brief_tokens, stream_usage=stream_usage)

    def plan(self, org: Org) -> int:
        """Plan the session in 1-3 turns; return the plan's size in tokens."""
        history = 0
        for turn in range(self.rng.randint(1, 3)):
            question = self.rng.randint(40, 420)
            output = self.rng.randint(120, 680)
            if org.planner == "ollama":
                latency = self.latency(180, 14.0, output)
                body = ollama_chat(
                    self, "llama3.2:3b", org.system_prompt + history + question, output, latency
                )
                self.record(body, model="llama3.2:3b", provider="ollama", latency_ms=latency)
            else:
                # The first turn writes the system prompt to the cache (5 min TTL); later turns read it.
                write, read = (org.system_prompt, 0) if turn == 0 else (0, org.system_prompt)
                latency = self.latency(650, 16.0, output)
                body = anthropic_message(
                    self, "claude-sonnet-4-5-20250929", history + question, write, read, output
                )
                self.record(body, model="claude-sonnet-4-5", provider="anthropic", latency_ms=latency)
            history += question + output
        return history

    def research(self, org: Org, topic: str) -> int:
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
            openai_embeddings(self, "text-embedding-3-small", inputs, tokens),
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
            gemini(self, model, prompt, 0, thoughts, 38, search=topic),
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
            gemini(self, model, prompt + 38 + results, cached, thoughts, output),
            model=model,
            provider="gemini",
            operation="generate_content",
            latency_ms=latency,
        )
        self.research_cache[org.name, topic] = sum(
            e.usage.total_tokens for e in (ask, brief) if e.usage is not None
        )
        return output

    def write(self, org: Org, context: int, *, stream_usage: bool) -> None:
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
            body = openai_chat(
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
            body = deepseek_reasoner(self, prompt, prefix // 64 * 64, output, reasoning)
            self.record(body, model="deepseek-reasoner", provider="deepseek", latency_ms=latency)

        prompt = prefix + history + self.rng.randint(40, 160)
        output = self.rng.randint(220, 760)
        latency = self.latency(260, 7.5, output)
        chunks = openai_stream(self, "gpt-4o-mini-2024-07-18", prompt, output, include_usage=stream_usage)
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
