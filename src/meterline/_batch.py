"""A Batch API job's results recorded at the batch price: one event per billed request.

OpenAI's batch output file has a line per request, ``{"custom_id", "response": {"status_code",
"body"}, "error"}``; Anthropic's results have ``{"custom_id", "result": {"type": "succeeded",
"message"}}``. Each succeeded request becomes an event read from its body, with
``batch=True`` (half the standard price at both) and its ``custom_id`` as the operation id;
requests that failed, expired or were canceled are not billed and are only counted. Every
line is read and checked before the first is recorded: a bad file records nothing.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from meterline._default import get_meter
from meterline._events import UsageEvent
from meterline._meter import Meter
from meterline._providers import extract
from meterline.exceptions import ConfigurationError, MalformedUsageError

__all__ = ["BatchResults", "record_batch"]

_LINE: Final = "a batch result line: OpenAI's {custom_id, response, error} or Anthropic's {custom_id, result}"


@dataclass(frozen=True, slots=True)
class BatchResults:
    """What `record_batch` recorded."""

    events: tuple[UsageEvent, ...]
    """One event per billed request, in the file's order."""
    not_billed: int
    """Requests that failed, expired or were canceled (no event: the provider bills none)."""


def record_batch(
    results: str | Path | Iterable[str | bytes | Mapping[str, Any]],
    *,
    meter: Meter | None = None,
    provider: str | None = None,
    tags: Mapping[str, str | int] | None = None,
) -> BatchResults:
    """Record a Batch API job's results, each billed request at the batch price.

    Args:
        results: The results file (a path to its JSON lines), or its lines (text, bytes or
            parsed objects), OpenAI's or Anthropic's format.
        meter: The meter to record on (default: the process-wide one).
        provider: Who billed the job (default: ``openai`` or ``anthropic``, by the format);
            ``azure`` for an Azure OpenAI batch.
        tags: Dimensions for every event (the job's id, a customer…).

    Returns:
        The events recorded and how many requests were not billed.

    Raises:
        MalformedUsageError: a line is not a result of either format, or its body's usage is
            bad (nothing is recorded).
        ConfigurationError: a file that cannot be read, a bad ``provider`` or ``tags``
            (nothing is recorded).
    """
    lines = _lines(results)
    billed: list[tuple[dict[str, Any], str, str | None]] = []
    not_billed = 0
    for number, line in enumerate(lines, 1):
        body, default_provider, custom_id = _result(number, line)
        if body is None:
            not_billed += 1
            continue
        chosen = provider or default_provider
        extract(body, chosen)  # checked before anything is recorded
        billed.append((body, chosen, custom_id))
    target = meter if meter is not None else get_meter()
    events = tuple(
        target.record(body, provider=chosen, batch=True, operation_id=custom_id, tags=tags)
        for body, chosen, custom_id in billed
    )
    return BatchResults(events=events, not_billed=not_billed)


def _lines(results: object) -> list[Any]:
    if isinstance(results, str | Path):
        try:
            with Path(results).open("rb") as file:
                return [line for line in file if line.strip()]
        except OSError as exc:
            raise ConfigurationError(
                f"results={str(results)!r}: cannot read the file ({exc.strerror})"
            ) from None
    if isinstance(results, bytes | bytearray | Mapping):
        raise MalformedUsageError("results", results, "a path or an iterable of result lines")
    return [line for line in results if not isinstance(line, str | bytes) or line.strip()]  # type: ignore[attr-defined]


def _result(number: int, line: Any) -> tuple[dict[str, Any] | None, str, str | None]:
    """The billed body of one result line (``None`` when not billed), its provider and custom id."""
    if isinstance(line, str | bytes | bytearray):
        try:
            line = json.loads(line)
        except ValueError:
            raise MalformedUsageError(f"line {number}", str(line)[:80], _LINE) from None
    if not isinstance(line, Mapping):
        raise MalformedUsageError(f"line {number}", line, _LINE)
    custom_id = line.get("custom_id")
    if custom_id is not None and type(custom_id) is not str:
        raise MalformedUsageError(f"line {number}: custom_id", custom_id, "a str")
    if "result" in line:  # Anthropic
        result = line["result"]
        if type(result) is not dict or type(result.get("type")) is not str:
            raise MalformedUsageError(f"line {number}: result", result, "an object with a type")
        if result["type"] != "succeeded":
            return None, "anthropic", custom_id
        message = result.get("message")
        if type(message) is not dict:
            raise MalformedUsageError(f"line {number}: result.message", message, "a Message object")
        return message, "anthropic", custom_id
    if "response" in line or "error" in line:  # OpenAI
        response = line.get("response")
        if response is None:
            return None, "openai", custom_id
        if type(response) is not dict:
            raise MalformedUsageError(f"line {number}: response", response, "an object")
        status, body = response.get("status_code"), response.get("body")
        if type(status) is not int or not 200 <= status < 300:
            return None, "openai", custom_id
        if type(body) is not dict:
            raise MalformedUsageError(f"line {number}: response.body", body, "a response body object")
        return body, "openai", custom_id
    raise MalformedUsageError(f"line {number}", dict(line), _LINE)
