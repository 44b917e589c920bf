"""A scope entry: its dimensions, its rows, what its ended children added, and its public face.

Each `with meter.scope(...)` makes an `Entry` (the meter's root entry holds what is recorded
outside every scope); its face, `ActiveScope`, is what `meter.current_scope` and the scope's
``as`` give. The roll-ups (`meterline._rollup.RollUps`) keep the entries' rows and read their
totals.
"""

from __future__ import annotations as _annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from meterline._dimensions import Dimensions, check_dimensions
from meterline._row import Row, RowKey
from meterline._totals import Counts, Sums, Totals, merge_into

if TYPE_CHECKING:
    from meterline._rollup import RollUps

__all__ = ["ActiveScope", "Entry", "Tagged", "TotalsKey"]

TotalsKey = tuple[str, str, str | None, str | None]
"""(operation, status, tool, tool category): what a `Totals` needs to tell rows apart."""
Tagged = tuple[tuple[tuple[str, str], ...], Dimensions]
"""A call's tags checked: sorted (name, value) pairs (a row key's last part), and the event's dimensions."""
_STR_ONLY: Final = {str}


class Entry:
    """The roll-ups' record of one scope entry: its dimensions, rows and what its children added."""

    __slots__ = (
        "__weakref__",
        "_rollups",
        "_tagged",
        "_view",
        "children",
        "closed",
        "dimensions",
        "dims_key",
        "folded",
        "parent",
        "rows",
    )

    def __init__(self, parent: Entry | None, dims: dict[str, str], rollups: RollUps) -> None:
        self.parent = parent
        self.dimensions: Mapping[str, str] = Dimensions(dims)
        """Every dimension in force here: this scope's merged over its ancestors'."""
        self.dims_key = tuple(sorted(dims.items()))
        self.rows: dict[RowKey, Row] = {}
        """Rows of the events recorded directly in this entry, by their key as given."""
        self.folded: dict[TotalsKey, Sums] = {}
        """What finished children (and rows taken by reset or forget) added: for this entry's totals."""
        self.children: set[Entry] = set()
        self.closed = False
        self._rollups = rollups
        self._view: weakref.ref[ActiveScope] | None = None
        self._tagged: tuple[tuple[tuple[object, object], ...], Tagged, bool] | None = None
        """The last tags checked, their `Tagged`, and whether their values are all str (`tagged`)."""

    @property
    def view(self) -> ActiveScope:
        """The entry's public face: the same object for as long as anyone holds it.

        Held weakly, so that an ended entry and its face are freed as soon as nobody holds
        them (no reference cycle to wait for the collector).
        """
        view = None if self._view is None else self._view()
        if view is None:
            view = ActiveScope(self, self._rollups)
            self._view = weakref.ref(view)
        return view

    def fold(self, key: TotalsKey, sums: Counts) -> None:
        """Add ``sums`` to this entry's own totals only."""
        merge_into(self.folded, key, sums)

    def tagged(self, tags: Mapping[str, object]) -> Tagged:
        """A call's ``tags``, checked: its row key's last part, and its event's dimensions.

        The dimensions are the tags merged over this entry's. The last tags are kept with their
        result, which the next call with equal tags takes as it is when the kept values are all
        str (an integration passes the same tags on every call): the check, the sort and the
        merged `Dimensions` are made once, and the calls' events share one `Dimensions`, whose
        JSON a ledger then makes once. Found by equality, so only a str (or what equals one)
        finds them, and the kept, checked strings are what is recorded; int values (``True ==
        1``) are checked on every call. One set, not a table: calls whose tags differ each time
        (a session id) would pay to fill a table they never find anything in.

        Raises:
            ConfigurationError: a bad tag name or value (`check_dimensions` names it).
        """
        items = tuple(tags.items())
        kept = self._tagged
        if kept is not None:
            try:
                same = kept[0] == items
            except Exception:  # noqa: BLE001 - a value whose == raises: the check below names it
                same = False
            # Whether the kept tags' values are all str is asked on their first use, not when
            # they are kept: tags that differ on every call never pay for it.
            if same and (kept[2] or {type(value) for _, value in kept[0]} == _STR_ONLY):
                if not kept[2]:
                    self._tagged = (kept[0], kept[1], True)
                return kept[1]
        found = _checked(tags, self.dimensions)
        self._tagged = (items, found, False)
        return found


class ActiveScope:
    """One entry of a scope: its dimensions and live totals.

    ``totals`` includes everything recorded inside the entry, in this thread or task or in
    any context copied from it, children included. It stays readable after the entry ends.
    """

    __slots__ = ("__weakref__", "_entry", "_rollups")

    def __init__(self, entry: Entry, rollups: RollUps) -> None:
        self._entry = entry
        self._rollups = rollups

    @property
    def dimensions(self) -> Mapping[str, str]:
        """Every dimension in force here: this scope's merged over its ancestors'."""
        return self._entry.dimensions

    @property
    def parent(self) -> ActiveScope | None:
        """The enclosing scope entry, if any."""
        parent = self._entry.parent
        return None if parent is None else parent.view

    @property
    def closed(self) -> bool:
        """Whether the entry has ended."""
        return self._entry.closed

    @property
    def totals(self) -> Totals:
        """Everything recorded inside this scope and its children (a consistent snapshot)."""
        return self._rollups.totals_of(self._entry)

    def __repr__(self) -> str:
        return f"<ActiveScope {dict(self.dimensions)!r}{' closed' if self.closed else ''}>"


def _checked(tags: Mapping[str, object], dimensions: Mapping[str, str]) -> Tagged:
    extra = check_dimensions(tags, "tag")
    return tuple(sorted(extra.items())), Dimensions({**dimensions, **extra} if dimensions else extra)
