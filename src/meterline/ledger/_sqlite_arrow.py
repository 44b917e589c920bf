"""The SQLite ledger's events read as Arrow columns by ADBC's SQLite driver (extra ``analytics``).

A bulk reader (the Parquet and JSON lines exports) needs every column of every event, and the fastest that
Python's ``sqlite3`` gives is a tuple per row: about 210,000 rows a second on this project's
2-core machine before any conversion, which bounds the export. ADBC's SQLite driver (Apache
Arrow's) steps the same statement and fills Arrow columns in C: 590,000 rows a second over the
same events, and every conversion after it is an Arrow kernel over a whole column (a UTC
timestamp, a cost in USD, the dimensions as a map or as JSON): `event_batches` gives record
batches of the Parquet export's schema, `json_texts` the JSON lines of `_arrow_json`.

The file is opened read-only, on a connection of its own (WAL readers never wait for the
writer): one ``SELECT`` in id order, one snapshot of the ledger, however long the export.

Two things of the driver shape the statement:

- It infers each column's Arrow type from the first rows it reads, and a column that is NULL
  in all of them becomes int64, then fails at its first text. The statement's first row is
  therefore a typed sentinel (text ``''``, ``0``, ``0.0`` where a column holds text, integers,
  reals), dropped before any batch is returned; its absence is a `LedgerError`.
- The dimensions stay as stored (the comma-separated ids of their values, in the order of
  their names). The keys and values are read once the events' statement has begun: they
  are never deleted, so every one its rows refer to is there; Arrow joins them (``take``).
"""

from __future__ import annotations as _annotations

import importlib.util
import json
from collections.abc import Generator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from meterline._extras import require
from meterline._usage import USAGE_FIELDS
from meterline.exceptions import LedgerError
from meterline.ledger._arrow_json import concatenated, json_text
from meterline.ledger._parquet import arrow_schema, usd_of_pico
from meterline.ledger._prefetch import prefetched
from meterline.ledger._rows import json_or_null, json_string
from meterline.ledger._sqlite_schema import ID_TEXT, KEY_FIELDS, after_id_within, stored_id

__all__ = ["event_batches", "fast_reader_installed", "json_texts"]

T = TypeVar("T")
_BATCH_ROWS: Final = 10_000
"""Rows per record batch (the driver's ``batch_rows``): what the reader holds at a time."""
_INTEGERS: Final = ("time_ns", "key_id", "measured", *USAGE_FIELDS, "attempt", "tokens_saved", "batch")
_TEXTS: Final = ("dims", "links", "operation_id", "response_id", "service_tier", "cost")
_NULLABLE_INTEGERS: Final = ("cost_pico", "reported_cost_pico")
_COLUMNS: Final = ("id", *_INTEGERS, *_TEXTS, *_NULLABLE_INTEGERS, "latency_ms")
_SENTINEL: Final = "SELECT " + ", ".join(
    ["''", *("0" for _ in _INTEGERS), *("''" for _ in _TEXTS), *("0" for _ in _NULLABLE_INTEGERS), "0.0"]
)
_SELECTED: Final = ", ".join(ID_TEXT if name == "id" else name for name in _COLUMNS)
"""`_COLUMNS` as the statement selects them: the id as its text."""
_EMPTY_KEY: Final = ", ''" * len(KEY_FIELDS)
_KEYS: Final = (
    f"SELECT -1{_EMPTY_KEY} UNION ALL SELECT * FROM"  # noqa: S608 - constants only
    f" (SELECT key_id, {', '.join(KEY_FIELDS)} FROM meterline_keys ORDER BY key_id)"
)
_VALUES: Final = "SELECT value_id, name, value FROM meterline_dim_values ORDER BY value_id"


def fast_reader_installed() -> bool:
    """Whether ADBC's SQLite driver and pyarrow can be imported (the extra ``analytics``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("pyarrow", "adbc_driver_sqlite"))


def event_batches(path: Path, *, since: datetime | None, until: datetime | None) -> Iterator[Any]:
    """The ledger file's events, in id order, as record batches of `arrow_schema`.

    Args:
        path: The ledger's file.
        since: Only events at or after this time, if given.
        until: Only events before this time, if given.

    Raises:
        MissingExtraError: ADBC's SQLite driver or pyarrow is not installed.
        LedgerError: the file cannot be read, or holds what a ledger never writes.
    """
    for tables, column in prefetched(_read(path, since, until, "")):
        yield tables.record_batch(column)


def json_texts(path: Path, *, since: datetime | None, until: datetime | None, after_id: str) -> Iterator[str]:
    """The ledger file's events after ``after_id``, in id order, as JSON lines (many per string).

    Each line is `event_json_line`'s for the event's row (`meterline.ledger._arrow_json`).

    Raises:
        MissingExtraError: ADBC's SQLite driver or pyarrow is not installed.
        LedgerError: the file cannot be read, or holds what a ledger never writes.
    """
    for tables, column in prefetched(_read(path, since, until, after_id)):
        yield tables.json_text(column)


def _read(
    path: Path, since: datetime | None, until: datetime | None, after_id: str
) -> Generator[tuple[_Tables, dict[str, Any]], None, None]:
    """The events' columns (`_COLUMNS`) a batch at a time, with the keys and values they refer to."""
    adbc = require("analytics", "adbc_driver_sqlite.dbapi")
    clauses, bounds, order = after_id_within(since, until)
    sql = (
        f"{_SENTINEL} UNION ALL SELECT * FROM (SELECT {_SELECTED}"  # noqa: S608 - constants only
        f" FROM meterline_events AS e WHERE {' AND '.join(clauses)} ORDER BY {order})"
    )
    uri = f"{path.as_uri()}?mode=ro"  # percent-encoded: a '?' or '#' in the path stays in it
    try:
        with adbc.connect(uri) as conn, conn.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(_BATCH_ROWS)})
            cursor.execute(sql, [stored_id(after_id), *bounds])
            tables: _Tables | None = None
            for batch in cursor.fetch_record_batch():
                if tables is None:  # the first batch begins the snapshot: read what it refers to
                    if batch.num_rows == 0 or batch.column(0)[0].as_py() != "":
                        raise LedgerError(f"ledger {path}: the export's first row is not its sentinel")
                    batch = batch.slice(1)  # noqa: PLW2901 - the sentinel row goes
                    tables = _Tables(conn)
                if batch.num_rows:
                    yield tables, dict(zip(_COLUMNS, batch.columns, strict=True))
    except adbc.Error as exc:
        raise LedgerError(f"ledger {path}: the export could not read it: {exc}") from exc


class _Tables:
    """The keys and dimension values, read once, and the conversions of a batch that use them."""

    def __init__(self, conn: Any) -> None:
        self._pa = pa = require("analytics", "pyarrow")
        self._pc = require("analytics", "pyarrow.compute")
        self._schema = arrow_schema()
        with conn.cursor() as cursor:
            cursor.execute(_KEYS)
            keys = cursor.fetch_arrow_table()
        if keys.num_rows == 0 or keys.column(0)[0].as_py() != -1:
            raise LedgerError("the keys' first row is not their sentinel")
        keys = keys.slice(1).rename_columns(["key_id", *KEY_FIELDS])
        self._key_ids = keys.column("key_id").combine_chunks()
        self._key_fields = {name: keys.column(name).combine_chunks().cast(pa.string()) for name in KEY_FIELDS}
        with conn.cursor() as cursor:
            cursor.execute(_VALUES)
            values = cursor.fetch_arrow_table()
        self._value_ids = values.column("value_id").combine_chunks()
        self._names = values.column("name").combine_chunks().cast(pa.string())
        self._values = values.column("value").combine_chunks().cast(pa.string())
        self._key_json: dict[str, Any] | None = None
        self._value_json: Any = None

    def record_batch(self, column: dict[str, Any]) -> Any:
        """One batch of the statement's columns as a batch of `arrow_schema`."""
        pa = self._pa
        keys = self._keys(column["key_id"])
        arrays = {
            "id": column["id"],
            "time": column["time_ns"].cast(pa.timestamp("ns", tz="UTC")),
            **{name: self._pc.take(self._key_fields[name], keys) for name in KEY_FIELDS},
            "operation_id": column["operation_id"],
            "response_id": column["response_id"],
            "service_tier": column["service_tier"],
            "measured": column["measured"].cast(pa.bool_()),
            **{name: column[name] for name in USAGE_FIELDS},
            "cost": usd_of_pico(pa, column["cost_pico"]),
            "latency_ms": column["latency_ms"],
            "dimensions": self._map(column["dims"]),
            "attempt": column["attempt"].cast(pa.int32()),
            "links": self._links(column["links"]),
            "tokens_saved": column["tokens_saved"],
            "batch": column["batch"].cast(pa.bool_()),
            "reported_cost": usd_of_pico(pa, column["reported_cost_pico"]),
        }
        return pa.RecordBatch.from_arrays([arrays[field.name] for field in self._schema], schema=self._schema)

    def json_text(self, column: dict[str, Any]) -> str:
        """One batch of the statement's columns as JSON lines (`json_text`)."""
        pa, pc = self._pa, self._pc
        if self._key_json is None:  # each key's and value's JSON, once
            self._key_json = {
                name: pa.array(
                    [json_or_null(text) for text in self._key_fields[name].to_pylist()], pa.string()
                )
                for name in KEY_FIELDS
            }
            self._value_json = pa.array(
                [
                    f",{json_string(name)}:{json_string(value)}"
                    for name, value in zip(self._names.to_pylist(), self._values.to_pylist(), strict=True)
                ],
                pa.string(),
            )
        keys = self._keys(column["key_id"])
        offsets, at = self._values_at(column["dims"])
        pairs = concatenated(offsets, pc.take(self._value_json, at))  # ',"org":"o1","user":"u7"'
        dimensions = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(pairs, start=1), "}", "")
        return json_text(
            column, {name: pc.take(self._key_json[name], keys) for name in KEY_FIELDS}, dimensions
        )

    def _keys(self, key_ids: Any) -> Any:
        """Each event's row in the keys' arrays."""
        at = self._pc.index_in(key_ids, value_set=self._key_ids)
        if at.null_count:
            raise LedgerError("an event's key is not in the ledger (a damaged file)")
        return at

    def _values_at(self, dims: Any) -> tuple[Any, Any]:
        """Each event's stored value ids (``dims``) as list offsets, and each value's row in the values."""
        pa, pc = self._pa, self._pc
        lengths = pc.if_else(pc.equal(dims, ""), 0, pc.add(pc.count_substring(dims, ","), 1))
        offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)]).cast(pa.int32())
        ids = pc.split_pattern(pc.filter(dims, pc.not_equal(dims, "")), ",").flatten()
        try:
            ids = ids.cast(pa.int64())
        except pa.ArrowInvalid as exc:
            raise LedgerError(f"stored dimensions are unreadable: expected ids in text ({exc})") from exc
        at = pc.index_in(ids, value_set=self._value_ids)
        if at.null_count:
            raise LedgerError("an event's dimension value is not in the ledger (a damaged file)")
        return offsets, at

    def _map(self, dims: Any) -> Any:
        """Each event's stored value ids (``dims``) as a map of names to values, in the names' order."""
        offsets, at = self._values_at(dims)
        return self._pa.MapArray.from_arrays(
            offsets, self._pc.take(self._names, at), self._pc.take(self._values, at)
        )

    def _links(self, links: Any) -> Any:
        """The links' JSON lists as lists (most events have none: ``'[]'``, no JSON decoded)."""
        pa, pc = self._pa, self._pc
        if not pc.any(pc.not_equal(links, "[]")).as_py():
            no_links = pa.repeat(pa.scalar(0, pa.int32()), len(links) + 1)
            return pa.ListArray.from_arrays(no_links, pa.array([], pa.string()))
        texts = links.to_pylist()
        return pa.array([[] if text == "[]" else json.loads(text) for text in texts], pa.list_(pa.string()))
