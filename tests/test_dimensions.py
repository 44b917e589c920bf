"""Dimensions: read-only, JSON-ready attribution values."""

from __future__ import annotations

import json
from typing import TypedDict

import pytest

from meterline import Meter, Usage


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_dimensions_are_read_only_json_ready_values(meter: Meter) -> None:
    """An event's dimensions cannot be changed, serialise with json, hash, copy and pickle."""
    import copy
    import pickle

    with meter.scope(user="u1"):
        event = meter.record(Usage(input_tokens=1), tags={"feature": "search"}, **GPT)
    dims = event.dimensions
    assert dims == {"user": "u1", "feature": "search"}
    assert json.loads(json.dumps(dims)) == {"user": "u1", "feature": "search"}
    for mutate in (
        lambda: dims.__setitem__("user", "u2"),  # type: ignore[index]
        lambda: dims.update(user="u2"),  # type: ignore[attr-defined]
        lambda: dims.pop("user"),  # type: ignore[attr-defined]
        dims.clear,  # type: ignore[attr-defined]
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert dims["user"] == "u1"
    assert hash(dims) == hash(copy.deepcopy(dims))
    assert pickle.loads(pickle.dumps(event)) == event


def test_check_text_refuses_only_what_utf8_cannot_store() -> None:
    """Any text UTF-8 encodes passes (accents, emoji, NUL); a lone surrogate is refused, naming it."""
    from meterline._dimensions import check_text
    from meterline.exceptions import ConfigurationError

    for value in ("plain", "café", "模型", "🙂", "a\x00b", ""):
        check_text(value, "model")
    with pytest.raises(ConfigurationError, match=r"model='gpt-\\udc80': holds a lone surrogate at 4"):
        check_text("gpt-\udc80", "model")
