"""Anthropic's Messages format (also served by Bedrock InvokeModel and Vertex AI for Claude).

``input_tokens`` EXCLUDES cache reads and writes, which are added back; cache writes split
into 5 minute and 1 hour TTLs in ``cache_creation``. A stream seeds the usage in
``message_start`` and overwrites it field by field in ``message_delta`` (the counts are
cumulative: never add). The calls of Anthropic's server tools are counted in
``usage.server_tool_use`` (web searches, billed per search, and web fetches).
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import OBJECT, StreamState, opt, plain_dict
from meterline._usage import MAX_COUNT, UNIT_FIELDS, Usage, check_count, new_usage, with_units
from meterline.exceptions import MalformedUsageError

__all__ = ["messages_event", "messages_usage", "reduce_messages_event"]


_ANTHROPIC_NAMES: Final = (
    "input_tokens + cache_creation_input_tokens + cache_read_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens",
    "output_tokens_details.thinking_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def messages_usage(u: dict[Any, Any]) -> Usage:
    """Anthropic: input_tokens EXCLUDES cache reads and writes, which are added back."""
    # Each count is checked inline (no call unless it is bad, to name it): this is a hot path.
    uncached: Any = u.get("input_tokens")
    if type(uncached) is not int or not 0 <= uncached <= MAX_COUNT:
        check_count("input_tokens", uncached)
    o: Any = u.get("output_tokens")
    if type(o) is not int or not 0 <= o <= MAX_COUNT:
        check_count("output_tokens", o)
    read: Any = u.get("cache_read_input_tokens")
    if read is None:
        read = 0
    elif type(read) is not int or not 0 <= read <= MAX_COUNT:
        check_count("cache_read_input_tokens", read)
    hour = split = think = 0
    cc = u.get("cache_creation")
    if cc is not None:
        if type(cc) is not dict:
            raise MalformedUsageError("cache_creation", cc, OBJECT)
        hour = opt(cc, "ephemeral_1h_input_tokens", _ANTHROPIC_NAMES[3])
        split = opt(cc, "ephemeral_5m_input_tokens", "cache_creation.ephemeral_5m_input_tokens") + hour
    cache_write: Any = u.get("cache_creation_input_tokens")
    if cache_write is None:
        cache_write = split
    elif type(cache_write) is not int or not 0 <= cache_write <= MAX_COUNT:
        check_count("cache_creation_input_tokens", cache_write)
    otd = u.get("output_tokens_details")
    if otd is not None:
        if type(otd) is not dict:
            raise MalformedUsageError("output_tokens_details", otd, OBJECT)
        think = opt(otd, "thinking_tokens", _ANTHROPIC_NAMES[5])
    if split > cache_write:
        # cache_creation_input_tokens = ephemeral_5m + ephemeral_1h: the split cannot exceed it.
        name = _ANTHROPIC_NAMES[3] if hour > cache_write else "cache_creation.ephemeral_5m + ephemeral_1h"
        value = hour if hour > cache_write else split
        raise MalformedUsageError(name, value, f"at most cache_creation_input_tokens ({cache_write})")
    if think > o:
        raise MalformedUsageError(_ANTHROPIC_NAMES[5], think, f"at most output_tokens ({o})")
    total_input = uncached + cache_write + read
    if total_input > MAX_COUNT:
        check_count(_ANTHROPIC_NAMES[0], total_input)
    # Every count is a valid int and every subset rule was checked under Anthropic's names.
    usage = new_usage(total_input, read, cache_write, hour, o, think, 0, 0)
    stu = u.get("server_tool_use")
    if stu is None:
        return usage
    if type(stu) is not dict:
        raise MalformedUsageError("server_tool_use", stu, OBJECT)
    searches = opt(stu, "web_search_requests", "server_tool_use.web_search_requests")
    fetches = opt(stu, "web_fetch_requests", "server_tool_use.web_fetch_requests")
    return with_units(usage, UNIT_FIELDS, (searches, fetches, 0, 0))


# --------------------------------------------------------------------------------------------
# Streams


def messages_event(acc: StreamState, d: dict[Any, Any]) -> None:
    """A Messages stream event: ``message_start`` seeds the usage, ``message_delta`` overwrites fields."""
    t = d.get("type")
    if t == "message_start":
        m = d.get("message")
        if type(m) is not dict:
            raise MalformedUsageError("message", m, "an object")
        acc.capture(m.get("model"), m.get("id"))
        u = m.get("usage")
        if u is None:
            return
        if type(u) is not dict:
            raise MalformedUsageError("message.usage", u, OBJECT)
        state = dict(u)
    elif t == "message_delta":
        u = d.get("usage")
        if u is None:
            return
        if type(u) is not dict:
            raise MalformedUsageError("usage", u, OBJECT)
        # Cumulative counts: overwrite every non-null field, never add (tensorzero/tensorzero#5481).
        state = dict(acc.partial or ())
        for key, value in u.items():
            if value is not None:
                state[key] = value
    else:
        return
    acc.usage = messages_usage(state)
    acc.partial = state
    acc.provisional = t == "message_start"  # output_tokens is a placeholder until message_delta


def reduce_messages_event(acc: StreamState, obj: Any) -> dict[Any, Any] | None:
    """A Messages event object as the dict `messages_event` needs, or ``None`` when it carries no usage."""
    t = getattr(obj, "type", None)
    if t == "message_start":
        m = getattr(obj, "message", None)
        u = getattr(m, "usage", None)
        return {
            "type": t,
            "message": {
                "usage": None if u is None else plain_dict(u),
                "model": getattr(m, "model", None),
                "id": getattr(m, "id", None),
            },
        }
    if t == "message_delta":
        u = getattr(obj, "usage", None)
        return {"type": t, "usage": None if u is None else plain_dict(u)}
    return None
