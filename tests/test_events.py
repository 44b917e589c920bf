"""Events: priced once, frozen values whose id and cost are written out on first read."""

from __future__ import annotations

import re
from typing import TypedDict
from uuid import UUID

import pytest

from meterline import ConfigurationError, Meter, Usage, UsageEvent
from meterline._events import event_filters


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_ids_are_unique_and_sort_by_time(meter: Meter) -> None:
    """Event ids never repeat and sort in recording order."""
    ids = [meter.record(Usage(input_tokens=1), **GPT).id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_id_counter_wraps_without_breaking_ids(meter: Meter) -> None:
    """When the 32-bit id counter wraps, ids stay unique and well-formed."""
    import itertools

    meter._ids.counter = itertools.count(2**32 - 2)
    ids = [meter.record(Usage(input_tokens=1), **GPT).id for _ in range(4)]
    assert len(set(ids)) == 4
    assert all(UUID(i).version == 7 for i in ids)
    assert meter.stats().events >= 4


def test_events_from_the_record_path_are_ordinary_values(meter: Meter) -> None:
    """An event whose id and cost are written out on first read behaves as one built eagerly."""
    import copy
    import dataclasses
    import pickle

    usage = Usage(input_tokens=1200, cache_read_tokens=100, output_tokens=300)
    event = meter.record(usage, **GPT)
    twin = meter.record(usage, **GPT)
    eager = UsageEvent(**{f.name: getattr(event, f.name) for f in dataclasses.fields(UsageEvent)})
    assert eager == event
    assert repr(eager) == repr(event)
    assert pickle.loads(pickle.dumps(twin)) == twin
    assert copy.copy(twin) == twin
    assert dataclasses.asdict(twin)["cost"] == meter.pricer.cost(usage, "openai", "gpt-4o-mini")
    assert str(twin.cost) == "0.0003525"
    assert not hasattr(twin, "no_such_field")
    assert twin.id != event.id
    with pytest.raises(AttributeError):
        twin.id = "x"  # type: ignore[misc]


def test_derived_fields_are_stable_across_threads(meter: Meter) -> None:
    """Threads reading a fresh event's id and cost at once all see the same values."""
    import threading

    event = meter.record(Usage(input_tokens=10, output_tokens=5), **GPT)
    seen: list[tuple[str, object]] = []
    threads = [threading.Thread(target=lambda: seen.append((event.id, event.cost))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1


def test_check_recorded_refuses_what_record_would() -> None:
    """An event read back with a negative cost, a latency past a year or a lone surrogate is refused."""
    from meterline._events import check_recorded

    event = Meter().record(Usage(input_tokens=10), model="gpt-4o-mini", provider="openai", latency_ms=5.0)
    check_recorded(event)
    for change, field in (
        ({"cost": "-1"}, "cost"),
        ({"latency_ms": 1e303}, "latency_ms"),
        ({"model": "m\ud800"}, "model"),
    ):
        forged = UsageEvent.from_dict({**event.to_dict(), **change})
        with pytest.raises(ConfigurationError, match=f"{field}="):
            check_recorded(forged)


@pytest.mark.parametrize(
    ("cost", "finer"),
    [("-0.000000000001", False), ("-0.0000000000001", True), ("-0.0000000000004", True)],
)
def test_check_recorded_refuses_a_negative_cost_however_it_is_held(cost: str, finer: bool) -> None:
    """A cost below zero is refused whether kept as pico-dollars or finer (rounding to 0 pico-dollars)."""
    from meterline._events import check_recorded, finer_cost

    event = Meter().record(Usage(input_tokens=10), model="gpt-4o-mini", provider="openai")
    forged = UsageEvent.from_dict({**event.to_dict(), "cost": cost})
    assert (finer_cost(forged) is not None) is finer
    with pytest.raises(ConfigurationError, match="cost="):
        check_recorded(forged)


def test_check_recorded_can_leave_dimensions_checked_already() -> None:
    """With ``dimensions=False`` the event's dimensions are not checked again; its own fields still are."""
    from meterline._events import check_dimensions, check_recorded

    recorded = Meter().record(Usage(input_tokens=10), model="gpt-4o-mini")
    event = UsageEvent.from_dict({**recorded.to_dict(), "dimensions": {"user": "u\ud800"}})
    with pytest.raises(ConfigurationError, match="user="):
        check_dimensions(event.dimensions)
    with pytest.raises(ConfigurationError, match="user="):
        check_recorded(event)
    check_recorded(event, dimensions=False)
    forged = UsageEvent.from_dict({**event.to_dict(), "model": "m\ud800", "dimensions": {}})
    with pytest.raises(ConfigurationError, match="model="):
        check_recorded(forged, dimensions=False)


def test_event_filters_match_a_provider_by_its_canonical_name() -> None:
    """A filter's provider values become the names events store; other names and values stay."""
    assert event_filters({"provider": ["OpenAI", None, "no such!"], "user": "u1", "model": "GPT-4o"}) == {
        "provider": frozenset({"openai", None, "no such!"}),
        "user": frozenset({"u1"}),
        "model": frozenset({"GPT-4o"}),
    }
    assert event_filters(None) == {}
    with pytest.raises(ConfigurationError, match="where"):
        event_filters({"Bad Name": "x"})
