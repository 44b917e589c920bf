r"""A batch of events as PostgreSQL ``COPY … FROM STDIN`` text, and the text columns read back.

PostgreSQL text cannot hold NUL: the text columns store ``\x00`` as ESC ``0`` and ESC itself as
ESC ESC (ESC is U+FFFF, a noncharacter), which is reversible; JSON columns escape NUL already.
"""

from __future__ import annotations as _annotations

import json
import re
from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Final

from meterline._usage import USAGE_FIELDS
from meterline.ledger._postgres_schema import OPTIONAL_FIELDS
from meterline.ledger._rows import (
    EVENT_COLUMNS,
    cost_columns,
    event_id,
    hour_of,
)

if TYPE_CHECKING:
    from meterline._events import UsageEvent


__all__ = ["TEXT_COLUMNS", "copy_line", "escape", "field_value", "unescape"]

# PostgreSQL text cannot hold NUL: the text columns store "\x00" as ESC "0" and ESC itself as
# ESC ESC (ESC is U+FFFF, a noncharacter), which is reversible; JSON columns escape NUL already.
_ESC: Final = "\uffff"
_ESCAPED: Final = re.compile("\uffff(.)", re.DOTALL)
TEXT_COLUMNS: Final = (
    "id",
    "operation",
    "status",
    "provider",
    "model",
    "request_model",
    "price_version",
    "operation_id",
    "response_id",
)
_TEXT_INDEXES: Final = frozenset(EVENT_COLUMNS.index(name) for name in TEXT_COLUMNS)


def field_value(name: str, value: str) -> str | None:
    return None if name in OPTIONAL_FIELDS and value == "" else unescape(value)


def escape(text: str) -> str:
    """``text`` as a text column stores it (see `_ESC`)."""
    if "\x00" in text or _ESC in text:
        return text.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")
    return text


def unescape(text: str | None) -> str | None:
    """The inverse of `escape`."""
    if text is None or _ESC not in text:
        return text
    return _ESCAPED.sub(lambda match: "\x00" if match[1] == "0" else match[1], text)


_COPY_TEXT: Final = {
    ord("\\"): "\\\\",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    0: _ESC + "0",
    ord(_ESC): _ESC + _ESC,
}
"""COPY's text format escapes, plus `escape`'s (a no-op on JSON, which escapes NUL and U+FFFF)."""
_COPY_SPECIAL: Final = re.compile("[\\\\\t\n\r\x00\uffff]")
_USAGE_OF: Final = attrgetter(*USAGE_FIELDS)
_NO_USAGE: Final = "\t".join("0" * (1 + len(USAGE_FIELDS)))  # measured, then the counts


def copy_line(
    event: UsageEvent, dims_json: dict[int, tuple[Mapping[str, str], str]], texts: dict[str, str]
) -> str:
    """The line of COPY text that stores ``event``: `event_to_row`'s row, written out fast.

    Equal to formatting ``event_to_row(event)`` (a test checks it), but the dimensions' JSON
    is made once per dimensions object of the batch (``dims_json``), the fields that repeat
    from event to event (operation, status, provider, model, price version) are escaped once
    per batch (``texts``), and the cost columns come from integers (`cost_columns`).
    """
    usage = event.usage
    cost, pico = cost_columns(event)
    dims = event.dimensions
    cached = dims_json.get(id(dims))
    if cached is not None and cached[0] is dims:
        dimensions = cached[1]
    else:
        dimensions = _copy_text(json.dumps(dict(dims), sort_keys=True, separators=(",", ":")))
        dims_json[id(dims)] = (dims, dimensions)  # holding dims keeps its id unique
    repeated = []
    for value in (event.operation, event.status, event.provider, event.model, event.price_version):
        if value is None:
            repeated.append(_NULL)
            continue
        text = texts.get(value)
        if text is None:
            text = texts[value] = _copy_text(value)
        repeated.append(text)
    operation, status, provider, model, price_version = repeated
    links = event.links
    latency = event.latency_ms
    time_ns = event.time_ns
    return (
        f"{_copy_text(event_id(event))}\t{time_ns}\t{hour_of(time_ns)}\t{operation}\t{status}"
        f"\t{provider}\t{model}\t{_copy_text(event.request_model)}"
        f"\t{_NO_USAGE if usage is None else _USAGE_LINE % _USAGE_OF(usage)}"
        f"\t{_NULL if cost is None else cost}\t{_NULL if pico is None else pico}"
        f"\t{price_version}\t{_NULL if latency is None else repr(float(latency))}"
        f"\t{dimensions}\t{_copy_text(event.operation_id)}\t{event.attempt}"
        f"\t{_copy_text(event.response_id)}"
        f"\t{_copy_text(json.dumps(list(links), separators=(',', ':'))) if links else '[]'}"
        f"\t{event.tokens_saved}\n"
    )


_NULL: Final = "\\N"
_USAGE_LINE: Final = "1\t" + "\t".join(["%d"] * len(USAGE_FIELDS))


def _copy_text(value: str | None) -> str:
    if value is None:
        return _NULL
    return value.translate(_COPY_TEXT) if _COPY_SPECIAL.search(value) else value
