"""A small product's ledger for the dashboard's tests: every kind of event, over 40 days up to now.

Two orgs, six users, sessions of a day, two agents, model calls on three priced models (ids
made as the meter makes them, so that an id tells its time), a tool call linked to the model
call that asked for it, a retried call (two attempts of one operation), calls whose usage
never arrived and calls with no price, application cache hits and misses.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterline import Usage, UsageEvent
from meterline._dimensions import Dimensions

USERS = {"acme": ("alice", "bob", "carol"), "initech": ("dave", "erin", "frank")}
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("google", "gemini-2.5-pro"))
_counter = itertools.count(1)


def new_id(at: datetime) -> str:
    """An id shaped as the meter makes them: the time in milliseconds, then a counter."""
    return f"{int(at.timestamp() * 1000):012x}{next(_counter):020x}"


def event(
    at: datetime,
    dims: Mapping[str, str],
    *,
    operation: str = "chat",
    provider: str | None = "openai",
    model: str | None = "gpt-4o",
    usage: Usage | None = None,
    cost: Decimal | None = None,
    status: str = "ok",
    latency_ms: float | None = 100.0,
    operation_id: str | None = None,
    attempt: int = 1,
    links: tuple[str, ...] = (),
    tokens_saved: int = 0,
) -> UsageEvent:
    """One event at ``at`` (its id made from that time)."""
    return UsageEvent(
        id=new_id(at),
        time_ns=int(at.timestamp()) * 10**9 + at.microsecond * 1000,
        operation=operation,
        provider=provider,
        model=model,
        request_model=None,
        usage=usage,
        cost=cost,
        price_version=None if cost is None else "test-prices",
        latency_ms=latency_ms,
        status=status,
        dimensions=Dimensions(dims),
        operation_id=operation_id,
        attempt=attempt,
        links=links,
        tokens_saved=tokens_saved,
    )


def product_events(now: datetime, *, days: int = 40, seed: int = 11) -> list[UsageEvent]:
    """The ledger's events, from ``days`` ago up to a minute before ``now``."""
    rng = random.Random(seed)
    events: list[UsageEvent] = []
    for back in range(days, -1, -1):
        day = (now - timedelta(days=back)).astimezone(UTC)
        for org, users in USERS.items():
            for user in users:
                if rng.random() < 0.25:
                    continue
                at = day - timedelta(minutes=rng.randrange(5, 600))
                if at >= now - timedelta(minutes=1):
                    at = now - timedelta(minutes=rng.randrange(2, 50))
                dims = {
                    "org": org,
                    "user": user,
                    "session": f"{user}-{at:%m%d}",
                    "agent": rng.choice(("planner", "writer")),
                }
                for _ in range(rng.randrange(1, 4)):
                    at += timedelta(seconds=rng.randrange(1, 30))
                    provider, model = rng.choice(MODELS)
                    usage = Usage(
                        input_tokens=(inp := rng.randrange(500, 9000)),
                        cache_read_tokens=rng.randrange(0, inp // 2),
                        output_tokens=(out := rng.randrange(50, 900)),
                        reasoning_tokens=rng.randrange(0, out // 3),
                    )
                    cost = Decimal(rng.randrange(1, 10**7)) / 10**9
                    call = event(at, dims, provider=provider, model=model, usage=usage, cost=cost)
                    events.append(call)
                    if rng.random() < 0.4:
                        at += timedelta(milliseconds=rng.randrange(5, 900))
                        tool_dims = {**dims, "tool": rng.choice(("search", "code_exec"))}
                        events.append(
                            event(
                                at,
                                tool_dims,
                                operation="execute_tool",
                                provider=None,
                                model=None,
                                status=rng.choice(("success", "success", "error")),
                                latency_ms=float(rng.randrange(5, 2000)),
                                links=(call.id,),
                            )
                        )
                if rng.random() < 0.3:
                    operation_id = f"op-{user}-{back}"
                    at += timedelta(seconds=1)
                    events.append(
                        event(at, dims, status="429", usage=None, cost=None, operation_id=operation_id)
                    )
                    at += timedelta(seconds=2)
                    usage = Usage(input_tokens=1200, output_tokens=300)
                    events.append(
                        event(
                            at, dims, usage=usage, cost=Decimal("0.006"), operation_id=operation_id, attempt=2
                        )
                    )
                if rng.random() < 0.15:
                    at += timedelta(seconds=1)
                    events.append(event(at, dims, usage=None, cost=None))  # unmeasured
                if rng.random() < 0.15:
                    at += timedelta(seconds=1)
                    events.append(
                        event(
                            at,
                            dims,
                            provider="ollama",
                            model="llama3",
                            usage=Usage(input_tokens=900),
                            cost=None,
                        )
                    )
                for hit in (True, False):
                    if rng.random() < 0.3:
                        at += timedelta(seconds=1)
                        events.append(
                            event(
                                at,
                                dims,
                                operation="cache",
                                provider=None,
                                model=None,
                                status="hit" if hit else "miss",
                                latency_ms=None,
                                tokens_saved=rng.randrange(100, 2000) if hit else 0,
                            )
                        )
    return [one for one in events if one.time < now]


def in_range(
    events: Iterable[UsageEvent], since: datetime | None, until: datetime | None
) -> list[UsageEvent]:
    """The events from ``since`` (inclusive) to ``until`` (exclusive)."""
    return [e for e in events if (since is None or e.time >= since) and (until is None or e.time < until)]


def cost_of(events: Iterable[UsageEvent]) -> Decimal:
    """What the priced events cost, exactly."""
    return sum((e.cost for e in events if e.cost is not None), Decimal(0))
