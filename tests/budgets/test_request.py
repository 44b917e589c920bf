"""What a reservation asks for: checked arguments, and an input estimated from messages."""

from __future__ import annotations

import math
from typing import TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import (
    Budget,
    ConfigurationError,
    MalformedUsageError,
    Meter,
)
from meterline.budgets import estimate_tokens


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o", "provider": "openai"}
"""gpt-4o: $2.50 per million input tokens, $10 per million output tokens."""


def status(meter: Meter) -> list[tuple[str, dict[str, str], str, object, object, object]]:
    """(budget, key, metric, used, reserved, remaining) of every budget row."""
    return [
        (row.budget, dict(row.key), row.metric, row.used, row.reserved, row.remaining)
        for row in meter.budget_status()
    ]


def test_reserve_estimates_input_from_messages(meter: Meter) -> None:
    """Without input_tokens, the reservation estimates them from the messages."""
    meter.add_budget(Budget(max_input_tokens=10**6))
    messages = [{"role": "user", "content": "hello " * 300}]
    reservation = meter.reserve(messages=messages, max_output_tokens=1, **GPT)
    assert reservation.input_tokens == estimate_tokens(messages) > 1800 / 4
    reservation.release()


def test_default_max_output_tokens() -> None:
    """A reservation without max_output_tokens assumes the meter's default."""
    meter = Meter(default_max_output_tokens=1234)
    meter.add_budget(Budget(max_tokens=10**6))
    reservation = meter.reserve(input_tokens=1, **GPT)
    assert reservation.max_output_tokens == 1234
    reservation.release()
    assert meter.reserve(tool_calls=1).max_output_tokens == 0


@given(
    st.sampled_from(["input_tokens", "max_output_tokens", "tool_calls"]),
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
        st.floats(),
        st.booleans(),
        st.text(max_size=3),
    ),
)
@settings(max_examples=60, deadline=None)
def test_hostile_reserve_arguments_change_nothing(name: str, value: object) -> None:
    """A bad count raises MalformedUsageError naming it, and reserves nothing."""
    meter = Meter()
    meter.add_budget(Budget(max_tokens=100))
    with pytest.raises(MalformedUsageError, match=name):
        meter.reserve(**{name: value}, **GPT)  # type: ignore[arg-type]
    assert status(meter) == [("global:tokens=100", {}, "tokens", 0, 0, 100)]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"model": 5}, "model=5"),
        ({"model": ""}, "model=''"),
        ({"provider": 5}, "int"),
        ({"lease": 0}, "lease=0"),
        ({"lease": math.inf}, "lease=inf"),
        ({"tags": {"Bad": "x"}}, "Bad"),
    ],
)
def test_bad_reserve_options_are_refused(meter: Meter, kwargs: dict[str, object], named: str) -> None:
    """Bad reserve() options raise ConfigurationError naming the value."""
    meter.add_budget(Budget(max_tokens=100))
    with pytest.raises(ConfigurationError) as caught:
        meter.reserve(**kwargs)  # type: ignore[arg-type]
    assert named in str(caught.value)


def test_estimate_tokens_overestimates_text() -> None:
    """The estimate is above a four-characters-per-token count and grows with every string."""
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(text) > len(text) / 4
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    assert estimate_tokens(messages) > estimate_tokens(text)
    assert estimate_tokens({"parts": [{"text": "日本語のテキスト"}]}) >= 8
    assert estimate_tokens(None) == 3
    assert estimate_tokens([b"\x00" * 30, 1.5, True]) == 13
