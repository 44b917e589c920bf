"""A scope entry: a call's tags checked once and kept for the next equal ones (`Entry.tagged`)."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from meterline import ConfigurationError, Meter, Usage


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_equal_tags_share_their_checked_dimensions(meter: Meter) -> None:
    """Calls with equal str tags in one entry record one shared `Dimensions` and the right totals."""
    first = meter.record(Usage(input_tokens=1), tags={"feature": "search", "tenant": "t1"}, **GPT)
    again = meter.record(Usage(input_tokens=2), tags={"feature": "search", "tenant": "t1"}, **GPT)
    other = meter.record(Usage(input_tokens=4), tags={"feature": "chat", "tenant": "t1"}, **GPT)
    assert again.dimensions is first.dimensions
    assert other.dimensions == {"feature": "chat", "tenant": "t1"}
    with meter.scope(user="u1"):
        scoped = meter.record(Usage(input_tokens=8), tags={"feature": "search", "tenant": "t1"}, **GPT)
    assert scoped.dimensions == {"feature": "search", "tenant": "t1", "user": "u1"}
    by_feature = meter.totals(by=("feature",))
    assert by_feature[("search",)].usage.input_tokens == 11
    assert by_feature[("chat",)].usage.input_tokens == 4


def test_kept_tags_never_let_a_bad_value_through(meter: Meter) -> None:
    """Tags equal to the last ones recorded but of a refused type (True == 1) are still refused."""
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"n": 1}, {"n": True}),
        ({"n": 1}, {"n": 1.0}),
        ({"s": "1"}, {"s": b"1"}),
    ]
    for good, bad in pairs:
        meter.record(Usage(input_tokens=1), tags=good, **GPT)
        meter.record(Usage(input_tokens=1), tags=good, **GPT)
        with pytest.raises(ConfigurationError):
            meter.record(Usage(input_tokens=1), tags=bad, **GPT)
    assert meter.totals().requests == 6


def test_alternating_tags_stay_exact(meter: Meter) -> None:
    """Tags that change from call to call (one set is kept) are each recorded under their own."""
    for round_ in range(2):
        for index in range(200):
            meter.record(Usage(input_tokens=1 + round_), tags={"session": f"s{index % 3}", "n": index}, **GPT)
            meter.record(Usage(input_tokens=1 + round_), tags={"session": f"s{index}"}, **GPT)
    by_session = meter.totals(by=("session",))
    assert len(by_session) == 200
    assert by_session[("s7",)].usage.input_tokens == 3
    assert by_session[("s1",)].usage.input_tokens == 3 + 67 * 3
