"""Tests for meterline.Usage: validation, arithmetic and serialisation."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline import MalformedUsageError, Usage
from meterline._usage import USAGE_FIELDS, checked_usage, usage_of_counts
from meterline.exceptions import safe_repr


def test_defaults_are_zero_and_total_is_input_plus_output() -> None:
    """A Usage defaults every count to zero and totals input plus output."""
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000, reasoning_tokens=100)
    assert usage.total_tokens == 1500
    assert usage.uncached_input_tokens == 200
    assert Usage().total_tokens == 0


def test_usage_is_frozen_and_slotted() -> None:
    """A Usage cannot be changed and has no instance dict."""
    usage = Usage(input_tokens=1)
    with pytest.raises(FrozenInstanceError):
        usage.input_tokens = 2  # type: ignore[misc]
    assert not hasattr(usage, "__dict__")


def test_addition_and_sum() -> None:
    """Usages add field by field, and sum() starts from zero."""
    a = Usage(input_tokens=10, cache_read_tokens=4, output_tokens=5, reasoning_tokens=2)
    b = Usage(
        input_tokens=7, cache_write_tokens=3, cache_write_1h_tokens=1, output_tokens=1, audio_output_tokens=1
    )
    total = a + b
    assert total == Usage(
        input_tokens=17,
        cache_read_tokens=4,
        cache_write_tokens=3,
        cache_write_1h_tokens=1,
        output_tokens=6,
        reasoning_tokens=2,
        audio_output_tokens=1,
    )
    assert sum([a, b]) == total
    assert sum([], Usage()) == Usage()


def test_adding_something_else_is_a_type_error() -> None:
    """Adding a non-Usage raises TypeError rather than guessing."""
    with pytest.raises(TypeError):
        _ = Usage() + 1


@pytest.mark.parametrize("bad", [-1, 1.0, math.nan, True, "3", None, 10**3 * 1.5, 2**63, 10**400])
@pytest.mark.parametrize("field", USAGE_FIELDS)
def test_bad_counts_are_refused_with_field_and_value(field: str, bad: object) -> None:
    """Every field refuses negatives, floats, NaN, bools, strings and None, naming field and value."""
    with pytest.raises(MalformedUsageError) as info:
        Usage(**{field: bad})  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.value is bad
    assert safe_repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"input_tokens": 5, "cache_read_tokens": 4, "cache_write_tokens": 2},
            "cache_read_tokens + cache_write_tokens",
        ),
        ({"input_tokens": 5, "cache_write_tokens": 2, "cache_write_1h_tokens": 3}, "cache_write_1h_tokens"),
        ({"input_tokens": 5, "audio_input_tokens": 6}, "audio_input_tokens"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens"),
        ({"output_tokens": 5, "audio_output_tokens": 6}, "audio_output_tokens"),
    ],
)
def test_subsets_larger_than_their_total_are_refused(kwargs: dict[str, int], field: str) -> None:
    """A subset field larger than the total it belongs to is refused, naming the subset."""
    with pytest.raises(MalformedUsageError) as info:
        Usage(**kwargs)
    assert info.value.field == field


def test_dict_round_trip() -> None:
    """to_dict() lists every canonical field and from_dict() restores the same value."""
    usage = Usage(input_tokens=9, cache_read_tokens=3, output_tokens=4, reasoning_tokens=1)
    data = usage.to_dict()
    assert tuple(data) == USAGE_FIELDS
    assert Usage.from_dict(data) == usage
    assert Usage.from_dict({"input_tokens": 3}) == Usage(input_tokens=3)


def test_from_dict_refuses_unknown_keys_and_non_mappings() -> None:
    """from_dict() names an unknown key, and refuses what is not a mapping."""
    with pytest.raises(MalformedUsageError, match="prompt_tokens"):
        Usage.from_dict({"prompt_tokens": 3})
    with pytest.raises(MalformedUsageError):
        Usage.from_dict([1, 2])  # type: ignore[arg-type]


def test_checked_usage_names_the_provider_field() -> None:
    """The internal builder reports the provider's own field name in errors."""
    names = ("prompt_tokens", "cached_tokens", "w", "w1", "completion_tokens", "r", "ai", "ao")
    with pytest.raises(MalformedUsageError) as info:
        checked_usage(names, 10, 0, 0, 0, -2, 0, 0, 0)
    assert info.value.field == "completion_tokens"


counts = st.integers(min_value=0, max_value=10**12)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """Valid usages with consistent subsets."""
    input_tokens = draw(counts)
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(counts)
    return Usage(
        input_tokens=input_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=draw(st.integers(0, cache_write)),
        output_tokens=output,
        reasoning_tokens=draw(st.integers(0, output)),
        audio_input_tokens=draw(st.integers(0, input_tokens)),
        audio_output_tokens=draw(st.integers(0, output)),
    )


@given(st.lists(usages(), max_size=8))
def test_sum_is_fieldwise_and_stays_valid(items: list[Usage]) -> None:
    """Summing valid usages gives field-wise sums that are themselves a valid Usage."""
    total = sum(items, Usage())
    for name in USAGE_FIELDS:
        assert getattr(total, name) == sum(getattr(item, name) for item in items)
    assert Usage(**total.to_dict()) == total


def test_errors_about_enormous_values_are_still_readable() -> None:
    """An int too long to print and a huge string still produce a short, valid error message."""
    with pytest.raises(MalformedUsageError, match="bits"):
        Usage(input_tokens=10**5000)
    with pytest.raises(MalformedUsageError) as info:
        Usage(input_tokens="x" * 10_000)  # type: ignore[arg-type]
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "name", ["web_search_requests", "web_fetch_requests", "file_search_requests", "code_execution_requests"]
)
def test_tool_calls_are_counts_bounded_like_an_events_tokens(name: str) -> None:
    """A usage's tool calls add up like tokens, refuse bad counts, and at most 2**40 of each."""
    usage = Usage(input_tokens=5, **{name: 3}) + Usage(**{name: 4})
    assert getattr(usage, name) == 7
    assert usage.has_units
    assert usage.total_tokens == 5
    assert Usage.from_dict(usage.to_dict()) == usage
    for bad in (-1, True, 1.0, "2", 2**40 + 1):
        with pytest.raises(MalformedUsageError, match=name):
            Usage(**{name: bad})  # type: ignore[arg-type]
    assert not Usage(input_tokens=1).has_units


_ANY_COUNT = st.one_of(
    st.integers(-5, 2**64),
    st.integers(0, 3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.text(max_size=2),
)


_VALID_COUNTS = usages().map(lambda usage: tuple(getattr(usage, name) for name in USAGE_FIELDS))


@given(st.one_of(st.tuples(*[_ANY_COUNT] * len(USAGE_FIELDS)), _VALID_COUNTS))
def test_usage_of_counts_accepts_and_refuses_as_usage_does(counts: tuple[object, ...]) -> None:
    """Counts read back are refused with the very error ``Usage(...)`` gives, or make the equal `Usage`."""
    try:
        expected: Usage | str = Usage(**dict(zip(USAGE_FIELDS, counts, strict=True)))  # type: ignore[arg-type]
    except MalformedUsageError as exc:
        expected = str(exc)
    try:
        got: Usage | str = usage_of_counts(counts)
    except MalformedUsageError as exc:
        got = str(exc)
    assert got == expected
    assert type(got) is type(expected)
