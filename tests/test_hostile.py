"""Hostile input never corrupts a meter: it normalises, or raises a MeterlineError and changes nothing."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline import Meter, MeterlineError, Usage, usage_from

FIXTURES = Path(__file__).parent / "fixtures"
RESPONSES = [
    json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(FIXTURES.glob("*/*.json"))
    if path.parent.name != "malformed"
]
RESPONSES = [case for case in RESPONSES if case["kind"] == "response"]

HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(math.nan),
    st.just(10**400),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _mutate(document: Any, path: tuple[Any, ...], value: Any, *, delete: bool) -> Any:
    mutated = copy.deepcopy(document)
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return mutated


def _assert_unchanged_or_valid(meter: Meter, payload: Any, provider: str | None) -> None:
    before = meter.totals()
    events_before = meter.stats().events
    try:
        event = meter.record(payload, provider=provider)
    except MeterlineError:
        assert meter.totals() == before
        assert meter.stats().events == events_before
        return
    assert meter.stats().events == events_before + 1
    if event.usage is not None:
        assert Usage(**event.usage.to_dict()) == event.usage  # every count valid, every subset consistent


@pytest.mark.filterwarnings("ignore::meterline.UnpricedModelWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_payloads_normalise_or_raise_cleanly(data: st.DataObject) -> None:
    """A real body with one value replaced or removed either records a valid event or changes nothing."""
    case = data.draw(st.sampled_from(RESPONSES))
    payload = case["payload"]
    path = data.draw(st.sampled_from(_paths(payload)))
    delete = data.draw(st.booleans())
    mutated = _mutate(payload, path, data.draw(HOSTILE_VALUES), delete=delete)
    provider = None if case["detectable"] else case["provider"]
    meter = Meter()
    meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    _assert_unchanged_or_valid(meter, mutated, provider)


@pytest.mark.filterwarnings("ignore::meterline.UnpricedModelWarning")
@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_random_json_normalises_or_raises_cleanly(payload: Any) -> None:
    """Arbitrary JSON-like input never escapes as anything but a MeterlineError."""
    meter = Meter()
    _assert_unchanged_or_valid(meter, payload, None)
    with contextlib.suppress(MeterlineError):
        usage_from(json.dumps(payload))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_truncated_and_garbage_bytes_raise_cleanly(blob: bytes) -> None:
    """Truncated JSON and random bytes raise a MeterlineError (or normalise), never anything else."""
    body = json.dumps(RESPONSES[0]["payload"]).encode()
    for candidate in (blob, body[: len(blob)]):
        with contextlib.suppress(MeterlineError):
            usage_from(candidate)
