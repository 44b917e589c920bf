"""Events' JSON lines made by Arrow kernels from a batch of their columns, not a string per event in Python.

Each line is exactly what `meterline.ledger._rows.event_json_line` writes (and so
``json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True)``): the keys in sorted
order, strings through the json module's ASCII escaping, costs as ``str`` of their
``Decimal``, floats as ``repr``. Each column's JSON is made at once over the batch, and the
line is their concatenation (``binary_join_element_wise``).

Where Arrow's own text differs from Python's, those few values are written by Python, as
`event_json_line` would, and put in place (``replace_with_mask``):

- a string with a character outside printable ASCII, a quote or a backslash (escaped by the
  json module; ids, names and values are plain ASCII in practice);
- a cost or stated cost under a millionth of a dollar but not zero (``Decimal`` writes
  ``1E-7``), or negative;
- a float that Python writes in exponent notation (under 1e-4 or from 1e16) or that Arrow
  does (``1.234567890123456e+14``); Arrow's ``7841`` is Python's ``7841.0``;
- a time before 1970 (the seconds and microseconds below are floor divisions of positive
  numbers only).

The tests compare every line with ``json.dumps`` of the event, on product-shaped events and
on hostile values (hypothesis).
"""

from __future__ import annotations as _annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from meterline._extras import require
from meterline._money import to_usd
from meterline._usage import USAGE_FIELDS
from meterline.ledger._rows import iso_time, json_string

__all__ = ["KEY_FIELDS", "concatenated", "json_text"]

KEY_FIELDS: Final = ("operation", "status", "provider", "model", "request_model", "price_version")
"""The event fields whose JSON `json_text` is given (``keys``), each event's value written once per batch."""

_PICO_PER_USD: Final = 10**12
_PLAIN_COST: Final = 10**6
"""Pico-dollars from which ``str(Decimal)`` of the amount is plain (a millionth of a dollar)."""
_UNSAFE: Final = r"[^ !#-\[\]-~]"
"""A character that ``json.dumps`` escapes (or might): outside printable ASCII, ``"`` or ``\\``."""


def json_text(column: Mapping[str, Any], keys: Mapping[str, Any], dimensions: Any) -> str:
    """The JSON lines of one batch of events, each ending in a newline.

    Args:
        column: The batch's columns by name: ``id``, ``time_ns``, ``measured``, the usage
            fields, ``cost`` (the stored text, or null) and ``cost_pico``, ``latency_ms``,
            ``operation_id``, ``attempt``, ``response_id``, ``links`` (JSON text, as stored),
            ``tokens_saved``, ``service_tier``, ``batch``, ``reported_cost_pico``.
        keys: For each of `KEY_FIELDS`, the JSON of each event's value (``"openai"`` or ``null``).
        dimensions: Each event's dimensions as a JSON object (string array).
    """
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    usage = _object({name: column[name].cast(pa.string()) for name in USAGE_FIELDS}, "")
    fields = {
        "attempt": column["attempt"].cast(pa.string()),
        "batch": pc.if_else(column["batch"].cast(pa.bool_()), "true", "false"),
        "cost": pc.if_else(pc.is_null(column["cost"]), _usd(column["cost_pico"]), _quoted(column["cost"])),
        "dimensions": dimensions,
        "id": _strings(column["id"]),
        "latency_ms": _floats(column["latency_ms"]),
        "links": column["links"],
        **keys,
        "operation_id": _strings(column["operation_id"]),
        "partial_usage": "null",
        "reported_cost": _usd(column["reported_cost_pico"]),
        "response_id": _strings(column["response_id"]),
        "service_tier": _strings(column["service_tier"]),
        "time": _times(column["time_ns"]),
        "time_ns": column["time_ns"].cast(pa.string()),
        "tokens_saved": column["tokens_saved"].cast(pa.string()),
        "usage": pc.if_else(column["measured"].cast(pa.bool_()), usage, "null"),
    }
    lines = _object(fields, "\n")
    # The lines lie one after the other in the array's data buffer: the batch's text as it stands.
    _, offsets_buffer, data = lines.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return "" if data is None else data.slice(start, end - start).to_pybytes().decode()


def concatenated(offsets: Any, items: Any) -> Any:
    """The strings of each list concatenated, one string per list (``offsets``: int32, the lists' bounds).

    Arrow's ``binary_join`` does this with a separator at 1.1 µs a list of four strings; this
    reads the lists' strings where they lie, one after the other in ``items``' data buffer, and
    takes each list's start and end from ``items``' offsets (0.1 µs): the dimensions' JSON
    objects, the largest part of a line, cost ten times less.
    """
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    _, item_offsets, data = items.buffers()
    starts = pa.Array.from_buffers(pa.int32(), len(items) + 1, [None, item_offsets], offset=items.offset)
    ends = pc.take(starts, offsets)
    if data is None:  # no strings at all
        data = pa.py_buffer(b"")
    return pa.StringArray.from_buffers(len(offsets) - 1, ends.buffers()[1], data, offset=ends.offset)


def _object(fields: Mapping[str, Any], end: str) -> Any:
    """The JSON objects of ``fields`` (JSON texts, or arrays of them), in key order, followed by ``end``.

    Keys in sorted order, as ``json.dumps(..., sort_keys=True)`` writes them:
    ``{"attempt":1,"batch":false,…}``.
    """
    pc = require("analytics", "pyarrow.compute")
    parts: list[Any] = []
    for name in sorted(fields):
        parts += [("," if parts else "{") + json_string(name) + ":", fields[name]]
    return pc.binary_join_element_wise(*parts, "}" + end, "")


def _quoted(texts: Any) -> Any:
    """Texts known to need no escaping (digits, signs, dots, exponents), quoted."""
    pc = require("analytics", "pyarrow.compute")
    return pc.binary_join_element_wise('"', texts, '"', "")


def _python(values: Any, mask: Any, out: Any, write: Callable[[Any], str]) -> Any:
    """``out`` with the values at ``mask`` written by ``write`` in Python (the values Arrow cannot write)."""
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return out
    written = [write(value) for value in pc.filter(values, mask).to_pylist()]
    return pc.replace_with_mask(out, mask, pa.array(written, pa.string()))


def _strings(texts: Any) -> Any:
    """Nullable strings as JSON (``null``, or the string quoted and escaped as ``json.dumps`` does)."""
    pc = require("analytics", "pyarrow.compute")
    out = pc.fill_null(_quoted(texts), "null")
    return _python(texts, pc.match_substring_regex(texts, _UNSAFE), out, json_string)


def _usd(pico: Any) -> Any:
    """Nullable pico-dollars as the JSON of their ``str(to_usd(pico))`` (``"0.0003525"``, ``null``)."""
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    whole = pc.divide(pico, _PICO_PER_USD)  # integers: truncated, and only positives are kept
    fraction = pc.utf8_rtrim(
        pc.utf8_lpad(
            pc.subtract(pico, pc.multiply(whole, _PICO_PER_USD)).cast(pa.string()), width=12, padding="0"
        ),
        characters="0",
    )
    whole_text = whole.cast(pa.string())
    text = pc.if_else(
        pc.equal(fraction, ""), whole_text, pc.binary_join_element_wise(whole_text, fraction, ".")
    )
    out = pc.fill_null(_quoted(text), "null")
    odd = pc.and_(pc.not_equal(pico, 0), pc.less(pico, _PLAIN_COST))
    return _python(pico, odd, out, lambda value: json_string(str(to_usd(value))))


def _floats(values: Any) -> Any:
    """Nullable floats as ``float.__repr__`` writes them, or ``null``."""
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    text = values.cast(pa.string())
    size = pc.abs(values)
    plain = pc.and_(
        pc.or_(pc.equal(values, 0), pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e16))),
        pc.invert(pc.match_substring(text, "e")),
    )
    whole = pc.invert(pc.match_substring(text, "."))
    out = pc.fill_null(pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text), "null")
    return _python(values, pc.invert(plain), out, float.__repr__)


def _times(time_ns: Any) -> Any:
    """Times in nanoseconds as ``"2026-01-01T00:00:15.552000Z"`` (`datetime.isoformat`, microseconds)."""
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    seconds = pc.divide(time_ns, 10**9)
    micros = pc.subtract(pc.divide(time_ns, 1000), pc.multiply(seconds, 10**6))
    fraction = pc.if_else(
        pc.equal(micros, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(micros.cast(pa.string()), width=6, padding="0"), ""),
    )
    # Arrow writes a timestamp as '2026-01-01 00:00:15': ISO's 'T' in place of the space is
    # ten times faster than strftime.
    moment = pc.utf8_replace_slice(
        seconds.cast(pa.timestamp("s")).cast(pa.string()), start=10, stop=11, replacement="T"
    )
    out = pc.binary_join_element_wise('"', moment, fraction, 'Z"', "")
    return _python(time_ns, pc.less(time_ns, 0), out, lambda value: f'"{iso_time(value)}"')
