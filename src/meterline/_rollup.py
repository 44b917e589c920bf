"""Live roll-ups: what every scope entry, and the meter as a whole, has recorded so far.

Every scope entry (an `Entry`; its public face is `ActiveScope`) keeps one `Row` per
distinct (operation, status, provider, model, tags) recorded in it. `Meter.record` appends
an event's share to its row without a lock (``list.append`` is atomic); whoever next holds
the roll-ups' lock (a read, a scope's exit, or the recording thread after 256 events)
*tallies* the row: adds its pending shares up. When an entry is left, its rows move into the
meter's *cube* (one `FrozenSums` tuple per row key, the entry's dimensions merged in, which
the garbage collector stops tracking) and its totals are
folded into its ancestors'. `Meter.totals`, snapshots and `forget` read the cube and the rows
of the entries still open.

The roll-ups are bounded: past ``max_live_keys`` rows (the cube's and the open entries'
together), new keys are folded into one row per (operation, status, provider) whose only
dimension is ``meterline_overflow=true`` and which has no model, so totals stay exact and only
their attribution gets coarser, however many new model names or dimension values arrive.
"""

from __future__ import annotations as _annotations

import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from meterline._dimensions import check_names, check_size
from meterline._entry import Entry, TotalsKey
from meterline._events import NOT_MODEL_CALLS, check_call, event_filters
from meterline._guard import logger
from meterline._providers import canonical_provider, provider_as_stored
from meterline._row import Row, RowKey
from meterline._totals import Counts, FrozenSums, Sums, Totals, merge_into, totals_of
from meterline._yielding_lock import YieldingLock

if TYPE_CHECKING:
    from meterline._pricing import Plan

__all__ = ["OVERFLOW_DIMENSION", "RollUps"]

OVERFLOW_DIMENSION: Final = "meterline_overflow"
"""The dimension of the row new keys are folded into once the cube is full."""
_MAX_SHAPES: Final = 4096
"""Checked call shapes a meter keeps (`RollUps._shape`); past it, it starts again."""
_OVERFLOWED: Final = ((OVERFLOW_DIMENSION, "true"),)
"""The dimensions of the cube's overflow rows (the very tuple: `_add_to_cube` tells them by it)."""
Shape = tuple["str | None", bool, "Plan | None"]
"""A checked call shape's canonical provider, whether it is a model call, and its model's plan."""


class RollUps:
    """A meter's live roll-ups: the open entries' rows and the cube of everything else.

    Args:
        plan_for: The compiled, time-independent price of ``(provider, model)``, or ``None``
            (then the meter prices each event of the row on its own).
        max_live_keys: The bound on the cube's rows.
    """

    def __init__(self, plan_for: Callable[[str | None, str], Plan | None], max_live_keys: int) -> None:
        self.lock = YieldingLock()
        """Held to tally, read, take or fold rows (never by `Meter.record` on its fast path)."""
        self.root = Entry(None, {}, self)
        """The entry of everything recorded outside every scope."""
        self.max_live_keys = max_live_keys
        self._overflowed = 0
        """Events folded into the cube's overflow rows (`overflowed_events` adds the live ones)."""
        self._plan_for = plan_for
        self._shapes: dict[tuple[Any, ...], Shape] = {}
        """(operation, status, provider, model) as a caller gave them, checked -> the canonical
        provider, whether it is a model call, and the model's plan: what every new row of that
        call shape needs (a row per session makes them per call otherwise: 1.5 µs of 8.5)."""
        self._overflow_rows: dict[tuple[Any, ...], Row] = {}
        """Past ``max_live_keys``, each call shape's live overflow row (`_overflow_row`)."""
        self._live: set[Entry] = set()
        self._cube: dict[RowKey, FrozenSums] = {}
        """The rows of the entries that have ended, as tuples (which the garbage collector skips)."""
        self._entry_rows = 0
        """Rows the open entries hold (with the cube's, what ``max_live_keys`` bounds)."""
        self._by_dimension: dict[tuple[str, str], dict[RowKey, None]] = {}
        """The cube's keys by each (dimension, value) they hold: `forget` visits only those.

        Dicts of keys rather than sets: the garbage collector stops tracking a dict that holds
        only tuples it has stopped tracking, and walks every set and its keys at every full
        collection (this outer dict stays tracked: a full collection visits each of its values
        once, and goes no further)."""
        self._overflow_warned = False
        _ALL.add(self)

    # -- entries -------------------------------------------------------------------------

    def open_entry(self, parent: Entry | None, dims: dict[str, str]) -> Entry:
        """A new entry of ``dims`` under ``parent`` (its dimensions merged over the parent's)."""
        merged = {**parent.dimensions, **dims} if parent is not None else dict(dims)
        entry = Entry(parent, merged, self)
        check_size(entry.dimensions, "the scopes' dimensions")
        with self.lock:
            self._live.add(entry)
            if parent is not None:
                parent.children.add(entry)
        return entry

    def close_entry(self, entry: Entry) -> None:
        """Move the entry's rows into the cube and hand its totals to its ancestors."""
        with self.lock:
            entry.closed = True
            self._live.discard(entry)
            rows = entry.rows
            entry.rows = {}
            self._entry_rows -= len(rows)
            for key, row in rows.items():
                row.live = False  # before the tally: a later append sees it and tallies itself
                row.tally()
                self._add_to_cube(row.key, row)
                entry.fold(_totals_key(key, entry), row)
            # Every closed ancestor on the way gets the entry's totals, and the first open one
            # (which passes them on when it ends in turn).
            parent = entry.parent
            if parent is not None:
                parent.children.discard(entry)
                ancestor: Entry | None = parent
                while ancestor is not None:
                    for tkey, sums in entry.folded.items():
                        ancestor.fold(tkey, sums)
                    if not ancestor.closed:
                        break
                    ancestor = ancestor.parent

    # -- rows ----------------------------------------------------------------------------

    def make_row(self, entry: Entry, key: RowKey) -> Row:
        """A new row for ``key`` in ``entry``: canonical provider, merged dimensions, price plan.

        Raises:
            ConfigurationError: a model, provider, operation or status no row may have.
        """
        operation, status, _, model, extra = key
        provider, model_call, plan = self._shape(key)
        # The tags are sorted pairs already: outside every scope they are the whole key.
        if not extra:
            dims_key = entry.dims_key
        elif not entry.dimensions:
            dims_key = extra
        else:
            dims_key = tuple(sorted({**entry.dimensions, **dict(extra)}.items()))
        return Row((operation, status, provider, model, dims_key), model_call, plan)

    def _shape(self, key: RowKey) -> Shape:
        """The checked call shape of ``key`` (its first four fields), kept in `_shapes`.

        Raises:
            ConfigurationError: a model, provider, operation or status no row may have.
        """
        shape = key[:4]
        try:
            found = self._shapes.get(shape)
        except TypeError:  # an unhashable argument: check_call names it
            found = None
        if found is None:
            operation, status, provider, model = shape
            check_call(model, provider, operation, status)
            canonical = canonical_provider(provider)
            model_call = operation not in NOT_MODEL_CALLS
            plan = self._plan_for(canonical, model) if model_call and model is not None else None
            found = (canonical, model_call, plan)
            if len(self._shapes) >= _MAX_SHAPES:  # a gateway passing every model name it is sent
                self._shapes.clear()
            self._shapes[shape] = found
        return found

    def add_row(self, entry: Entry, key: RowKey) -> Row:
        """The row of ``key`` in ``entry``, made now; not live if the entry has ended meanwhile.

        Past ``max_live_keys``, outside every scope: the call shape's row into the overflow
        row (`_overflow_row`).
        """
        if entry is self.root and not self._room_locked():  # read without the lock: a hint
            return self._overflow_row(key)
        fresh = self.make_row(entry, key)
        with self.lock:
            row = entry.rows.get(key)
            if row is not None:
                return row
            if entry.closed or not self._room_locked():
                # An entry that ended keeps no rows, and past max_live_keys no new row is made:
                # the event goes the slow way, to the cube (its overflow row) and the totals.
                fresh.live = None
                return fresh
            entry.rows[key] = fresh
            self._entry_rows += 1
            return fresh

    def _overflow_row(self, key: RowKey) -> Row:
        """The root entry's live overflow row of ``key``'s call shape.

        Past ``max_live_keys``, every new key of a call shape recorded outside every scope
        appends its share to this one row, whose only dimension is ``meterline_overflow=true``
        and which has no model (so the call makes no row of its own: no dimensions merged and
        sorted, no `Row`). The row is live, as an entry's: the shares are added up every
        `TALLY_AT` calls or when the roll-ups are read (`_rows_locked`), not one by one into
        the cube under the lock, which took 2.8 of a call's 6.5 µs (a gateway that tags each
        call with its session, past the default 100,000 keys: every new session). Inside a
        scope, each call's row still goes on its own: the entry's totals are its own. At most
        `_MAX_SHAPES` are kept: past it, they go into the cube and new ones start.

        Raises:
            ConfigurationError: a model, provider, operation or status no row may have.
        """
        shape = key[:4]
        try:
            row = self._overflow_rows.get(shape)
        except TypeError:  # an unhashable argument: `_shape` names it
            row = None
        if row is not None:
            return row
        provider, model_call, plan = self._shape(key)
        with self.lock:  # made once: a share appended to a row another thread replaced would be lost
            row = self._overflow_rows.get(shape)
            if row is None:
                if len(self._overflow_rows) >= _MAX_SHAPES:
                    self._retire_overflow_locked()
                row = Row((key[0], key[1], provider, None, _OVERFLOWED), model_call, plan)
                self._overflow_rows[shape] = row
                self._warn_overflow()
            return row

    def _retire_overflow_locked(self) -> None:
        """Move the live overflow rows into the cube (lock held)."""
        for row in self._overflow_rows.values():
            row.live = False  # before the tally: a later append sees it and tallies itself
            row.tally()
            self._add_to_cube(row.key, row)
        self._overflow_rows = {}

    def overflowed_events(self) -> int:
        """Events whose dimensions were folded into an overflow row, so far."""
        with self.lock:
            events = self._overflowed
            for row in self._overflow_rows.values():
                row.tally()
                events += row.events
            return events

    def _warn_overflow(self) -> None:
        """Log, once, that ``max_live_keys`` was reached (lock held)."""
        if not self._overflow_warned:
            self._overflow_warned = True
            logger.warning(
                "meterline: %d live keys reached; further new dimension combinations are folded into "
                "%s=true (totals stay exact); call meter.forget(session=...) for finished sessions:"
                " it drops their live rows only (ledger and budgets keep theirs)",
                self.max_live_keys,
                OVERFLOW_DIMENSION,
            )

    def _room_locked(self) -> bool:
        """Whether one more row fits under ``max_live_keys``: the cube's and the open entries' (lock held)."""
        return len(self._cube) + self._entry_rows < self.max_live_keys

    def tally(self, entry: Entry, key: RowKey, row: Row) -> None:
        """Add up a row's pending shares; if the row was taken meanwhile, send them on."""
        with self.lock:
            if row.live:
                row.tally()
                return
            if row.key[4] is _OVERFLOWED:  # an overflow row (`_overflow_row`) retired meanwhile
                sums = Sums()
                row.tally(into=sums)
                if sums.events:  # else another thread's tally took this call's share
                    self._add_to_cube(row.key, sums)
                return
            if row.live is None:  # never kept: no other thread can append to it
                row.tally()
                self._add_locked(entry, key, row, row.key)
                return
            # The entry ended (work left running in an executor), or reset() or forget()
            # took the row between the lookup and the append: its shares go to fresh sums, so
            # that a later append (another thread's) sends on only what is new.
            late = Sums()
            row.tally(into=late)
            self._add_locked(entry, key, late, row.key)

    def add(self, entry: Entry, key: RowKey, sums: Sums) -> None:
        """Add ``sums`` (a tool call or cache lookup) to ``entry``'s row of ``key``."""
        with self.lock:
            self._add_locked(entry, key, sums)

    def _add_locked(self, entry: Entry, key: RowKey, sums: Counts, cube_key: RowKey | None = None) -> None:
        """Add ``sums`` to ``entry``'s row of ``key``, or to the cube's of ``cube_key`` (lock held).

        ``cube_key``: the row's key in the cube (`Row.key`: canonical provider, the entry's
        dimensions merged in), when a row's shares are sent on; else made from ``key``.
        """
        if not entry.closed:
            row = entry.rows.get(key)
            if row is None and self._room_locked():
                row = entry.rows[key] = self.make_row(entry, key)
                self._entry_rows += 1
            if row is not None:
                row.merge(sums)
                return
        # The entry ended, or no new row fits: to the cube, and to the totals of the entry (if
        # open) or of its ancestors up to the first open one.
        if cube_key is None:
            operation, status, provider, model, extra = key
            dims_key = tuple(sorted({**entry.dimensions, **dict(extra)}.items()))
            cube_key = (operation, status, canonical_provider(provider), model, dims_key)
        self._add_to_cube(cube_key, sums)
        if entry is self.root:  # the meter's totals are the cube's: the root keeps none of its own
            return
        tkey = _totals_key(key, entry)
        ancestor: Entry | None = entry
        while ancestor is not None:
            ancestor.fold(tkey, sums)
            if not ancestor.closed:
                break
            ancestor = ancestor.parent

    def _add_to_cube(self, key: RowKey, sums: Counts) -> None:
        """Add ``sums`` into the cube's row for ``key``, made (or the overflow row) as needed (lock held)."""
        cube = self._cube
        stored = cube.get(key)
        overflow = key[4] is _OVERFLOWED  # sent on by a call shape's overflow row (`_overflow_row`)
        if overflow or (stored is None and not self._room_locked()):
            self._overflowed += sums.events
            self._warn_overflow()
            if not overflow:
                # One overflow row per operation, status and provider: a flood of new model names
                # is bounded too (the model is dropped from the overflow rows, as the dimensions are).
                key = (key[0], key[1], key[2], None, _OVERFLOWED)
                stored = cube.get(key)
        if stored is None:
            for pair in key[4]:
                self._by_dimension.setdefault(pair, {})[key] = None
            cube[key] = sums.frozen()
        else:
            cube[key] = sums.added_to(stored)

    # -- reading -------------------------------------------------------------------------

    def _rows_locked(self) -> dict[RowKey, Sums]:
        """Every row, the open entries' included, as detached copies (lock held)."""
        rows = {key: Sums.thawed(stored) for key, stored in self._cube.items()}
        for entry in (self.root, *self._live):
            for row in entry.rows.values():
                row.tally()
                merge_into(rows, row.key, row)
        for row in self._overflow_rows.values():
            row.tally()
            merge_into(rows, row.key, row)
        return rows

    def rows(self) -> dict[RowKey, Sums]:
        """Every row, as detached copies."""
        with self.lock:
            return self._rows_locked()

    def take(self) -> dict[RowKey, Sums]:
        """Every row, removed from the roll-ups (the entries keep their own totals)."""
        with self.lock:
            for entry in (self.root, *self._live):
                for row in entry.rows.values():
                    row.live = False  # before the tally: a later append sees it and tallies itself
            for row in self._overflow_rows.values():
                row.live = False
            rows = self._rows_locked()
            self._overflowed += sum(row.events for row in self._overflow_rows.values())
            self._cube = {}
            self._by_dimension = {}
            self._shapes = {}  # their names and plans too (`Meter.reset` gives their memory back)
            self._overflow_rows = {}
            for entry in (self.root, *self._live):
                taken = entry.rows
                entry.rows = {}
                self._entry_rows -= len(taken)
                if entry is not self.root:
                    for key, row in taken.items():
                        entry.fold(_totals_key(key, entry), row)
            return rows

    def merge(self, rows: Iterable[tuple[RowKey, Sums]]) -> None:
        """Add rows (a snapshot's) into the cube."""
        with self.lock:
            for key, sums in rows:
                self._add_to_cube(key, sums)

    def live_keys(self) -> int:
        """How many distinct rows the roll-ups hold."""
        with self.lock:
            return len(self._rows_locked())

    def totals_of(self, entry: Entry) -> Totals:
        """Everything recorded inside ``entry`` and its children (a consistent snapshot)."""
        merged: dict[TotalsKey, Sums] = {}
        with self.lock:
            stack = [entry]
            while stack:
                frame = stack.pop()
                for key, row in frame.rows.items():
                    row.tally()
                    merge_into(merged, _totals_key(key, frame), row)
                for tkey, sums in frame.folded.items():
                    merge_into(merged, tkey, sums)
                stack.extend(frame.children)
        return totals_of((*key, sums) for key, sums in merged.items())

    def group(
        self, by: Sequence[str] | None, where: Mapping[str, object] | None
    ) -> Totals | dict[tuple[str | None, ...], Totals]:
        """`Meter.totals`: the rows filtered by ``where`` and grouped by ``by``."""
        group = check_names(by, "by") if by is not None else ()
        filters = list(event_filters(where).items())
        rows = self.rows()
        groups: dict[tuple[str | None, ...], list[tuple[str, str, str | None, str | None, Sums]]] = {}
        for key, sums in rows.items():
            if any(value_of(key, name) not in allowed for name, allowed in filters):
                continue
            dims = dict(key[4])
            groups.setdefault(tuple(value_of(key, name) for name in group), []).append(
                (key[0], key[1], dims.get("tool"), dims.get("tool_category"), sums)
            )
        if by is None:
            return totals_of(groups.get((), []))
        return {values: totals_of(members) for values, members in groups.items()}

    def forget(self, wanted: Sequence[tuple[str, str]]) -> int:
        """Drop every row whose dimensions include all of ``wanted``; the number dropped.

        Entries keep their own totals: only `Meter.totals` and snapshots forget. The cube's rows
        are found through the index of the rarest wanted dimension, so the work is in proportion
        to the rows dropped (a wanted event field alone, ``model=``, scans the cube); the open
        entries' rows, as few as the calls in flight, are scanned. A provider is matched by its
        canonical name (`provider_as_stored`), as the rows keep it.
        """
        wanted = [
            (name, str(provider_as_stored(value)) if name == "provider" else value) for name, value in wanted
        ]

        def matches(key: RowKey) -> bool:
            return all(value_of(key, name) == value for name, value in wanted)

        dropped = 0
        with self.lock:
            indexed = [self._by_dimension.get(pair, {}) for pair in wanted if pair[0] not in _KEY_FIELDS]
            candidates: Iterable[RowKey] = self._cube
            if indexed:
                rarest = min(indexed, key=len)
                candidates = rarest
            from_cube = [key for key in candidates if matches(key)]
            for key in from_cube:
                del self._cube[key]
                for pair in key[4]:
                    keys = self._by_dimension[pair]
                    keys.pop(key, None)
                    if not keys:
                        del self._by_dimension[pair]
                dropped += 1
            for entry in (self.root, *self._live):
                for key, row in list(entry.rows.items()):
                    if matches(row.key):
                        del entry.rows[key]
                        self._entry_rows -= 1
                        row.live = False  # before the tally: a later append sees it and tallies itself
                        row.tally()
                        if entry is not self.root:
                            entry.fold(_totals_key(key, entry), row)
                        dropped += 1
            forgotten = {shape: row for shape, row in self._overflow_rows.items() if matches(row.key)}
            for shape, row in forgotten.items():
                del self._overflow_rows[shape]
                row.live = False  # before the tally: a later append sees it and tallies itself
                row.tally()
                self._overflowed += row.events
            # Call shapes of different models share their overflow row's key: a key is one row.
            dropped += len({row.key for row in forgotten.values()}.difference(from_cube))
        return dropped


_ALL: Final[weakref.WeakSet[RollUps]] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    """A forked child gets fresh locks (another thread may have held one at the fork)."""
    for rollups in list(_ALL):
        rollups.lock = YieldingLock()


os.register_at_fork(after_in_child=_new_locks_after_fork)


_KEY_FIELDS: Final = frozenset({"operation", "status", "provider", "model"})
"""The event fields of a row key (the rest of its key is its dimensions)."""


def value_of(key: RowKey, name: str) -> str | None:
    """The value of an event field or dimension ``name`` in a cube row's key (``None`` if unset)."""
    if name == "operation":
        return key[0]
    if name == "status":
        return key[1]
    if name == "provider":
        return key[2]
    if name == "model":
        return key[3]
    for dim, value in key[4]:
        if dim == name:
            return value
    return None


def _totals_key(key: RowKey, entry: Entry) -> TotalsKey:
    extra = dict(key[4])
    tool = extra.get("tool") or entry.dimensions.get("tool")
    category = extra.get("tool_category") or entry.dimensions.get("tool_category")
    return key[0], key[1], tool, category
