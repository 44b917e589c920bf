"""Analytics over a ledger: the Parquet export's speed and memory, and reports with DuckDB over it.

Run from the project root (extra ``analytics``):

    .venv/bin/python bench/bench_parquet.py            # BENCH_N events (default 200,000)
    BENCH_LEDGER=/path/ledger.db .venv/bin/python bench/bench_parquet.py   # that ledger, filled once
    BENCH_POSTGRES=1 .venv/bin/python bench/bench_parquet.py   # then a PostgreSQL ledger's exports

A SQLite ledger is filled with product-shaped events (`workload.events`: 200 orgs, 10,000
users, 100,000 sessions, 5 agents, 12 tools, 50 priced models, over 90 days). Then:

1. ``export_ledger_parquet`` of the whole ledger, in a process of its own: events/s and its
   peak RSS growth (the export holds a few batches and the open files' row groups), beside
   DuckDB writing the same rows from the export's files into the same day partitions
   (``COPY … PARTITION_BY (day)``). Then the JSON lines export (``SQLiteLedger.json_lines``,
   what ``meterline export --format jsonl`` writes) into a file, in a process of its own,
   beside DuckDB writing the same events from the Parquet files as JSON lines (``COPY … TO``).
2. A report by user and one by user x model over 7 days, three ways: the SQLite ledger's
   ``totals`` (its roll-ups), ``parquet_totals`` (DuckDB over the export), and the same
   aggregation written by hand in DuckDB SQL over the same files (the engine's floor), with
   ours over the floor as a ratio from the same run.
3. With ``BENCH_POSTGRES=1``: the same events in a PostgreSQL ledger (a schema of its own on
   the test server, dropped after), exported to Parquet through ADBC's PostgreSQL driver
   (``arrow_batches``) and from pages of raw rows, and as JSON lines, each in a process of its
   own, beside DuckDB writing the same rows from the export's files.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import duckdb

import workload
from meterline.ledger import ParquetExport, SQLiteLedger, parquet_totals

N = int(os.environ.get("BENCH_N", "200000"))


def _fill(path: Path) -> SQLiteLedger:
    """The ledger, filled with `workload.events` in time order (``BENCH_LEDGER``: kept, filled once)."""
    kept = os.environ.get("BENCH_LEDGER")
    if kept and Path(kept).exists():
        return SQLiteLedger(kept)
    ledger = SQLiteLedger(kept or str(path))
    for batch in workload.events(N):
        ledger.write(batch)
    return ledger


T = TypeVar("T")


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def _duckdb_rows(query: str, params: list[object]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = duckdb.connect().execute(query, params).fetchall()
    return rows


_EXPORT = """
import sys, time
sys.path[:0] = sys.argv[4:]
import adbc_driver_sqlite.dbapi, adbc_driver_postgresql.dbapi, pyarrow.compute, pyarrow.dataset, pyarrow.json
from meterline.ledger import PostgresLedger, SQLiteLedger, export_ledger_parquet  # before the baseline

def peak_kb():  # VmHWM: a forked child starts with its parent's peak, so it is reset below
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

if sys.argv[2].startswith("postgresql://"):  # "URL|schema"
    url, schema = sys.argv[2].split("|")
    ledger = PostgresLedger(url, schema=schema)
else:
    ledger = SQLiteLedger(sys.argv[2])

class Rows:  # the ledger as a reader of raw rows only: the export's path without ADBC
    event_rows = ledger.event_rows

with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak RSS becomes the current RSS
before = peak_kb()
began = time.perf_counter()
if sys.argv[1] == "parquet":
    export_ledger_parquet(ledger, sys.argv[3])
elif sys.argv[1] == "parquet-rows":
    export_ledger_parquet(Rows(), sys.argv[3])
else:
    with open(sys.argv[3], "w") as out:
        for text in ledger.json_lines():
            out.write(text)
seconds = time.perf_counter() - began
print(seconds, (peak_kb() - before) / 1024)
ledger.close()
"""


def _export_alone(kind: str, ledger: Path | str, out: Path) -> tuple[float, float]:
    """``kind``'s export of the ledger in a process of its own: seconds, and peak RSS growth in MB."""
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT, kind, str(ledger), str(out), os.path.abspath("src")],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, grew = done.stdout.split()
    return float(seconds), float(grew)


def main() -> None:
    """Print the export's rate and memory, and the three report times with ratios."""
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        ledger = _fill(root / "ledger.db")
        seconds, grew = _export_alone("parquet", ledger.path, root / "export")
        written = ParquetExport(
            events=ledger.stats().events,
            files=len(list((root / "export").rglob("*.parquet"))),
            days=len(list((root / "export").iterdir())),
        )
        files = str(root / "export" / "day=*" / "*.parquet")
        floor_s, _ = _timed(
            lambda: duckdb.connect().execute(
                f"COPY (SELECT * FROM read_parquet('{files}', hive_partitioning = true))"
                f" TO '{root / 'duck'}' (FORMAT PARQUET, PARTITION_BY (day), COMPRESSION zstd)"
            )
        )
        print(
            f"{written.events:,} events; export_ledger_parquet: {written.events / seconds:,.0f} events/s "
            f"({seconds:.1f} s), "
            f"{written.files} files over {written.days} days, peak RSS +{grew:.0f} MB;"
            f" DuckDB Parquet to Parquet {written.events / floor_s:,.0f} events/s; ours / DuckDB time"
            f" {seconds / floor_s:.1f}"
        )
        seconds, grew = _export_alone("jsonl", ledger.path, root / "export.jsonl")
        floor_s, _ = _timed(
            lambda: duckdb.connect().execute(
                f"COPY (SELECT * FROM read_parquet('{files}', hive_partitioning = true))"
                f" TO '{root / 'duck.jsonl'}' (FORMAT JSON)"
            )
        )
        rate, floor_rate = written.events / seconds, written.events / floor_s
        print(
            f"JSON lines export: {rate:,.0f} events/s ({seconds:.1f} s), peak RSS +{grew:.0f} MB;"
            f" DuckDB from Parquet {floor_rate:,.0f} events/s; ours / DuckDB time {seconds / floor_s:.1f}"
        )
        since = datetime.fromtimestamp(workload.START_NS // 10**9, tz=UTC) + timedelta(days=workload.DAYS - 7)
        floor_sql = {
            "by user": "SELECT dimensions['user'], count(*), sum(input_tokens), sum(output_tokens), sum(cost)"
            " FROM read_parquet($1, hive_partitioning = true) GROUP BY 1",
            "by user x model, 7 days": "SELECT dimensions['user'], model, count(*), sum(input_tokens),"
            " sum(output_tokens), sum(cost) FROM read_parquet($1, hive_partitioning = true)"
            " WHERE time >= $2 GROUP BY 1, 2",
        }
        cases = {
            "by user": (("user",), None),
            "by user x model, 7 days": (("user", "model"), since),
        }
        print(f"{'report':<26}{'SQLite ledger s':>16}{'DuckDB ours s':>14}{'DuckDB SQL s':>14}{'ratio':>8}")
        export = root / "export"
        for label, (by, start) in cases.items():
            params: list[object] = [files] if start is None else [files, start]
            query = floor_sql[label]
            ledger_s, _ = _timed(functools.partial(ledger.totals, by=by, since=start))
            ours_s, rows = _timed(functools.partial(parquet_totals, export, by=by, since=start))
            floor_s, floor_rows = _timed(functools.partial(_duckdb_rows, query, params))
            assert len(rows) == len(floor_rows), (len(rows), len(floor_rows))
            print(f"{label:<26}{ledger_s:>16.3f}{ours_s:>14.3f}{floor_s:>14.3f}{ours_s / floor_s:>8.2f}")
        ledger.close()
        if os.environ.get("BENCH_POSTGRES"):
            _postgres(root)


def _postgres(root: Path) -> None:
    """The same events in a PostgreSQL ledger: its Parquet exports (ADBC, raw rows) and JSON lines."""
    import uuid

    import psycopg
    from psycopg import sql

    from meterline.ledger import PostgresLedger

    url = os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    schema = f"meterline_bench_{uuid.uuid4().hex[:8]}"
    ledger = PostgresLedger(url, schema=schema)
    try:
        for batch in workload.events(N, batch=100_000):
            for at in range(0, len(batch), 5_000):
                ledger.write(batch[at : at + 5_000])
        with psycopg.connect(url, autocommit=True) as conn:  # as autovacuum would (off on this server)
            conn.execute("VACUUM ANALYZE")
        for kind in ("parquet", "parquet-rows", "jsonl"):
            out = root / (f"pg-{kind}" if kind != "jsonl" else "pg.jsonl")
            seconds, grew = _export_alone(kind, f"{url}|{schema}", out)
            print(f"PostgreSQL {kind}: {N / seconds:,.0f} events/s ({seconds:.1f} s), RSS +{grew:.0f} MB")
        files = str(root / "pg-parquet" / "day=*" / "*.parquet")
        floor_s, _ = _timed(
            lambda: duckdb.connect().execute(
                f"COPY (SELECT * FROM read_parquet('{files}', hive_partitioning = true))"
                f" TO '{root / 'pg-duck'}' (FORMAT PARQUET, PARTITION_BY (day), COMPRESSION zstd)"
            )
        )
        print(f"DuckDB Parquet to Parquet (the same rows): {N / floor_s:,.0f} events/s")
    finally:
        ledger.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
