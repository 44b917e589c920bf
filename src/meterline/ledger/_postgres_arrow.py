"""The PostgreSQL ledger's events read as Arrow columns by ADBC's PostgreSQL driver (extra ``analytics``).

The driver reads a query's rows with ``COPY … TO STDOUT (FORMAT binary)`` straight into Arrow
arrays, a batch at a time (constant memory, one snapshot), with no Python object per row:
374,000 rows/s against 173,000 for psycopg's pages of tuples (300,000 product events). The
columns are then made the Parquet export's (`arrow_schema`) by Arrow kernels, the dimensions'
JSON by Arrow's JSON reader; Python touches only each distinct list of links of a batch, the
text values that hold an escaped NUL (`meterline.ledger._postgres_copy.escape`), and the
dimension sets of a batch that reader cannot decode (none a ledger writes).
"""

from __future__ import annotations as _annotations

import importlib.util
import io
from collections.abc import Generator, Iterator
from decimal import Decimal
from typing import Any, Final

from meterline._extras import require
from meterline._money import tidy
from meterline._usage import USAGE_FIELDS
from meterline.exceptions import LedgerError
from meterline.ledger._arrow_json import KEY_FIELDS, json_text
from meterline.ledger._parquet import arrow_schema, dimension_pairs, link_lists, usd_of_pico
from meterline.ledger._postgres_copy import TEXT_COLUMNS, unescape
from meterline.ledger._postgres_schema import SPARSE_EVENT_FIELDS
from meterline.ledger._prefetch import prefetched
from meterline.ledger._rows import EVENT_COLUMNS, json_or_null

__all__ = ["event_batches", "fast_reader_installed", "json_texts"]

_ESC: Final = "\uffff"
_BATCH_ROWS: Final = 16_384
"""Rows per record batch the driver makes, about (its ``batch_size_hint_bytes``: 256 bytes a row).

With 65,536 a JSON lines export of 300,000 events peaked at 356 MB, 184 MB so, as fast."""
_READ_AS: Final = {
    **{name: f"coalesce({name}, 0)" for name in SPARSE_EVENT_FIELDS},
    # The stored cost only where its pico-dollars do not say it exactly (finer than a pico-dollar).
    "cost": "CASE WHEN cost * 1000000000000 = cost_pico THEN NULL ELSE cost::text END",
    "cost_pico": "cost_pico::bigint",  # the driver gives NUMERIC as text
    "reported_cost_pico": "reported_cost_pico::bigint",
}
_SELECTED: Final = ", ".join(
    f"{_READ_AS[name]} AS {name}" if name in _READ_AS else name for name in EVENT_COLUMNS
)
"""What the reader selects of an event: `EVENT_COLUMNS`, as `_READ_AS` says."""


def fast_reader_installed() -> bool:
    """Whether ADBC's PostgreSQL driver and pyarrow can be imported (the extra ``analytics``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("pyarrow", "adbc_driver_postgresql"))


def event_batches(url: str, events: str, values: str, *, conditions: list[str]) -> Iterator[Any]:
    """The events of table ``events`` (a quoted name) in id order, as record batches of `arrow_schema`.

    The driver reads the next batch on a thread of its own while this one is converted
    (`prefetched`): a Parquet export of 300,000 product events, 112,000 -> 129,000-143,000 events/s.

    Args:
        url: The driver's ``postgresql://`` URL.
        events: The events table's name, quoted (fixed SQL, never caller input).
        values: The dimension values table's name, quoted: its names are those the events hold.
        conditions: SQL conditions on ``time_ns``, their bounds integers written in them: a
            query with parameters cannot be a ``COPY``, and the driver then reads its whole
            answer into one batch (a JSON lines export of 1M events grew by 4.3 GB).

    Raises:
        MissingExtraError: ADBC's PostgreSQL driver or pyarrow is not installed.
        LedgerError: the server failed or cannot be reached.
    """
    pa = require("analytics", "pyarrow")
    schema = arrow_schema()
    for names, column in prefetched(_read(url, events, values, conditions)):
        yield _export_batch(pa, column, schema, names)


def json_texts(url: str, events: str, values: str, *, conditions: list[str]) -> Iterator[str]:
    """The events of table ``events`` in id order as JSON lines (many per string): `json_text`'s.

    Args and errors as `event_batches`.
    """
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    for _, column in prefetched(_read(url, events, values, conditions)):
        text = {name: _unescaped(pa, pc, column[name]) for name in TEXT_COLUMNS}
        cost = column["cost"]
        if cost.null_count < len(cost):  # costs finer than a pico-dollar: as `event_rows` gives them
            cost = pa.array(
                [None if v is None else str(tidy(Decimal(v))) for v in cost.to_pylist()], pa.string()
            )
        keys = {name: _json_or_null(pa, pc, text[name]) for name in KEY_FIELDS}
        yield json_text({**column, **text, "cost": cost}, keys, column["dimensions"])


def _json_or_null(pa: Any, pc: Any, texts: Any) -> Any:
    """A text column's values as JSON (`json_or_null`), each distinct value of the batch written once."""

    def convert(distinct: list[str | None]) -> Any:
        return pa.array([json_or_null(text) for text in distinct], pa.string())

    return pc.fill_null(_each_distinct(pc, texts, convert), "null")


def _read(
    url: str, events: str, values: str, conditions: list[str]
) -> Generator[tuple[list[str], dict[str, Any]], None, None]:
    """The dimension names stored, and the stored rows' columns (`_SELECTED`) a batch at a time.

    The rows are one snapshot; the names are read just before it (an event stored meanwhile
    with a new name has its batch decoded by Python, `_dimension_maps`).
    """
    adbc = require("analytics", "adbc_driver_postgresql.dbapi")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {_SELECTED} FROM {events}{where} ORDER BY id"  # noqa: S608 - constants and a quoted name
    try:
        with adbc.connect(url) as conn, conn.cursor() as cursor:
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_BATCH_ROWS * 256)}
            )
            cursor.execute(f"SELECT DISTINCT name FROM {values}")  # noqa: S608 - a quoted name
            names = sorted(str(unescape(name)) for (name,) in cursor.fetchall())
            cursor.execute(sql)
            for batch in cursor.fetch_record_batch():
                if batch.num_rows:
                    yield names, dict(zip(batch.schema.names, batch.columns, strict=True))
    except adbc.Error as exc:
        raise LedgerError(f"the PostgreSQL ledger's export could not read its events: {exc}") from exc


def _export_batch(pa: Any, column: dict[str, Any], schema: Any, names: list[str]) -> Any:
    """A batch of stored rows (`EVENT_READ`'s columns) as one record batch of the export's ``schema``.

    ``names`` are the dimension names stored (sorted): those the dimensions' JSON may hold.
    """
    pc = require("analytics", "pyarrow.compute")
    text = {name: _unescaped(pa, pc, column[name]) for name in TEXT_COLUMNS}
    latency = column["latency_ms"]
    arrays: dict[str, Any] = {
        "id": text["id"],
        "time": column["time_ns"].cast(pa.timestamp("ns", tz="UTC")),
        **{name: text[name] for name in ("operation", "status", "provider", "model", "request_model")},
        "price_version": text["price_version"],
        "measured": pc.not_equal(column["measured"], 0),
        **{name: column[name] for name in USAGE_FIELDS},
        "cost": usd_of_pico(pa, column["cost_pico"]),
        "latency_ms": pc.if_else(pc.is_nan(latency), pa.scalar(None, pa.float64()), latency),  # as null
        "dimensions": _dimension_maps(pa, pc, column["dimensions"], names),
        "operation_id": text["operation_id"],
        "attempt": column["attempt"].cast(pa.int32()),
        "response_id": text["response_id"],
        "links": _each_distinct(
            pc, column["links"], lambda distinct: pa.array(link_lists(distinct), pa.list_(pa.string()))
        ),
        "tokens_saved": column["tokens_saved"],
        "service_tier": text["service_tier"],
        "batch": pc.not_equal(column["batch"], 0),
        "reported_cost": usd_of_pico(pa, column["reported_cost_pico"]),
    }
    return pa.RecordBatch.from_arrays([arrays[field.name] for field in schema], schema=schema)


def _unescaped(pa: Any, pc: Any, texts: Any) -> Any:
    """A text column with `escape` undone: only a batch holding an escaped NUL is touched in Python."""
    if not pc.any(pc.match_substring(texts, _ESC)).as_py():
        return texts
    return pa.array([unescape(value) for value in texts.to_pylist()], pa.string())


def _each_distinct(pc: Any, texts: Any, convert: Any) -> Any:
    """``convert`` (of a batch's distinct texts, to an array) applied to each text of ``texts``."""
    encoded = pc.dictionary_encode(texts)
    return convert(encoded.dictionary.to_pylist()).take(encoded.indices)


def _dimension_maps(pa: Any, pc: Any, texts: Any, names: list[str]) -> Any:
    """The dimensions' JSON texts as maps, each distinct text of the batch decoded once.

    Arrow's JSON reader decodes them all at once (`_read_maps`); a batch it cannot (a name not
    among ``names``, a value not a string: never written by a ledger) is decoded by Python.
    """

    def convert(distinct: list[str]) -> Any:
        maps = _read_maps(pa, pc, distinct, names)
        if maps is None:
            maps = pa.array(dimension_pairs(distinct), pa.map_(pa.string(), pa.string()))
        return maps

    return _each_distinct(pc, texts, convert)


def _read_maps(pa: Any, pc: Any, texts: list[str], names: list[str]) -> Any:
    """JSON objects of strings as a map array, by Arrow's JSON reader; ``None`` when it cannot.

    The reader makes a column per name (null where an object lacks it); each object's pairs
    are then its non-null columns in name order, gathered by one sort of (row, name) numbers.
    Parsing in Python took three quarters of an export's time (a batch's dimension sets are
    about one per two events): 135,000 -> 180,000-203,000 events/s (300,000 product events).
    """
    pj = require("analytics", "pyarrow.json")
    if not names:
        return None
    options = pj.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in names]), unexpected_field_behavior="error"
    )
    try:
        table = pj.read_json(io.BytesIO("\n".join(texts).encode()), parse_options=options)
    except (pa.ArrowInvalid, UnicodeEncodeError):  # a name it was not told of, a lone surrogate…
        return None
    if table.num_rows != len(texts):  # a text that was not one JSON object on one line
        return None
    width = len(names)
    columns = [table.column(name).combine_chunks() for name in names]
    present = [pc.is_valid(column) for column in columns]
    order_keys = pa.concat_arrays(
        [
            pc.add(pc.multiply(pc.indices_nonzero(valid).cast(pa.int64()), width), rank)
            for rank, valid in enumerate(present)
        ]
    )
    values = pa.concat_arrays([column.filter(valid) for column, valid in zip(columns, present, strict=True)])
    order = pc.sort_indices(order_keys)
    ordered = order_keys.take(order)
    ranks = pc.subtract(ordered, pc.multiply(pc.divide(ordered, width), width))
    counts = present[0].cast(pa.int32())
    for valid in present[1:]:
        counts = pc.add(counts, valid.cast(pa.int32()))
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(counts)])
    return pa.MapArray.from_arrays(offsets, pa.array(names, pa.string()).take(ranks), values.take(order))
