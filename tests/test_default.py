"""The process-wide default meter, and functions that cannot drift from `Meter`'s signatures."""

from __future__ import annotations

import inspect
from typing import TypedDict

import meterline
from meterline import Meter, Usage


def _parameters(function: object, *, skip: int = 0) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter, the first ``skip`` left out."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in list(signature.parameters.values())[skip:]]


def test_record_has_meter_records_signature() -> None:
    """`meterline.record` takes exactly `Meter.record`'s parameters, kinds and defaults."""
    assert _parameters(meterline.record) == _parameters(Meter.record, skip=1)


def test_record_tool_has_meter_record_tools_signature() -> None:
    """`meterline.record_tool` takes exactly `Meter.record_tool`'s parameters."""
    assert _parameters(meterline.record_tool) == _parameters(Meter.record_tool, skip=1)


def test_scope_has_meter_scopes_signature() -> None:
    """`meterline.scope` takes exactly `Meter.scope`'s parameters."""
    assert _parameters(meterline.scope) == _parameters(Meter.scope, skip=1)


def test_configure_takes_meters_options_and_a_ready_meter() -> None:
    """`meterline.configure` takes every option of `Meter()` (same kinds and defaults), plus ``meter=``."""
    options = [parameter for parameter in _parameters(meterline.configure) if parameter[0] != "meter"]
    assert options == _parameters(Meter.__init__, skip=1)
    assert ("meter", inspect.Parameter.KEYWORD_ONLY, None) in _parameters(meterline.configure)


def test_configure_builds_the_default_meter_from_meters_options() -> None:
    """Options given to `configure` reach the new default meter; the previous one is replaced."""
    first = meterline.get_meter()
    meter = meterline.configure(max_live_keys=7, default_max_output_tokens=11)
    assert meterline.get_meter() is meter is not first
    assert meter.stats().max_live_keys == 7
    assert meter.reserve(model="gpt-4o-mini", input_tokens=1).max_output_tokens == 11


def test_the_forwarders_record_on_the_default_meter() -> None:
    """`meterline.record` and `record_tool` record on `get_meter()`, inside `meterline.scope`."""
    with meterline.scope(user="u1"):
        event = meterline.record(Usage(input_tokens=2), model="gpt-4o-mini", provider="openai", api=None)
        tool = meterline.record_tool("search", llm_call_id=event.id)
    totals = meterline.get_meter().totals(by=("user",))
    assert totals["u1",].events == 2
    assert tool.links == (event.id,)


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_default_meter_and_module_functions() -> None:
    """meterline.record/scope/record_tool use the process-wide meter; configure() replaces it."""
    with meterline.scope(user="u1"):
        meterline.record(Usage(input_tokens=3), **GPT)
        meterline.record_tool("search")
    assert meterline.get_meter().totals().usage.input_tokens == 3
    assert meterline.get_meter() is meterline.get_meter()
    fresh = meterline.configure(max_live_keys=10)
    assert meterline.get_meter() is fresh
    assert fresh.totals().events == 0
    mine = Meter()
    assert meterline.configure(meter=mine) is mine
