"""What a reservation asks for: a call's worst case, checked, with its input estimated when not given."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from math import inf

from meterline._money import to_usd
from meterline._providers import canonical_provider
from meterline._usage import MAX_COUNT, check_count
from meterline.budgets._store import COUNTER_MAX
from meterline.exceptions import ConfigurationError, MalformedUsageError

__all__ = ["check_worst_case", "checked_request", "estimate_tokens"]


def estimate_tokens(content: object) -> int:
    """A deliberately high estimate of the tokens ``content`` holds, for reservations.

    Counts the UTF-8 bytes of every string in ``content`` (messages, nested dicts and lists,
    SDK objects with ``model_dump``) at three bytes per token, plus four tokens per message
    for the chat framing. English averages about four characters per token, so this
    overestimates ordinary text by about a third; pass ``input_tokens`` for an exact count.
    """
    total_bytes = 0
    parts = 0
    stack: list[object] = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total_bytes += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, Mapping):
            parts += 1
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray)):
            total_bytes += len(item)
        elif item is None or isinstance(item, (bool, int, float)):
            continue
        else:
            dump = getattr(item, "model_dump", None)
            if callable(dump):
                try:
                    stack.append(dump())
                except Exception:  # noqa: BLE001 - an odd object counts as its text
                    total_bytes += len(str(item).encode("utf-8", "replace"))
            else:
                total_bytes += len(str(item).encode("utf-8", "replace"))
    return -(-total_bytes // 3) + 4 * parts + 3


def checked_request(
    model: object,
    provider: object,
    input_tokens: object,
    messages: object,
    max_output_tokens: object,
    tool_calls: object,
    lease: object,
    *,
    default_output: int,
    default_lease: float,
) -> tuple[str | None, str | None, int, int, int, float]:
    """`Meter.reserve`'s arguments, checked and completed.

    The input is ``input_tokens``, else `estimate_tokens` of ``messages``, else 0; the output
    is ``max_output_tokens``, else ``default_output`` for a model call (0 for tool calls).

    Returns:
        ``(model, provider, input tokens, output tokens, tool calls, lease in seconds)``.

    Raises:
        ConfigurationError: on a bad model, provider or lease.
        MalformedUsageError: on a count that is not an int in 0..2**63-1.
    """
    if model is not None and (type(model) is not str or not model):
        raise ConfigurationError(f"model={model!r}: expected a non-empty str or None")
    canonical = canonical_provider(provider)  # type: ignore[arg-type]  # raises ConfigurationError
    # Counts are checked inline when valid (the common case) and by check_count otherwise.
    if input_tokens is None:
        input_tokens = 0 if messages is None else estimate_tokens(messages)
    elif type(input_tokens) is not int or not 0 <= input_tokens <= MAX_COUNT:
        input_tokens = check_count("input_tokens", input_tokens)
    if max_output_tokens is None:
        max_output_tokens = default_output if model is not None else 0
    elif type(max_output_tokens) is not int or not 0 <= max_output_tokens <= MAX_COUNT:
        max_output_tokens = check_count("max_output_tokens", max_output_tokens)
    if type(tool_calls) is not int or not 0 <= tool_calls <= MAX_COUNT:
        tool_calls = check_count("tool_calls", tool_calls)
    if lease is None:
        lease = default_lease
    elif type(lease) not in (int, float) or not 0 < lease < inf:  # type: ignore[operator]
        raise ConfigurationError(f"lease={lease!r}: expected a positive number of seconds")
    return model, canonical, input_tokens, max_output_tokens, tool_calls, float(lease)  # type: ignore[arg-type]


def check_worst_case(tokens: int, pico: int, model: str | None, provider: str | None) -> None:
    """Raises `MalformedUsageError` if a reservation's worst case passes what a counter holds.

    Args:
        tokens: Its input plus output tokens.
        pico: Its estimated cost, in pico-dollars.
        model: The model, for the message.
        provider: The provider, for the message.
    """
    if tokens > COUNTER_MAX:
        raise MalformedUsageError(
            "input_tokens + max_output_tokens",
            tokens,
            f"at most {COUNTER_MAX:,} tokens in one call (what a budget store's counter holds)",
        )
    if pico > COUNTER_MAX:
        raise MalformedUsageError(
            "the reservation's estimated cost",
            f"{to_usd(pico)} USD for {provider}/{model}",
            f"at most {to_usd(COUNTER_MAX)} USD for one call (what a budget store's counter holds)",
        )
