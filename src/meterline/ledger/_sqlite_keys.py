"""The SQLite ledger's two dictionaries, cached: event keys and dimension values, by id.

An event row refers to its (operation, status, provider, model, request model, price
version) by ``key_id`` and to its dimensions by the ids of their (name, value) pairs (see
`meterline.ledger._sqlite_schema`). A `Dictionaries` remembers the ids its ledger has
committed, so the writer binds most events without asking SQLite anything; a new key or
value is stored inside the write's transaction, and forgotten again if that rolls back. A
prune deletes the values no kept event has (`prune_values`): every transaction first asks the
file whether one has (`Dictionaries.sync`), another connection's included, and forgets the
values' ids if so.
"""

from __future__ import annotations as _annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any, Final

from meterline.exceptions import LedgerError
from meterline.ledger._sqlite_folds import DAY_TOTALS
from meterline.ledger._sqlite_schema import RECENT, ROLLUPS, add_key, add_value, meta_int, rollup_fields

__all__ = ["VALUES_PRUNED", "Dictionaries", "prune_values", "value_ids", "values_pruned"]

_MAX_CACHED: Final = 200_000
"""Entries a cache holds at most (past it, it starts again: ids are looked up on the next use)."""
_IN_CHUNK: Final = 500
"""Ids per ``IN (...)`` lookup (under SQLite's smallest limit of 999 parameters)."""


VALUES_PRUNED: Final = "dim_values_pruned"
"""The key in ``meterline_meta`` of how many prunes have deleted dimension values (none: no row).

A connection keeps the ids of the values it has used (`Dictionaries`); once another
one has deleted some, those ids may be gone or given to other values, so each
transaction reads this first and forgets its ids when it has changed (`prune_values`)."""


def values_pruned(conn: sqlite3.Connection) -> int:
    """How many prunes have deleted dimension values from the file (`VALUES_PRUNED`)."""
    return meta_int(conn, VALUES_PRUNED)


_PRUNE_VALUES: Final = (
    "DELETE FROM meterline_dim_values AS v"  # noqa: S608 - constants only
    f" WHERE NOT EXISTS (SELECT 1 FROM {ROLLUPS[1]} AS r WHERE r.value_id = v.value_id)"
    f" AND NOT EXISTS (SELECT 1 FROM {ROLLUPS[2]} AS r WHERE r.value_id = v.value_id)"
    f" AND NOT EXISTS (SELECT 1 FROM {RECENT} AS r WHERE r.value_id = v.value_id)"
    f" AND NOT EXISTS (SELECT 1 FROM {DAY_TOTALS} AS r WHERE r.value_id = v.value_id)"
)


def prune_values(conn: sqlite3.Connection) -> int:
    """Delete the dimension values no kept event has, after a prune (in its transaction).

    Every value of a kept event has a row in the daily roll-up by value for the event's day
    (a prune keeps the daily rows of the days it keeps), so a value in no roll-up row is in
    no event's ``dims``: each is found through the roll-ups' primary keys (value first), not
    by reading the events. `RECENT` is merged first by the prune (it has no index by value).
    A product's sessions come and go: without this, a ledger kept for 90 days would hold the
    ids of every session it ever saw. When any went, `VALUES_PRUNED` counts one more.

    Returns:
        How many values were deleted.
    """
    deleted = conn.execute(_PRUNE_VALUES).rowcount
    if deleted:
        conn.execute(
            "INSERT INTO meterline_meta (key, value) VALUES (?, '1')"
            " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (VALUES_PRUNED,),
        )
    return deleted


def value_ids(ids: object) -> list[int]:
    """The value ids of a row's ``dims`` (comma-separated ids; ``''`` for none).

    Raises:
        LedgerError: ``ids`` is not such a text (a damaged file).
    """
    if type(ids) is not str:
        raise LedgerError(f"stored dimensions {ids!r:.80} are unreadable: expected ids in text")
    if not ids:
        return []
    try:
        return [int(value_id) for value_id in ids.split(",")]
    except ValueError as exc:
        raise LedgerError(f"stored dimensions {ids!r:.80} are unreadable: {exc}") from exc


class Dictionaries:
    """Ids of keys and dimension values, both ways, for one ledger connection (used under its lock)."""

    __slots__ = (
        "_added",
        "_conn",
        "_pruned",
        "dims",
        "json",
        "key_fields",
        "key_ids",
        "rollup_ids",
        "value_ids",
        "values",
    )

    def __init__(self) -> None:
        self.key_ids: dict[tuple[Any, ...], int] = {}
        """Key fields -> their ``key_id``."""
        self.key_fields: dict[int, tuple[Any, ...]] = {}
        """``key_id`` -> its fields (the inverse of ``key_ids``)."""
        self.rollup_ids: dict[int, int] = {}
        """``key_id`` -> the key_id the roll-ups keep it under."""
        self.dims: dict[str, str] = {}
        """Dimensions' JSON -> the comma-separated ids of their values (``''`` for none)."""
        self.value_ids: dict[tuple[str, str], int] = {}
        """(name, value) -> ``value_id``."""
        self.values: dict[int, tuple[str, str]] = {}
        """``value_id`` -> (name, value)."""
        self.json: dict[str, str] = {}
        """A row's ``dims`` ids -> its dimensions' JSON (for readers)."""
        self._conn: sqlite3.Connection | None = None
        self._added: list[tuple[str, Any]] = []
        self._pruned: int | None = None

    def sync(self, conn: sqlite3.Connection) -> None:
        """Forget the values' ids if a prune has deleted values since the last transaction.

        Called first in every transaction on ``conn``: the ids of deleted values may since
        have been given to other values (SQLite numbers a new row past the largest id left),
        and a writer binding a deleted id would write rows no report finds.
        """
        pruned = values_pruned(conn)
        if pruned != self._pruned:
            if self._pruned is not None:
                for cache in (self.dims, self.value_ids, self.values, self.json):
                    cache.clear()
            self._pruned = pruned

    def begin(self, conn: sqlite3.Connection) -> None:
        """Start a write on ``conn``'s open transaction (new ids are stored in it).

        A cache that has reached `_MAX_CACHED` entries starts again, alone: the sets of
        dimensions (a product makes new ones with each session) fill up long before the
        values they refer to, which stay known.
        """
        if len(self.key_ids) >= _MAX_CACHED:
            for cache in (self.key_ids, self.key_fields, self.rollup_ids):
                cache.clear()
        if len(self.value_ids) >= _MAX_CACHED:
            self.value_ids.clear()
            self.values.clear()
        if len(self.dims) >= _MAX_CACHED:
            self.dims.clear()
        self._conn = conn
        self._added.clear()

    def commit(self) -> None:
        """The write committed: keep what it added."""
        self._conn = None
        self._added.clear()

    def rollback(self) -> None:
        """The write rolled back: forget the ids it stored (they are gone with it)."""
        self._conn = None
        for kind, entry in self._added:
            if kind == "key":
                key_id = self.key_ids.pop(entry, None)
                if key_id is not None:
                    self.key_fields.pop(key_id, None)
                    self.rollup_ids.pop(key_id, None)
            elif kind == "dims":
                self.dims.pop(entry, None)
            else:
                value_id = self.value_ids.pop(entry, None)
                if value_id is not None:
                    self.values.pop(value_id, None)
        self._added.clear()

    def _writing(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("internal: a dictionary id was asked for outside a write")
        return self._conn

    def key_id(self, fields: tuple[Any, ...]) -> int:
        """The ``key_id`` of key fields, stored if new."""
        found = self.key_ids.get(fields)
        if found is not None:
            return found
        rollup = rollup_fields(fields)
        rollup_id = None if rollup == fields else self.key_id(rollup)
        key_id = add_key(self._writing(), fields, rollup_id)
        self.key_ids[fields] = key_id
        self.key_fields[key_id] = fields
        self.rollup_ids[key_id] = key_id if rollup_id is None else rollup_id
        self._added.append(("key", fields))
        return key_id

    def dims_ids(self, text: str, dimensions: Mapping[str, str]) -> str:
        """The ids of ``dimensions``' values (``text``: their JSON), in the order of their names."""
        found = self.dims.get(text)
        if found is not None:
            return found
        ids = []
        for name in sorted(dimensions):
            pair = (name, dimensions[name])
            value_id = self.value_ids.get(pair)
            if value_id is None:
                value_id = self.value_ids[pair] = add_value(self._writing(), *pair)
                self.values[value_id] = pair
                self._added.append(("value", pair))
            ids.append(str(value_id))
        joined = self.dims[text] = ",".join(ids)
        self._added.append(("dims", text))
        return joined

    def load_keys(self, conn: sqlite3.Connection, key_ids: Any) -> None:
        """Read the fields of ``key_ids`` not cached yet (after a restart, or another writer's keys)."""
        missing = [key_id for key_id in set(key_ids) if key_id not in self.key_fields]
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT key_id, operation, status, provider, model, request_model, price_version,"  # noqa: S608
                f" coalesce(rollup_id, key_id) FROM meterline_keys WHERE key_id IN ({marks})",
                chunk,
            )
            for key_id, *fields, rollup_id in rows:
                self.key_fields[key_id] = tuple(fields)
                self.rollup_ids[key_id] = rollup_id

    def dimensions_json(self, conn: sqlite3.Connection, ids: str) -> str:
        """The dimensions of a row's ``dims`` ids as JSON, exactly as `Dimensions.json` writes them."""
        text = self.json.get(ids)
        if text is None:
            if len(self.json) >= _MAX_CACHED:
                self.json.clear()
            text = self.json[ids] = json.dumps(
                self.dimensions(conn, ids), sort_keys=True, separators=(",", ":")
            )
        return text

    def dimensions(self, conn: sqlite3.Connection, ids: str) -> dict[str, str]:
        """The dimensions of a row's ``dims`` ids, read from the value table when not cached.

        Raises:
            LedgerError: the ids are not a list of ids, or one is in no row of the value
                table (a damaged file).
        """
        if not ids:
            return {}
        numbers = value_ids(ids)
        missing = [value_id for value_id in numbers if value_id not in self.values]
        if missing:
            if len(self.values) >= _MAX_CACHED:
                self.values.clear()
                self.value_ids.clear()
                missing = numbers
            for start in range(0, len(missing), _IN_CHUNK):
                chunk = missing[start : start + _IN_CHUNK]
                rows = conn.execute(
                    "SELECT value_id, name, value FROM meterline_dim_values"  # noqa: S608 - constants only
                    f" WHERE value_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for value_id, name, value in rows:
                    self.values[value_id] = (name, value)
        try:
            return dict(self.values[value_id] for value_id in numbers)
        except KeyError as exc:
            raise LedgerError(f"stored dimensions {ids!r:.80} are unreadable: no value {exc}") from exc
