"""AWS Bedrock's Converse format.

``inputTokens`` EXCLUDES cache reads and writes, which are added back; ``cacheDetails``
splits the writes by TTL. A ConverseStream reports usage in its ``metadata`` event.
"""

from __future__ import annotations as _annotations

from typing import Any, Final

from meterline._providers._rules import OBJECT, StreamState, dump, opt
from meterline._usage import Usage, check_count, checked_usage
from meterline.exceptions import MalformedUsageError

__all__ = ["converse_event", "converse_usage", "reduce_converse_event"]


_BEDROCK_NAMES: Final = (
    "inputTokens + cacheReadInputTokens + cacheWriteInputTokens",
    "cacheReadInputTokens",
    "cacheWriteInputTokens",
    "cacheDetails[ttl=1h].inputTokens",
    "outputTokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
)


def converse_usage(u: dict[Any, Any]) -> Usage:
    """Bedrock Converse: inputTokens EXCLUDES cache reads and writes, which are added back."""
    uncached = check_count("inputTokens", u.get("inputTokens"))
    o = check_count("outputTokens", u.get("outputTokens"))
    cache_read = opt(u, "cacheReadInputTokens", "cacheReadInputTokens")
    details = u.get("cacheDetails")
    one_hour = detailed = 0
    if details is not None:
        if type(details) is not list:
            raise MalformedUsageError("cacheDetails", details, "a list of {ttl, inputTokens} objects or null")
        for entry in details:
            if type(entry) is not dict:
                raise MalformedUsageError("cacheDetails", entry, "a {ttl, inputTokens} object")
            n = opt(entry, "inputTokens", "cacheDetails[].inputTokens")
            detailed += n
            if entry.get("ttl") == "1h":
                one_hour += n
    cw = u.get("cacheWriteInputTokens")
    cache_write = detailed if cw is None else check_count("cacheWriteInputTokens", cw)
    if detailed > cache_write:
        # cacheDetails breaks the cache writes down by TTL: it cannot exceed them.
        name = _BEDROCK_NAMES[3] if one_hour > cache_write else "cacheDetails[].inputTokens (sum)"
        value = one_hour if one_hour > cache_write else detailed
        raise MalformedUsageError(name, value, f"at most cacheWriteInputTokens ({cache_write})")
    return checked_usage(
        _BEDROCK_NAMES, uncached + cache_read + cache_write, cache_read, cache_write, one_hour, o, 0, 0, 0
    )


# --------------------------------------------------------------------------------------------
# Streams


def converse_event(acc: StreamState, d: dict[Any, Any]) -> None:
    """A ConverseStream event: the ``metadata`` event's usage."""
    md = d.get("metadata")
    if md is None:
        if "usage" not in d:
            return
        md = d  # the metadata payload without its wrapper key
    elif type(md) is not dict:
        raise MalformedUsageError("metadata", md, "an object")
    u = md.get("usage")
    if u is None:
        return
    if type(u) is not dict:
        raise MalformedUsageError("metadata.usage", u, OBJECT)
    acc.usage = converse_usage(u)


def reduce_converse_event(acc: StreamState, obj: Any) -> dict[Any, Any]:
    """An event object (rare: boto3 gives dicts) as a dict."""
    return dump(obj)
