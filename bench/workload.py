"""A real product's ledger, made up: the events the ledger benchmarks store and report on.

The shape of the ledger issue: 50 priced models, 200 orgs, 10,000 users, 100,000 sessions,
5 agents, 12 tools, 1-3 model calls and 0-2 tool calls per turn, over 90 days. Each session
belongs to one user and each user to one org; sessions are short-lived (numbered in time
order, about 64 open at any moment, so each lasts about 1/1,500th of the 90 days); a turn
picks one of the open sessions and an agent at random, and its models by a Zipf law
(s = 1.1: a product's traffic goes mostly to a few models, and some to all 50). Costs are
exact: each (model, usage) is priced by a `Meter` once, from a pool of usages, and reused.
Events come in time order, in batches, never all in memory.
"""

from __future__ import annotations

import itertools
import operator
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from meterline import Meter, Usage, UsageEvent
from meterline._dimensions import Dimensions
from meterline._usage import USAGE_FIELDS

MODELS: tuple[tuple[str, str], ...] = (
    *(
        ("openai", name)
        for name in (
            "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini", "o3",
            "o3-mini", "o1", "o1-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4-turbo",
            "gpt-3.5-turbo", "gpt-4", "chatgpt-4o-latest", "gpt-4o-2024-08-06", "gpt-4o-2024-05-13",
            "gpt-4o-mini-2024-07-18", "o3-pro", "o1-pro", "gpt-5.1", "gpt-4.5-preview",
            "codex-mini-latest", "gpt-5-chat-latest",
        )
    ),
    *(
        ("anthropic", name)
        for name in (
            "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-opus-4", "claude-sonnet-4",
            "claude-3-7-sonnet-latest", "claude-3-5-haiku-latest", "claude-3-5-sonnet-latest",
            "claude-3-opus-latest", "claude-3-haiku-20240307", "claude-opus-4-5",
        )
    ),
    *(
        ("google", name)
        for name in (
            "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
            "gemini-2.0-flash-lite", "gemini-1.5-pro", "gemini-1.5-flash", "gemini-1.5-flash-8b",
        )
    ),
    *(("mistral", name) for name in ("mistral-large-latest", "mistral-small-latest", "codestral-latest")),
    ("groq", "llama-3.3-70b-versatile"),
    ("groq", "llama-3.1-8b-instant"),
)  # fmt: skip
ORGS = 200
USERS = 10_000
SESSIONS = 100_000
AGENTS = 5
TOOLS = 12
DAYS = 90
DAY_NS = 86_400 * 10**9
START_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: the first event's day."""
_USAGES_PER_MODEL = 64
_OPEN_SESSIONS = 64


@dataclass(frozen=True, slots=True)
class _Priced:
    provider: str
    model: str
    usage: Usage
    cost: Decimal | None
    price_version: str | None


def _priced_pool(rng: random.Random) -> list[list[_Priced]]:
    """Per model, a pool of usages with their exact cost."""
    meter = Meter()
    pool: list[list[_Priced]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for provider, model in MODELS:
            usages = []
            for _ in range(_USAGES_PER_MODEL):
                usage = Usage(
                    input_tokens=rng.randrange(5_000, 20_000),
                    cache_read_tokens=rng.choice((0, 0, 1024, 4096)),
                    output_tokens=rng.randrange(20, 2_000),
                )
                event = meter.record(usage, model=model, provider=provider)
                assert event.cost is not None, f"{provider}/{model} is not priced"
                usages.append(_Priced(provider, model, usage, event.cost, event.price_version))
            pool.append(usages)
    return pool


def events(
    count: int, *, batch: int = 10_000, seed: int = 7, start_ns: int = START_NS
) -> Iterator[list[UsageEvent]]:
    """``count`` product-shaped events over `DAYS` days from ``start_ns``, in time order, by ``batch``."""
    rng = random.Random(seed)
    pool = _priced_pool(rng)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(MODELS))]
    model_at = list(itertools.accumulate(weights))
    session_user = [rng.randrange(USERS) for _ in range(SESSIONS)]
    step = DAYS * DAY_NS // count
    out: list[UsageEvent] = []
    index = 0
    while index < count:
        opened = index * SESSIONS // count  # the newest session open at this point of the 90 days
        session = max(0, opened - rng.randrange(_OPEN_SESSIONS))
        user = session_user[session]
        scope = Dimensions(  # as a meter's scope: one object shared by the turn's model calls
            {
                "org": f"org-{user % ORGS:03d}",
                "user": f"user-{user:05d}",
                "session": f"sess-{session:06d}",
                "agent": f"agent-{rng.randrange(AGENTS)}",
            }
        )
        calls = [("model", None)] * rng.randint(1, 3) + [("tool", rng.randrange(TOOLS))] * rng.randint(0, 2)
        for kind, tool in calls:
            if index == count:
                break
            time_ns = start_ns + index * step
            event_id = f"{time_ns:020x}{index:012x}"
            if kind == "model":
                (priced,) = rng.choices(pool, cum_weights=model_at)
                one = priced[rng.randrange(_USAGES_PER_MODEL)]
                event = UsageEvent(
                    id=event_id,
                    time_ns=time_ns,
                    operation="chat",
                    provider=one.provider,
                    model=one.model,
                    request_model=None,
                    usage=one.usage,
                    cost=one.cost,
                    price_version=one.price_version,
                    latency_ms=float(rng.randrange(200, 8_000)),
                    status="ok" if rng.random() > 0.01 else "error",
                    dimensions=scope,
                )
            else:
                event = UsageEvent(
                    id=event_id,
                    time_ns=time_ns,
                    operation="execute_tool",
                    provider=None,
                    model=None,
                    request_model=None,
                    usage=None,
                    cost=None,
                    price_version=None,
                    latency_ms=float(rng.randrange(5, 3_000)),
                    status="success" if rng.random() > 0.05 else "error",
                    dimensions=Dimensions({**scope, "tool": f"tool-{tool:02d}"}),
                )
            out.append(event)
            index += 1
            if len(out) == batch:
                yield out
                out = []
    if out:
        yield out


_COUNTS = operator.attrgetter(*USAGE_FIELDS)
DIMENSIONS = ("org", "user", "session", "agent", "tool")
"""The dimension names of the events, as columns of `flat_row`."""


def flat_row(event: UsageEvent) -> tuple[object, ...]:
    """The event as one plain row: the fields as columns, each dimension a column of its own."""
    usage = event.usage
    dims = event.dimensions
    return (
        event.id,
        event.time_ns,
        event.operation,
        event.status,
        event.provider,
        event.model,
        *(dims.get(name) for name in DIMENSIONS),
        *((None,) * len(USAGE_FIELDS) if usage is None else _COUNTS(usage)),
        event.cost_pico,
        event.price_version,
        event.latency_ms,
    )


FLAT_COLUMNS = (
    "id",
    "time_ns",
    "operation",
    "status",
    "provider",
    "model",
    *DIMENSIONS,
    *USAGE_FIELDS,
    "cost_pico",
    "price_version",
    "latency_ms",
)
