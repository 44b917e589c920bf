"""A frozen dataclass built through its mutable twin is an ordinary, frozen instance of it."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from meterline import Usage
from meterline._frozen import twin


@dataclasses.dataclass(frozen=True, slots=True)
class _Point:
    x: int
    y: str


@dataclasses.dataclass(frozen=True)
class _Unslotted:
    x: int


def test_a_twin_builds_an_ordinary_frozen_instance() -> None:
    """Built through the twin, the value has the frozen class, equals and hashes as one made normally."""
    built = twin(_Point)(1, "a")
    built.__class__ = _Point
    assert type(built) is _Point
    assert built == _Point(1, "a")
    assert hash(built) == hash(_Point(1, "a"))
    assert pickle.loads(pickle.dumps(built)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.x = 2  # type: ignore[misc]


def test_usage_built_by_normalisers_is_frozen() -> None:
    """`new_usage` gives a real, frozen `Usage` equal to the validated constructor's."""
    from meterline._usage import new_usage

    usage = new_usage(10, 2, 3, 1, 5, 4, 0, 0)
    assert type(usage) is Usage
    assert usage == Usage(
        input_tokens=10,
        cache_read_tokens=2,
        cache_write_tokens=3,
        cache_write_1h_tokens=1,
        output_tokens=5,
        reasoning_tokens=4,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 0  # type: ignore[misc]


def test_an_unslotted_class_has_no_twin() -> None:
    """Only a slotted dataclass has a twin of the same layout: any other class is refused."""
    with pytest.raises(TypeError, match="_Unslotted is not a slotted dataclass"):
        twin(_Unslotted)
