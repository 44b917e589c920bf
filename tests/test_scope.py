"""Tests for scopes: nesting, isolation across threads and tasks, decorators, executors."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

import pytest

from meterline import ConfigurationError, Meter, Usage


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_nested_scopes_merge_dimensions_and_roll_up(meter: Meter) -> None:
    """Inner scopes add dimensions; outer totals include everything recorded inside."""
    with meter.scope(org="acme", user="u1") as outer:
        meter.record(Usage(input_tokens=1), **GPT)
        with meter.scope(agent="planner") as inner:
            event = meter.record(Usage(input_tokens=10), **GPT)
            assert dict(event.dimensions) == {"org": "acme", "user": "u1", "agent": "planner"}
            assert inner.parent is outer
            assert outer.totals.usage.input_tokens == 11  # a live child is included
        with meter.scope(agent="writer", user="u2"):
            assert dict(meter.record(Usage(input_tokens=100), **GPT).dimensions)["user"] == "u2"
        assert inner.totals.usage.input_tokens == 10
        assert inner.closed
    assert outer.totals.usage.input_tokens == 111
    assert outer.totals.requests == 3
    assert meter.current_scope() is None


def test_scope_totals_cover_tools_cache_and_unmeasured(meter: Meter) -> None:
    """A scope's totals count everything both reference trackers count."""
    with meter.scope(session="s1") as scope:
        llm = meter.record(Usage(input_tokens=1000, cache_read_tokens=500, output_tokens=50), **GPT)
        meter.record(
            Usage(input_tokens=64), model="text-embedding-3-small", provider="openai", operation="embeddings"
        )
        meter.record_tool(
            "search", category="retrieval", status="failure", duration_ms=3.0, llm_call_id=llm.id
        )
        meter.record_cache_hit(tokens_saved=40)
        meter.record_cache_miss()
        meter.record(None, **GPT)
    totals = scope.totals
    assert totals.requests == 3
    assert totals.unmeasured == 1
    assert totals.by_operation["embeddings"].usage.input_tokens == 64
    assert totals.tools["search"].failures == 1
    assert totals.tools["search"].llm_call_ids == (llm.id,)
    assert (totals.cache_hits, totals.cache_misses, totals.cache_tokens_saved) == (1, 1, 40)
    assert totals.cost == meter.totals().cost


def test_invalid_dimensions_are_refused(meter: Meter) -> None:
    """Scope dimensions must be identifiers, never event fields, with str or int values."""
    for bad in ({"User": "x"}, {"model": "x"}, {"user": 1.5}, {"user": None}, {"a" * 64: "x"}):
        with pytest.raises(ConfigurationError):
            meter.scope(**bad)
    assert dict(meter.scope(user=7).dimensions) == {"user": "7"}


def test_scope_as_sync_and_async_decorator(meter: Meter) -> None:
    """A scope decorates functions and coroutine functions; each call is its own entry."""

    @meter.scope(agent="planner")
    def plan(tokens: int) -> str:
        meter.record(Usage(input_tokens=tokens), **GPT)
        current = meter.current_scope()
        assert current is not None
        return current.dimensions["agent"]

    @meter.scope(agent="writer")
    async def write(tokens: int) -> int:
        await asyncio.sleep(0)
        meter.record(Usage(input_tokens=tokens), **GPT)
        return tokens

    assert plan(5) == "planner"
    assert plan.__name__ == "plan"
    assert asyncio.run(write(7)) == 7
    by_agent = meter.totals(by=("agent",))
    assert by_agent[("planner",)].usage.input_tokens == 5
    assert by_agent[("writer",)].usage.input_tokens == 7


def test_scope_exits_on_exception(meter: Meter) -> None:
    """An exception inside a scope propagates unchanged and the scope still ends."""
    with pytest.raises(KeyError, match="mine"), meter.scope(user="u1"):
        raise KeyError("mine")
    assert meter.current_scope() is None


def test_async_with(meter: Meter) -> None:
    """A scope also works with async with."""

    async def main() -> int:
        async with meter.scope(user="u9") as active:
            meter.record(Usage(input_tokens=2), **GPT)
        return active.totals.usage.input_tokens

    assert asyncio.run(main()) == 2


def test_eight_threads_fifty_thousand_records_each_are_exact(meter: Meter) -> None:
    """8 threads x 50,000 records in nested scopes give exact totals with no cross-talk."""
    per_thread = 50_000
    usage = Usage(input_tokens=3, cache_read_tokens=1, output_tokens=2)
    scopes = {}
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        with meter.scope(user=f"u{index}") as user_scope, meter.scope(session=f"s{index}"):
            barrier.wait()
            for _ in range(per_thread):
                meter.record(usage, **GPT)
        scopes[index] = user_scope

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    one = meter.pricer.cost(usage, "openai", "gpt-4o-mini")
    assert one is not None
    for index in range(8):
        totals = scopes[index].totals
        assert totals.requests == per_thread
        assert totals.usage == Usage(
            input_tokens=3 * per_thread, cache_read_tokens=per_thread, output_tokens=2 * per_thread
        )
        assert totals.cost == one * per_thread
    everything = meter.totals()
    assert everything.requests == 8 * per_thread
    assert everything.usage.input_tokens == 24 * per_thread
    by_user = meter.totals(by=("user",))
    assert all(by_user[(f"u{index}",)].requests == per_thread for index in range(8))


def test_a_thousand_asyncio_tasks_in_nested_scopes_are_isolated(meter: Meter) -> None:
    """1,000 concurrent tasks, each in its own nested scopes, see only their own usage."""

    async def task(index: int) -> tuple[int, int]:
        with meter.scope(user=f"u{index % 10}"), meter.scope(session=f"s{index}") as session:
            for step in range(5):
                meter.record(Usage(input_tokens=index, output_tokens=step), **GPT)
                await asyncio.sleep(0)
            return index, session.totals.usage.input_tokens

    async def main() -> list[tuple[int, int]]:
        return await asyncio.gather(*(task(index) for index in range(1000)))

    results = asyncio.run(main())
    assert all(tokens == 5 * index for index, tokens in results)
    by_user = meter.totals(by=("user",))
    for user in range(10):
        expected = sum(5 * index for index in range(user, 1000, 10))
        assert by_user[(f"u{user}",)].usage.input_tokens == expected
    assert meter.totals().requests == 5000


def test_executor_keeps_the_scope_when_the_context_is_copied(meter: Meter) -> None:
    """Work submitted with copy_context().run is attributed to the caller's scope; without it, not."""
    with meter.scope(user="u1") as scope, ThreadPoolExecutor(max_workers=2) as pool:
        ctx = contextvars.copy_context()
        pool.submit(ctx.run, lambda: meter.record(Usage(input_tokens=4), **GPT)).result()
        pool.submit(lambda: meter.record(Usage(input_tokens=1), **GPT)).result()
    assert scope.totals.usage.input_tokens == 4
    assert meter.totals(by=("user",)).keys() == {("u1",), (None,)}


def test_finished_scopes_are_not_kept_alive(meter: Meter) -> None:
    """An ended scope entry is collectable: memory does not grow with finished scopes."""
    with meter.scope(user="u1") as parent:
        with meter.scope(session="s1") as child:
            meter.record(Usage(input_tokens=1), **GPT)
        ref = weakref.ref(child)
        del child
        gc.collect()
        assert ref() is None
        assert parent.totals.usage.input_tokens == 1
