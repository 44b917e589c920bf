"""Cohere's v2 format: the billed units.

``usage.tokens`` counts Cohere's own unbilled preamble too, so the billed units are read.
The Cohere SDK types counts as floats. A stream reports usage in ``message-end``.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import OBJECT, StreamState, dump, opt
from meterline._usage import Usage, checked_usage
from meterline.exceptions import MalformedUsageError

__all__ = ["COHERE_USAGE_EVENTS", "cohere_event", "cohere_usage", "reduce_cohere_event", "sdk_floats"]


def cohere_usage(u: dict[Any, Any]) -> Usage | None:
    """Cohere v2: the billed units (``usage.tokens`` counts Cohere's own unbilled preamble too)."""
    if "billed_units" in u:
        units = u["billed_units"]
        if units is None:
            return None
        if type(units) is not dict:
            raise MalformedUsageError("billed_units", units, OBJECT)
        prefix = "billed_units."
    elif "input_tokens" in u or "output_tokens" in u:
        units, prefix = u, ""  # a bare billed_units block
    else:
        return None
    i = opt(units, "input_tokens", f"{prefix}input_tokens")
    o = opt(units, "output_tokens", f"{prefix}output_tokens")
    return checked_usage(
        (
            f"{prefix}input_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            f"{prefix}output_tokens",
            "reasoning_tokens",
            "audio_input_tokens",
            "audio_output_tokens",
        ),
        i,
        0,
        0,
        0,
        o,
        0,
        0,
        0,
    )


def sdk_floats(data: dict[Any, Any]) -> None:
    """Turn integral float counts back into ints: the Cohere SDK types billed units as ``float``."""
    usage = data.get("usage")
    units = usage.get("billed_units") if type(usage) is dict else None
    if type(units) is dict:
        for key, value in units.items():
            if type(value) is float and value.is_integer() and value >= 0:
                units[key] = int(value)


# --------------------------------------------------------------------------------------------
# Streams


COHERE_USAGE_EVENTS: Final = frozenset({"message-start", "message-end"})


def cohere_event(acc: StreamState, d: dict[Any, Any]) -> None:
    """A Cohere v2 stream event: ``message-end``'s ``delta.usage``."""
    t = d.get("type")
    if t == "message-start":
        acc.capture(None, d.get("id"))
        return
    if t != "message-end":
        return
    delta = d.get("delta")
    if type(delta) is not dict:
        raise MalformedUsageError("delta", delta, "an object")
    u = delta.get("usage")
    if u is None:
        return
    if type(u) is not dict:
        raise MalformedUsageError("delta.usage", u, OBJECT)
    usage = cohere_usage(u)
    if usage is not None:
        acc.usage = usage


def reduce_cohere_event(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """An event object as the dict `cohere_event` needs, or ``None`` when it carries no usage."""
    t = getattr(obj, "type", None)
    if type(t) is str and t in COHERE_USAGE_EVENTS:
        data = dump(obj)
        sdk_floats(data)
        return data
    return None
