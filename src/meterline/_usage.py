"""The canonical usage value: inclusive token counts, as OpenTelemetry GenAI and genai-prices count them."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final, cast

from meterline._frozen import twin
from meterline.exceptions import MalformedUsageError

__all__ = [
    "MAX_COUNT",
    "MAX_EVENT_TOKENS",
    "TOKEN_FIELDS",
    "UNIT_FIELDS",
    "USAGE_FIELDS",
    "Usage",
    "check_calls",
    "check_count",
    "check_counts",
    "check_event_tokens",
    "checked_usage",
    "new_usage",
    "usage_of_counts",
    "with_units",
]

USAGE_FIELDS: Final = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "file_search_requests",
    "code_execution_requests",
)
"""The canonical fields of `Usage`, in a fixed order (used by snapshots and the ledger)."""
TOKEN_FIELDS: Final = USAGE_FIELDS[:8]
"""The token counts of `Usage`: ``input_tokens`` and ``output_tokens`` and their subsets."""
UNIT_FIELDS: Final = USAGE_FIELDS[8:]
"""The billable units of `Usage` that are not tokens: calls of the provider's own (server-side)
tools, each billed per call where the provider charges for it."""

MAX_COUNT: Final = 2**63 - 1
"""The largest token count accepted: what a signed 64-bit ledger column holds."""
MAX_EVENT_TOKENS: Final = 2**40
"""The most input (or output) tokens one recorded event may count: about 1.1 trillion, 100,000
times the largest context window. A `Usage` may hold more (`MAX_COUNT`), but `Meter.record`
refuses it: stores add events up in 64-bit columns (roll-ups, budget counters, reports), and
with at most 2**40 per event a sum cannot pass 2**63 before 8 million such events."""
_NON_NEGATIVE_INT: Final = "a non-negative int below 2**63"
_INT_ONLY: Final = {int}


def check_count(field: str, value: object) -> int:
    """Return ``value`` if it is a valid token count, else raise `MalformedUsageError`.

    A valid count is an ``int`` (not a ``bool``) from zero to `MAX_COUNT`. Floats are refused
    even when integral: a provider that sends ``12.0`` tokens sent something unexpected.

    Args:
        field: The name to report in the error (a provider field or a canonical one).
        value: The value to check.

    Returns:
        The value, typed as ``int``.

    Raises:
        MalformedUsageError: naming ``field`` and ``value``.
    """
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    raise MalformedUsageError(field, value, _NON_NEGATIVE_INT)


def check_calls(field: str, count: int) -> None:
    """Raises `MalformedUsageError` unless a count of tool calls is at most `MAX_EVENT_TOKENS`.

    One usage's server-side tool calls are bounded as one event's tokens are (stores add
    them up in 64-bit columns); `Meter.record` then needs no check of its own for them.
    """
    if count > MAX_EVENT_TOKENS:
        raise MalformedUsageError(field, count, f"at most {MAX_EVENT_TOKENS:,} (2**40) calls in one usage")


def check_event_tokens(usage: Usage) -> None:
    """Raises `MalformedUsageError` unless ``usage`` counts at most `MAX_EVENT_TOKENS` each way.

    Its other token counts are parts of ``input_tokens`` or ``output_tokens``, so are bounded
    too; its tool calls are bounded by `Usage` itself (`check_calls`).
    """
    for name in ("input_tokens", "output_tokens"):
        value = getattr(usage, name)
        if value > MAX_EVENT_TOKENS:
            raise MalformedUsageError(
                name,
                value,
                f"at most {MAX_EVENT_TOKENS:,} (2**40) tokens in one event: what stores can add up",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token usage of one model call, in inclusive form.

    ``input_tokens`` counts every prompt-side token, cache reads and writes included, and
    ``output_tokens`` counts every generated token, reasoning included; the other fields are
    subsets of one of them. Counts are non-negative ints. Unknown usage is represented by
    ``None`` wherever a ``Usage`` is expected, never by a zero ``Usage``.

    Besides tokens, a usage counts the calls of the provider's own server-side tools that the
    provider reports (web searches, web fetches, file searches, code executions): each is
    billed per call where the provider charges for it, apart from the tokens it adds.

    ``Usage`` values add with ``+`` and ``sum()``.

    Raises:
        MalformedUsageError: when a count is not a non-negative int, or a subset exceeds its
            total (for example ``cache_read_tokens + cache_write_tokens > input_tokens``).
    """

    input_tokens: int = 0
    """All prompt-side tokens, **including** cache reads and cache writes (and audio input)."""
    cache_read_tokens: int = 0
    """Tokens of the prompt served from a prompt cache. Included in ``input_tokens``."""
    cache_write_tokens: int = 0
    """Tokens of the prompt written to a prompt cache, all TTLs. Included in ``input_tokens``."""
    cache_write_1h_tokens: int = 0
    """Cache writes with a long (1 hour) TTL. Included in ``cache_write_tokens``."""
    output_tokens: int = 0
    """All generated tokens, **including** reasoning (thinking) and audio output."""
    reasoning_tokens: int = 0
    """Reasoning (thinking) tokens. Included in ``output_tokens``."""
    audio_input_tokens: int = 0
    """Audio tokens of the prompt. Included in ``input_tokens``."""
    audio_output_tokens: int = 0
    """Audio tokens generated. Included in ``output_tokens``."""
    web_search_requests: int = 0
    """Searches the provider's web search tool ran (Anthropic ``server_tool_use.web_search_requests``,
    OpenAI ``web_search_call`` items, Gemini's grounding with Google Search): priced per search."""
    web_fetch_requests: int = 0
    """Pages the provider's web fetch tool read (Anthropic ``server_tool_use.web_fetch_requests``):
    counted; Anthropic bills no fee for them beyond their tokens."""
    file_search_requests: int = 0
    """Calls of the provider's file (vector store) search tool (OpenAI ``file_search_call`` items):
    priced per call."""
    code_execution_requests: int = 0
    """Code execution sessions the provider ran (OpenAI code interpreter containers, Anthropic
    ``server_tool_use.code_execution_requests``): priced per session where a price is known."""

    def __post_init__(self) -> None:
        for name in USAGE_FIELDS:
            check_count(name, getattr(self, name))
        for name in UNIT_FIELDS:
            check_calls(name, getattr(self, name))
        _check_subsets(
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
        )

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    @property
    def has_units(self) -> bool:
        """Whether any billable unit that is not a token (a server-side tool call) is counted."""
        return bool(
            self.web_search_requests
            or self.web_fetch_requests
            or self.file_search_requests
            or self.code_execution_requests
        )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to a cache (the exclusive view)."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def __add__(self, other: object) -> Usage:
        if type(other) is not Usage:
            return NotImplemented
        return new_usage(
            self.input_tokens + other.input_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.audio_input_tokens + other.audio_input_tokens,
            self.audio_output_tokens + other.audio_output_tokens,
            self.web_search_requests + other.web_search_requests,
            self.web_fetch_requests + other.web_fetch_requests,
            self.file_search_requests + other.file_search_requests,
            self.code_execution_requests + other.code_execution_requests,
        )

    def __radd__(self, other: object) -> Usage:
        # Allow sum() to start from 0.
        if other == 0 and type(other) is int:
            return self
        return NotImplemented

    def to_dict(self) -> dict[str, int]:
        """Return every canonical field as a plain dict (zeros included), JSON-ready."""
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build a `Usage` from `to_dict` output; missing fields are zero.

        Raises:
            MalformedUsageError: on an unknown key, a bad count or an impossible subset.
        """
        if not isinstance(data, Mapping):
            raise MalformedUsageError("usage", data, "a mapping of canonical usage fields")
        unknown = [key for key in data if key not in USAGE_FIELDS]
        if unknown:
            raise MalformedUsageError(str(unknown[0]), data[unknown[0]], f"one of {', '.join(USAGE_FIELDS)}")
        return cls(**data)


def _check_subsets(
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    cache_write_1h: int,
    output_tokens: int,
    reasoning: int,
    audio_in: int,
    audio_out: int,
) -> None:
    if cache_read + cache_write > input_tokens:
        raise MalformedUsageError(
            "cache_read_tokens + cache_write_tokens",
            cache_read + cache_write,
            f"at most input_tokens ({input_tokens})",
        )
    if cache_write_1h > cache_write:
        raise MalformedUsageError(
            "cache_write_1h_tokens", cache_write_1h, f"at most cache_write_tokens ({cache_write})"
        )
    if audio_in > input_tokens:
        raise MalformedUsageError("audio_input_tokens", audio_in, f"at most input_tokens ({input_tokens})")
    if reasoning > output_tokens:
        raise MalformedUsageError("reasoning_tokens", reasoning, f"at most output_tokens ({output_tokens})")
    if audio_out > output_tokens:
        raise MalformedUsageError(
            "audio_output_tokens", audio_out, f"at most output_tokens ({output_tokens})"
        )


_UsageSlots: Final = twin(Usage)


def new_usage(
    input_tokens: int,
    cache_read: int,
    cache_write: int,
    cache_write_1h: int,
    output_tokens: int,
    reasoning: int,
    audio_in: int,
    audio_out: int,
    web_search: int = 0,
    web_fetch: int = 0,
    file_search: int = 0,
    code_execution: int = 0,
) -> Usage:
    """Build a `Usage` from counts the caller has already validated, without validating again.

    On every response's path (a normaliser builds one per response): built through its
    mutable twin, see `meterline._frozen`.
    """
    usage: Any = _UsageSlots(
        input_tokens,
        cache_read,
        cache_write,
        cache_write_1h,
        output_tokens,
        reasoning,
        audio_in,
        audio_out,
        web_search,
        web_fetch,
        file_search,
        code_execution,
    )
    usage.__class__ = Usage
    return usage  # type: ignore[no-any-return]


def check_counts(names: tuple[str, ...], values: tuple[object, ...]) -> tuple[int, ...]:
    """Check several counts at once (see `check_count`); ``names[i]`` names ``values[i]`` in errors.

    The common case (every count a valid int) takes one pass; only a bad value is looked
    for field by field. The type test comes first, so ``min`` and ``max`` compare ints only.
    """
    if set(map(type, values)) != _INT_ONLY or min(cast("tuple[int, ...]", values)) < 0:
        for name, value in zip(names, values, strict=True):
            check_count(name, value)
    counts = cast("tuple[int, ...]", values)
    if max(counts) > MAX_COUNT:
        for name, value in zip(names, counts, strict=True):
            check_count(name, value)
    return counts


def checked_usage(
    field_names: tuple[str, str, str, str, str, str, str, str],
    input_tokens: object,
    cache_read: object,
    cache_write: object,
    cache_write_1h: object,
    output_tokens: object,
    reasoning: object,
    audio_in: object,
    audio_out: object,
) -> Usage:
    """Validate canonical counts computed from a provider payload and build a `Usage`.

    ``field_names`` names, for each canonical field, what to call it in an error (the
    provider's own field when a count came straight from one).
    """
    counts = cast(
        "tuple[int, int, int, int, int, int, int, int]",
        check_counts(
            field_names,
            (
                input_tokens,
                cache_read,
                cache_write,
                cache_write_1h,
                output_tokens,
                reasoning,
                audio_in,
                audio_out,
            ),
        ),
    )
    i, cr, cw, cw1, o, r, ai, ao = counts
    _check_subsets(i, cr, cw, cw1, o, r, ai, ao)
    return new_usage(i, cr, cw, cw1, o, r, ai, ao)


def usage_of_counts(counts: tuple[object, ...]) -> Usage:
    """A `Usage` of all its counts, in `USAGE_FIELDS` order, checked as `Usage` checks them.

    For counts read back from outside (a spool line): the same rules as ``Usage(...)`` (each
    count, each tool-call count, the parts within their wholes), by the same functions, in
    one pass when every count is valid, and built through the mutable twin: 3.4 µs where
    ``Usage(**dict(zip(USAGE_FIELDS, counts)))`` takes 5.8-6.7 (a spool line of a model call).

    Raises:
        MalformedUsageError: naming the first field in error (``counts`` must have one count
            per field: the caller checks that).
    """
    i, cr, cw, cw1, o, r, ai, ao, *units = check_counts(USAGE_FIELDS, counts)
    for name, count in zip(UNIT_FIELDS, units, strict=True):
        check_calls(name, count)
    _check_subsets(i, cr, cw, cw1, o, r, ai, ao)
    return new_usage(i, cr, cw, cw1, o, r, ai, ao, *units)


def with_units(usage: Usage, names: tuple[str, str, str, str], counts: tuple[object, ...]) -> Usage:
    """``usage`` with its billable units (see `UNIT_FIELDS`) set to ``counts``, checked.

    Args:
        usage: The token counts, already checked.
        names: What to call each unit in an error (the provider's own field).
        counts: The web searches, web fetches, file searches and code executions, in that order.

    Raises:
        MalformedUsageError: naming the field, unless every count is a non-negative int.
    """
    calls = check_counts(names, counts)
    for name, count in zip(names, calls, strict=True):
        check_calls(name, count)
    return new_usage(*_TOKENS_OF(usage), *calls)


_TOKENS_OF: Final = attrgetter(*TOKEN_FIELDS)
