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

from meterline import ConfigurationError, Meter, MeterlineError, Usage, usage_from
from meterline._events import MAX_DURATION_MS

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


_SURROGATE = st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
"""Lone surrogates: text Python holds and no store can."""


@given(
    st.sampled_from(["model", "response_id", "operation_id", "request_model", "tag"]),
    st.text(max_size=5),
    _SURROGATE,
)
def test_text_no_store_can_keep_is_refused_and_changes_nothing(field: str, prefix: str, bad: str) -> None:
    """A lone surrogate in any text an event stores is refused by record(), naming it; nothing is counted."""
    meter = Meter()
    meter.record(Usage(input_tokens=1), model="gpt-4o-mini", provider="openai")
    before = (meter.stats().events, meter.totals())
    value = prefix + bad
    arguments: dict[str, object] = {"model": "gpt-4o-mini", "provider": "openai"}
    if field == "tag":
        arguments["tags"] = {"note": value}
    else:
        arguments[field] = value
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        meter.record(Usage(input_tokens=1), **arguments)  # type: ignore[arg-type]
    assert (meter.stats().events, meter.totals()) == before


@given(
    st.floats(min_value=MAX_DURATION_MS, exclude_min=True, allow_infinity=True) | st.integers(min_value=2**60)
)
def test_a_duration_past_a_year_is_refused(duration: float) -> None:
    """A latency or tool duration beyond a year (1e303, say) is refused before it can overflow a sum."""
    meter = Meter()
    with pytest.raises(ConfigurationError, match="latency_ms="):
        meter.record(Usage(input_tokens=1), model="gpt-4o-mini", provider="openai", latency_ms=duration)
    with pytest.raises(ConfigurationError, match="duration_ms="):
        meter.record_tool("search", duration_ms=duration)
    assert meter.stats().events == 0
    meter.record(Usage(input_tokens=1), model="gpt-4o-mini", provider="openai", latency_ms=MAX_DURATION_MS)
    assert meter.totals().requests == 1


def test_a_scope_value_no_store_can_keep_is_refused() -> None:
    """A scope whose dimension value holds a lone surrogate is refused when it is entered."""
    meter = Meter()
    with pytest.raises(ConfigurationError, match=r"lone surrogate"), meter.scope(user="u\udc80"):
        pass


def test_an_attempt_past_what_stores_hold_is_refused() -> None:
    """Attempt is an int from 1 to 2**31 - 1."""
    meter = Meter()
    with pytest.raises(ConfigurationError, match="attempt="):
        meter.record(Usage(input_tokens=1), model="gpt-4o-mini", provider="openai", attempt=2**40)


def test_a_usage_priced_past_what_a_ledger_holds_is_refused() -> None:
    """A usage whose cost passes 2**63 - 1 pico-dollars (about $9.2M) is refused; nothing is counted."""
    from meterline import MalformedUsageError

    meter = Meter()
    with pytest.raises(MalformedUsageError, match="usage priced under 9,223,372 USD"):
        meter.record(Usage(output_tokens=2**40), model="gpt-4o", provider="openai")  # $11M
    with pytest.raises(MalformedUsageError, match="tokens in one event"):
        meter.record(Usage(input_tokens=2**62), model="gpt-4o", provider="openai")
    assert meter.stats().events == 0
    assert meter.totals().requests == 0
    meter.record(Usage(input_tokens=10**9), model="gpt-4o", provider="openai")  # $2,500: fine
    assert meter.totals().requests == 1
