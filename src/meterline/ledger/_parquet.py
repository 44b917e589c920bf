"""The ledger as a Parquet dataset, for analytics at any scale (extra ``analytics``).

`export_parquet` streams events into a Hive-partitioned dataset, one directory per UTC day
(``day=2026-12-04/part-0.parquet``), at most ``rows_per_file`` rows per file, in constant
memory (pyarrow's dataset writer). `parquet_totals` answers a ledger report over such a dataset
with DuckDB, aggregating inside the engine. `export_ledger_parquet` reads a SQLite ledger as
Arrow columns (`SQLiteLedger.arrow_batches`, ADBC's SQLite driver), never an object per event.

The schema (`arrow_schema`, and the ``day`` partition), for DuckDB, Spark, ClickHouse and BigQuery users:

========================  =============================  ==============================================
column                    Parquet type                   meaning
========================  =============================  ==============================================
``id``                    string                         event id (32 hex digits, UUIDv7): unique
``time``                  timestamp (ns, UTC)            when the event was recorded
``operation``, ``status`` string                         ``chat``…; ``ok`` or an error status
``provider``, ``model``   string (null)                  who served the call; the model that served it
``request_model``         string (null)                  the model asked for, when it differs
``measured``              bool                           false: the usage is unknown (counts are 0)
8 token columns           int64                          `meterline.Usage`'s token fields, in tokens
4 tool-call columns       int64                          its server-side tool calls (``web_search_requests``…)
``cost``                  decimal(38, 12) (null)         USD to the pico; null: unpriced or unmeasured
``price_version``         string (null)                  the price data behind ``cost``
``latency_ms``            double (null)                  milliseconds
``dimensions``            map<string, string>            dimensions and tags, in the names' order
``operation_id``          string (null)                  groups the attempts of one logical call
``attempt``               int32                          1 for the first attempt
``response_id``           string (null)                  the provider's response id
``links``                 list<string>                   related event ids
``tokens_saved``          int64                          a cache hit's saved tokens
``service_tier``          string (null)                  the tier that served the call (``flex``…)
``batch``                 bool                           made through a provider's Batch API
``reported_cost``         decimal(38, 12) (null)         USD the provider stated (to the pico-dollar)
``day``                   partition (``YYYY-MM-DD``)     the UTC day of ``time``
========================  =============================  ==============================================

BigQuery loads ``dimensions`` as a repeated ``key_value`` record and ``cost`` as NUMERIC
(38, 9 digits: round) or BIGNUMERIC; ClickHouse reads them as ``Map(String, String)`` and
``Decimal(38, 12)``.
"""

from __future__ import annotations as _annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from meterline._dimensions import EVENT_FIELDS, check_names
from meterline._events import NOT_MODEL_CALLS, UsageEvent, event_filters
from meterline._extras import require
from meterline._money import tidy
from meterline._usage import USAGE_FIELDS, Usage, new_usage
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import GRANULARITIES, LedgerRow
from meterline.ledger._rows import EVENT_COLUMNS

__all__ = [
    "PARQUET_COLUMNS",
    "ParquetExport",
    "arrow_schema",
    "dimension_pairs",
    "export_ledger_parquet",
    "export_parquet",
    "link_lists",
    "parquet_totals",
    "usd_of_pico",
]

PARQUET_COLUMNS: Final = tuple(
    {"time_ns": "time", "reported_cost_pico": "reported_cost"}.get(name, name)
    for name in EVENT_COLUMNS
    if name not in ("hour", "cost_pico")
)
"""The data columns of every file, in order (``day`` is the partition): the ledger's event
columns (`EVENT_COLUMNS`), with ``time`` a timestamp, the stated cost in USD
(``reported_cost``), and neither ``hour`` nor ``cost_pico``."""

_ROWS_PER_FILE: Final = 1_000_000
_OPEN_DAYS: Final = 8
"""Day files kept open (each buffers a row group): past it, the least recent is closed, so
memory stays bounded; events out of day order then make more, smaller files."""
_BATCH: Final = 10_000
"""Events turned into one Arrow record batch at a time (what the export holds in memory)."""
_STRING_COLUMNS: Final = ("operation", "status", "provider", "model", "request_model", "price_version")
_MODEL_CALL_SQL: Final = "operation NOT IN ({})".format(
    ", ".join(f"'{op}'" for op in sorted(NOT_MODEL_CALLS))
)


@dataclass(frozen=True, slots=True)
class ParquetExport:
    """What `export_parquet` wrote."""

    events: int
    """Events written."""
    files: int
    """Parquet files written."""
    days: int
    """Day partitions written."""


def arrow_schema() -> Any:
    """The Arrow schema of the files' data columns (`PARQUET_COLUMNS`; ``day`` is the partition)."""
    pa = require("analytics", "pyarrow")
    return pa.schema(
        [
            ("id", pa.string()),
            ("time", pa.timestamp("ns", tz="UTC")),
            *((name, pa.string()) for name in ("operation", "status", "provider", "model", "request_model")),
            ("measured", pa.bool_()),
            *((name, pa.int64()) for name in USAGE_FIELDS),
            ("cost", pa.decimal128(38, 12)),
            ("price_version", pa.string()),
            ("latency_ms", pa.float64()),
            ("dimensions", pa.map_(pa.string(), pa.string())),
            ("operation_id", pa.string()),
            ("attempt", pa.int32()),
            ("response_id", pa.string()),
            ("links", pa.list_(pa.string())),
            ("tokens_saved", pa.int64()),
            ("service_tier", pa.string()),
            ("batch", pa.bool_()),
            ("reported_cost", pa.decimal128(38, 12)),
        ]
    )


def export_parquet(
    events: Iterable[UsageEvent], directory: str | Path, *, rows_per_file: int = _ROWS_PER_FILE
) -> ParquetExport:
    """Write ``events`` as a Parquet dataset partitioned by UTC day, in constant memory.

    The events are turned into Arrow record batches of ``_BATCH`` rows, which pyarrow's
    dataset writer spreads over the day partitions, keeping a file open per day being written
    and starting a new one past ``rows_per_file`` rows: events in any order make whole files.

    Args:
        events: The events, in any order (a ledger's `LedgerBackend.events` streams them).
        directory: The dataset's directory: created if missing; it must be empty (files of an
            earlier export would be read twice).
        rows_per_file: Most rows per file.

    Returns:
        How many events, files and day partitions were written.

    Raises:
        ConfigurationError: ``directory`` is not empty, or ``rows_per_file`` is not positive.
        MissingExtraError: pyarrow is not installed (``pip install "meterline[analytics]"``).
    """
    pa = require("analytics", "pyarrow")
    root = _empty_directory(directory, rows_per_file)
    schema = arrow_schema().append(pa.field("day", pa.string()))
    count = 0

    def batches() -> Iterator[Any]:
        nonlocal count
        batch: list[UsageEvent] = []
        for event in events:
            batch.append(event)
            if len(batch) == _BATCH:
                count += len(batch)
                yield _record_batch(batch, schema)
                batch = []
        if batch:
            count += len(batch)
            yield _record_batch(batch, schema)

    files = _write(pa.RecordBatchReader.from_batches(schema, batches()), root, rows_per_file)
    return _summary(count, files)


def export_ledger_parquet(
    ledger: Any,
    directory: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    rows_per_file: int = _ROWS_PER_FILE,
) -> ParquetExport:
    """`export_parquet` of a ledger's events (``since``/``until`` as `LedgerBackend.events`).

    A ledger that reads its events as Arrow batches (``arrow_batches``: the SQLite and
    PostgreSQL ledgers, through ADBC's drivers) is exported without a Python object per event
    (six and 2.6 times faster); one that streams raw rows (``event_rows``) column by column
    from them; any other through its events. All write the same dataset.

    Raises:
        ConfigurationError: as `export_parquet`.
        MissingExtraError: pyarrow (or the ledger's ADBC driver) is not installed.
        LedgerError: the ledger failed.
    """
    arrow_batches = getattr(ledger, "arrow_batches", None)
    event_rows = getattr(ledger, "event_rows", None)
    pa = require("analytics", "pyarrow")
    pc = require("analytics", "pyarrow.compute")
    root = _empty_directory(directory, rows_per_file)
    schema = arrow_schema()
    with_day = schema.append(pa.field("day", pa.string()))
    if arrow_batches is not None:
        source: Iterator[Any] = arrow_batches(since=since, until=until)
    elif event_rows is not None:
        source = (
            _batch_from_rows(page, schema) for page in event_rows(since=since, until=until, page=_BATCH)
        )
    else:
        return export_parquet(ledger.events(since=since, until=until), root, rows_per_file=rows_per_file)
    count = 0

    def batches() -> Iterator[Any]:
        nonlocal count
        for batch in source:
            count += batch.num_rows
            day = pc.strftime(batch.column("time"), format="%Y-%m-%d")
            yield pa.RecordBatch.from_arrays([*batch.columns, day], schema=with_day)

    files = _write(pa.RecordBatchReader.from_batches(with_day, batches()), root, rows_per_file)
    return _summary(count, files)


def usd_of_pico(pa: Any, pico: Any) -> Any:
    """Pico-dollars (an int64 array, nulls kept) as USD decimal(38, 12): the same integers at scale 12.

    Every cost is exported from the integer the ledger adds up (`UsageEvent.cost_pico`): a
    cost built by hand finer than a pico-dollar is exported rounded half to even, as the
    reports add it, rather than failing the export.
    """
    return pico.cast(pa.decimal128(38, 0)).view(pa.decimal128(38, 12))


def _summary(events: int, files: Sequence[str]) -> ParquetExport:
    return ParquetExport(events=events, files=len(files), days=len({Path(path).parent for path in files}))


def _empty_directory(directory: str | Path, rows_per_file: object) -> Path:
    if type(rows_per_file) is not int or rows_per_file < 1:
        raise ConfigurationError(f"rows_per_file={rows_per_file!r}: expected a positive int")
    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise ConfigurationError(f"directory={str(root)!r}: expected an empty or new directory")
    return root


def _write(reader: Any, root: Path, rows_per_file: int) -> list[str]:
    """Write ``reader``'s batches under ``root``, partitioned by ``day``; the files' paths.

    The files are listed once the write is done (``root`` was empty), not through the
    writer's ``file_visitor``: a Python callback called from Arrow's threads aborts the
    process at exit now and then (apache/arrow#36980; 4 runs in 20 of a script that wrote
    a dataset with one, none in 20 without).
    """
    pa = require("analytics", "pyarrow")
    dataset = require("analytics", "pyarrow.dataset")
    root.mkdir(parents=True, exist_ok=True)
    dataset.write_dataset(
        reader,
        root,
        format="parquet",
        partitioning=dataset.partitioning(pa.schema([("day", pa.string())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        max_rows_per_file=rows_per_file,
        max_rows_per_group=min(rows_per_file, _BATCH),
        max_open_files=_OPEN_DAYS,
        existing_data_behavior="overwrite_or_ignore",
        file_options=dataset.ParquetFileFormat().make_write_options(compression="zstd"),
    )
    return sorted(str(path) for path in root.rglob("*.parquet"))


def _batch_from_rows(rows: Sequence[tuple[Any, ...]], schema: Any) -> Any:
    """Raw ledger rows (`EVENT_COLUMNS` order) as one record batch of ``schema``: columns at once."""
    pa = require("analytics", "pyarrow")
    columns = dict(zip(EVENT_COLUMNS, zip(*rows, strict=True), strict=True))
    arrays: dict[str, Any] = {
        "id": pa.array(columns["id"], pa.string()),
        "time": pa.array(columns["time_ns"], pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        **{name: pa.array(columns[name], pa.string()) for name in _STRING_COLUMNS},
        "measured": pa.array(columns["measured"], pa.int64()).cast(pa.bool_()),
        **{name: pa.array(columns[name], pa.int64()) for name in USAGE_FIELDS},
        "cost": usd_of_pico(pa, pa.array(columns["cost_pico"], pa.int64())),
        "latency_ms": pa.array(
            [None if value is None or math.isnan(value) else float(value) for value in columns["latency_ms"]],
            pa.float64(),
        ),
        "dimensions": pa.array(dimension_pairs(columns["dimensions"]), pa.map_(pa.string(), pa.string())),
        "operation_id": pa.array(columns["operation_id"], pa.string()),
        "attempt": pa.array(columns["attempt"], pa.int32()),
        "response_id": pa.array(columns["response_id"], pa.string()),
        "links": pa.array(link_lists(columns["links"]), pa.list_(pa.string())),
        "tokens_saved": pa.array(columns["tokens_saved"], pa.int64()),
        "service_tier": pa.array(columns["service_tier"], pa.string()),
        "batch": pa.array(columns["batch"], pa.int64()).cast(pa.bool_()),
        "reported_cost": usd_of_pico(pa, pa.array(columns["reported_cost_pico"], pa.int64())),
    }
    return pa.RecordBatch.from_arrays([arrays[field.name] for field in schema], schema=schema)


def link_lists(texts: Sequence[str]) -> list[list[str]]:
    """Links' JSON texts (as a ledger stores them) as lists (``[]`` for most)."""
    return [[] if text == "[]" else json.loads(text) for text in texts]


def dimension_pairs(texts: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Dimensions' JSON texts as (name, value) lists in the names' order, each distinct text decoded once."""
    seen: dict[str, list[tuple[str, str]]] = {}
    out = []
    for text in texts:
        items = seen.get(text)
        if items is None:
            items = seen[text] = sorted(json.loads(text).items())
        out.append(items)
    return out


def _record_batch(batch: Sequence[UsageEvent], schema: Any) -> Any:
    """``batch`` as one record batch of ``schema`` (costs from their pico-dollars, `usd_of_pico`)."""
    pa = require("analytics", "pyarrow")
    columns: dict[str, Any] = _columns(batch)
    for name in ("cost", "reported_cost"):
        columns[name] = usd_of_pico(pa, pa.array(columns[name], pa.int64()))
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def _columns(batch: Sequence[UsageEvent]) -> dict[str, list[Any]]:
    """``batch`` as one list per column (the fastest input pyarrow takes from Python objects)."""
    columns: dict[str, list[Any]] = {name: [] for name in (*PARQUET_COLUMNS, "day")}
    zero = Usage()
    for event in batch:
        usage = event.usage
        measured = usage is not None
        counts = usage if usage is not None else zero
        columns["id"].append(event.id)
        columns["time"].append(event.time_ns)
        for name in _STRING_COLUMNS:
            columns[name].append(getattr(event, name))
        columns["measured"].append(measured)
        for name in USAGE_FIELDS:
            columns[name].append(getattr(counts, name))
        columns["cost"].append(event.cost_pico)
        columns["latency_ms"].append(event.latency_ms)
        columns["dimensions"].append(sorted(event.dimensions.items()))
        columns["operation_id"].append(event.operation_id)
        columns["attempt"].append(event.attempt)
        columns["response_id"].append(event.response_id)
        columns["links"].append(list(event.links))
        columns["tokens_saved"].append(event.tokens_saved)
        columns["service_tier"].append(event.service_tier)
        columns["batch"].append(event.batch)
        columns["reported_cost"].append(event.reported_cost_pico)
        columns["day"].append(
            datetime.fromtimestamp(event.time_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")
        )
    return columns


def parquet_totals(
    directory: str | Path,
    *,
    by: Sequence[str] = (),
    where: Mapping[str, object] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    granularity: str | None = None,
) -> list[LedgerRow]:
    """A ledger report over a Parquet export, aggregated by DuckDB (extra ``analytics``).

    The same rows as `LedgerBackend.totals` for the same events: model calls' usage and cost,
    ``unmeasured`` and ``unpriced`` counts, every event in ``events``.

    Args:
        directory: A dataset `export_parquet` wrote.
        by: Dimensions to group by: ``operation``, ``status``, ``provider``, ``model`` or any
            dimension name (read from ``dimensions``).
        where: Keep only events whose value equals the given one (or is in it, for a set,
            list or tuple); ``None`` matches events without it; a provider by its canonical
            name. As `LedgerBackend.totals`' ``where``.
        since: Keep events from this time (inclusive).
        until: Keep events before this time (exclusive).
        granularity: ``hour``, ``day`` or ``month``: also group by that period (UTC).

    Raises:
        ConfigurationError: a bad dimension name or granularity, or no dataset at ``directory``.
        LedgerError: DuckDB could not read the dataset (a damaged file).
        MissingExtraError: duckdb is not installed (``pip install "meterline[analytics]"``).
    """
    duckdb = require("analytics", "duckdb")
    root = Path(directory)
    if not any(root.glob("day=*/*.parquet")):
        raise ConfigurationError(f"directory={str(root)!r}: expected a meterline Parquet export")
    if granularity is not None and granularity not in GRANULARITIES:
        raise ConfigurationError(f"granularity={granularity!r}: expected one of {', '.join(GRANULARITIES)}")
    params: list[object] = [str(root / "day=*" / "*.parquet")]

    def value_of(name: str) -> str:
        """SQL: an event's ``name``: a column (one of `EVENT_FIELDS`), else its dimension's value."""
        if name in EVENT_FIELDS:
            return name
        params.append(name)
        return f"dimensions[${len(params)}]"  # NULL for an event without it

    keys = [value_of(name) for name in check_names(by, "by")]
    if granularity is not None:
        keys.insert(0, f"date_trunc('{granularity}', time)")  # one of GRANULARITIES
    clauses = []
    for name, allowed in event_filters(where).items():
        wanted = [value for value in allowed if type(value) is str]  # what an event holds: str
        if not wanted and None not in allowed:
            clauses.append("false")
            continue
        column = value_of(name)
        kept = [f"{column} IS NULL"] if None in allowed else []
        for value in wanted:
            params.append(value)
            kept.append(f"{column} = ${len(params)}")
        clauses.append(f"({' OR '.join(kept)})")
    if since is not None:
        params.append(since)
        clauses.append(f"time >= ${len(params)}")
    if until is not None:
        params.append(until)
        clauses.append(f"time < ${len(params)}")
    # The ledger's order (`LedgerBackend.totals`): cost, then events, highest first; then the
    # key, a missing value first (UTF-8 bytes sort as code points do); then the period.
    positions = [str(at) for at in range(1, len(keys) + 1)]
    if granularity is not None:
        positions.append(positions.pop(0))
    order = ", ".join(
        ["coalesce(model_cost, 0) DESC", "events DESC", *(f"{at} NULLS FIRST" for at in positions)]
    )
    model_call = _MODEL_CALL_SQL
    sums = ", ".join(f"sum(CASE WHEN {model_call} THEN {name} ELSE 0 END)" for name in USAGE_FIELDS)
    select = ", ".join(keys) if keys else "NULL"
    sql = (
        f"SELECT {select}, count(*) AS events,"  # noqa: S608 - column names are constants; values are parameters
        f" count(*) FILTER (WHERE NOT measured AND {model_call}),"
        f" count(*) FILTER (WHERE measured AND cost IS NULL AND {model_call}),"
        f" {sums},"
        f" sum(cost) FILTER (WHERE {model_call}) AS model_cost,"
        " coalesce(sum(latency_ms), 0), sum(tokens_saved)"
        f" FROM read_parquet($1, hive_partitioning = true)"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        + (f" GROUP BY ALL ORDER BY {order}" if keys else "")
    )
    try:
        with duckdb.connect() as connection:
            rows = connection.execute(sql, params).fetchall()
    except duckdb.Error as exc:  # a damaged file, or one of another dataset
        raise LedgerError(f"the report over the Parquet export {str(root)!r} failed: {exc}") from exc
    period_at = 0 if granularity is not None else None
    key_count = len(keys)
    result = []
    for row in rows:
        if not row[key_count if keys else 1]:  # no events: the one row of an aggregate without keys
            continue
        values = list(row[:key_count]) if keys else []
        period = None
        if period_at is not None:
            period = values.pop(0)
            period = period.astimezone(UTC) if period.tzinfo else period.replace(tzinfo=UTC)
        rest = row[key_count if keys else 1 :]
        events, unmeasured, unpriced = int(rest[0]), int(rest[1] or 0), int(rest[2] or 0)
        counts = [int(value or 0) for value in rest[3 : 3 + len(USAGE_FIELDS)]]
        cost, latency, saved = rest[3 + len(USAGE_FIELDS) :]
        result.append(
            LedgerRow(
                key=tuple(None if value is None else str(value) for value in values),
                period=period,
                events=events,
                unmeasured=unmeasured,
                unpriced=unpriced,
                usage=new_usage(*counts),  # sums of counts checked when recorded, in USAGE_FIELDS order
                cost=Decimal(0) if cost is None else tidy(Decimal(cost)),  # as a ledger's: "0.0035"
                latency_ms=float(latency),
                tokens_saved=int(saved or 0),
            )
        )
    return result
