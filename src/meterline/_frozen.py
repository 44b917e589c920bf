"""Frozen, slotted dataclasses built fast from values already checked: `Usage`, `Extracted`, `LedgerRow`.

A normaliser builds one `Usage` and one `Extracted` per response. A frozen dataclass's
``__init__`` stores each field through ``object.__setattr__`` (and `Usage`'s checks every
count again); setting the slots through their descriptors still costs a call per field
(0.70 µs for `Usage`'s eight). `twin` gives a mutable class with the same slots in the
same order: an instance of it is built by plain slot stores (0.40 µs), then given the frozen
class: Python allows that only between identical layouts, and the result is an ordinary,
frozen instance. Measured by ``bench/bench_core.py`` (the ``usage_from`` and
``record(OpenAI chat dict)`` rows: 5-15 % of their time), and with callgrind: ``usage_from``
of an OpenAI chat body costs 14,403 instructions this way, 17,925 with the slots' setters
called one by one (unrolled) and 22,991 with a loop over them (2026-12-04). A ledger report
makes a `LedgerRow` per group the same way (`meterline.ledger._groups.to_rows`): a report by
session of 96,464 rows at 1M events, 1.47-1.52 -> 1.32-1.33 s.
"""

from __future__ import annotations as _annotations

from dataclasses import fields, make_dataclass
from typing import Any

__all__ = ["twin"]


def twin(frozen: type[Any]) -> type[Any]:
    """A mutable dataclass with the slots of ``frozen`` in the same order, to build it fast.

    Used as::

        built = Twin(*values)  # plain slot stores, no checks: the values are checked already
        built.__class__ = Frozen  # allowed: same layout; now an ordinary, frozen instance

    Args:
        frozen: A frozen dataclass with ``slots=True``.

    Raises:
        TypeError: when ``frozen`` is not a slotted dataclass.
    """
    made = make_dataclass(f"_{frozen.__name__}Slots", [(f.name, f.type) for f in fields(frozen)], slots=True)
    if getattr(made, "__slots__", ()) != getattr(frozen, "__slots__", None):
        raise TypeError(f"{frozen.__qualname__} is not a slotted dataclass")
    return made
