"""Snapshots: a meter's live totals at one instant, as JSON, for merging across processes.

Merging the snapshots of N processes into one meter gives exactly the totals of one process
that recorded everything: every counter is an integer (costs in pico-dollars, latencies in
nanoseconds), so sums do not depend on their order.
"""

from __future__ import annotations as _annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from meterline._dimensions import check_dimensions
from meterline._row import RowKey
from meterline._totals import Sums
from meterline._usage import check_count
from meterline.exceptions import MalformedUsageError

__all__ = ["Snapshot"]

FORMAT: Final = "meterline.snapshot/2"
"""The format this meterline writes: costs in pico-dollars (``cost_pico``)."""
_FORMAT_ATTO: Final = "meterline.snapshot/1"
"""The first format, read too: costs in atto-dollars (``cost_atto``), rounded to pico-dollars."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live totals of a meter at one instant, for merging across processes.

    Scope entries are local to their process and are not part of a snapshot; everything
    `Meter.totals` can answer is.
    """

    rows: tuple[tuple[RowKey, Sums], ...]
    """((operation, status, provider, model, dimensions), counters) rows."""
    taken_ns: int
    """When the snapshot was taken, in nanoseconds since the Unix epoch."""

    def to_json(self) -> str:
        """Serialise to a JSON string (costs as exact integer strings of 1e-12 USD)."""
        return json.dumps(
            {
                "format": FORMAT,
                "taken_ns": self.taken_ns,
                "rows": [
                    {
                        "operation": op,
                        "status": status,
                        "provider": provider,
                        "model": model,
                        "dimensions": dict(dims),
                        "counters": sums.to_json(),
                    }
                    for (op, status, provider, model, dims), sums in self.rows
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Parse `to_json` output.

        Raises:
            MalformedUsageError: when the text is not a meterline snapshot.
        """
        try:
            data = json.loads(text)
            version = data.get("format")
            if version not in (FORMAT, _FORMAT_ATTO):
                raise MalformedUsageError("format", version, repr(FORMAT))
            rows = []
            for row in data["rows"]:
                dims = check_dimensions(row["dimensions"], "snapshot dimension") if row["dimensions"] else {}
                key: RowKey = (
                    str(row["operation"]),
                    str(row["status"]),
                    row["provider"],
                    row["model"],
                    tuple(sorted(dims.items())),
                )
                counters = row["counters"]
                if version == _FORMAT_ATTO:
                    counters = _pico_counters(counters)
                sums = Sums.from_json(counters)
                for name in ("events", "input_tokens", "output_tokens", "cost_pico"):
                    check_count(f"counters.{name}", getattr(sums, name))
                rows.append((key, sums))
            return cls(rows=tuple(rows), taken_ns=int(data["taken_ns"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, MalformedUsageError):
                raise
            raise MalformedUsageError(
                "snapshot", str(text)[:80], f"a Snapshot.to_json() document ({exc!r})"
            ) from exc


def _pico_counters(counters: dict[str, Any]) -> dict[str, Any]:
    """Counters of the first format, with ``cost_atto`` turned into ``cost_pico`` (half to even)."""
    converted = {name: value for name, value in counters.items() if name != "cost_atto"}
    pico, rest = divmod(int(counters["cost_atto"]), 1_000_000)
    if rest > 500_000 or (rest == 500_000 and pico % 2):
        pico += 1
    converted["cost_pico"] = pico
    return converted
