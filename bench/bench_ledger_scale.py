"""The ledger at a real product's shape: ingest, size and reports, each beside the engine's floor.

Run from the project root (extra ``analytics`` for the DuckDB floor):

    .venv/bin/python bench/bench_ledger_scale.py               # BENCH_N events (default 1,000,000)
    BENCH_N=10000000 .venv/bin/python bench/bench_ledger_scale.py
    BENCH_POSTGRES=1 .venv/bin/python bench/bench_ledger_scale.py   # then PostgreSQL too
    BENCH_POSTGRES=only .venv/bin/python bench/bench_ledger_scale.py   # PostgreSQL alone

The events are `workload.events` (50 priced models, 200 orgs, 10,000 users, 100,000
sessions, 5 agents, 12 tools, 90 days). For each store:

1. Ingest: ``write`` in batches of 1,000 (the writer's batch), from the first batch to the
   last commit, beside a plain ``executemany`` of the same events as flat rows (every field
   and dimension a column, the id its primary key) into a table of the same engine, committed
   per batch of the same size: events/s and ours over the plain as a ratio. PostgreSQL's
   floor is ``COPY`` of the flat rows.
   Then the writes of the product's next days, continuing both files (`_continued`).
2. Size: bytes per event of our file and of the plain table's (SQLite, after a checkpoint).
3. Reports: ``totals`` by each dimension and by model over the whole ledger (its 90 days are
   three whole months), by user and by org over the last 30 days (no whole month), by session
   over the last 7 days (8,000 of the 100,000 sessions), by user x model and by user x agent
   over the last 7 days, by day, by user and day, by user of three orgs over the last 30 days
   (an invoice run's: a filter on another dimension); each in a process of its own (its time, and
   its RSS growth over the process's own after opening), beside the same GROUP BY in DuckDB
   over the same flat rows (its file built once per run).
4. With ``BENCH_POSTGRES=1``: a PostgreSQL ledger (batches of 5,000) beside ``COPY`` of the
   flat rows into a plain table, and its reports (each in a process of its own, best of 3)
   beside the same GROUP BY over that table and in DuckDB over the same rows. Every table is
   ``VACUUM ANALYZE``d after the ingest (both ledgers' and the plain one), as autovacuum would
   have done: the test server runs without it, and without statistics the planner scans whole
   roll-ups.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sqlite3

import workload

N = int(os.environ.get("BENCH_N", "1000000"))
BATCH = 1000
POSTGRES_URL = os.environ.get("METERLINE_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
END = datetime.fromtimestamp(workload.START_NS // 10**9, tz=UTC) + timedelta(days=workload.DAYS)
LAST_WEEK = END - timedelta(days=7)
LAST_30_DAYS = END - timedelta(days=30)
THREE_ORGS = ["org-001", "org-002", "org-003"]
"""Customers whose users an invoice run lists (a filter on another dimension: a scan of events)."""
REPORTS: dict[str, tuple[tuple[str, ...], datetime | None, str | None]] = {
    "by org": (("org",), None, None),
    "by user": (("user",), None, None),
    "by session": (("session",), None, None),
    "by agent": (("agent",), None, None),
    "by tool": (("tool",), None, None),
    "by model": (("model",), None, None),
    "by user, 30 days": (("user",), LAST_30_DAYS, None),  # a month's days, not one whole month
    "by org, 30 days": (("org",), LAST_30_DAYS, None),
    "by session, 7 days": (("session",), LAST_WEEK, None),  # a week's 8,000 of 100,000 sessions
    "by day": ((), None, "day"),
    "by user x day": (("user",), None, "day"),
    "by user x model, 7 days": (("user", "model"), LAST_WEEK, None),
    "by user x agent, 7 days": (("user", "agent"), LAST_WEEK, None),
    "by user of 3 orgs, 30 days": (("user",), LAST_30_DAYS, None),  # where org in THREE_ORGS
}
FILTERED: dict[str, dict[str, list[str]]] = {"by user of 3 orgs, 30 days": {"org": THREE_ORGS}}
"""The reports of `REPORTS` filtered on a dimension: its allowed values."""
_SUMS = "count(*), sum(input_tokens), sum(output_tokens), sum(cost_pico)"


def _floor_sql(label: str, divide: str) -> tuple[str, list[object]]:
    """Report ``label`` as one GROUP BY over the flat rows (``divide``: the engine's integer division)."""
    by, since, granularity = REPORTS[label]
    keys = [f'"{name}"' for name in by]  # quoted: "user" is a keyword of PostgreSQL
    if granularity == "day":
        keys.append(f"time_ns {divide} 86400000000000")
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("time_ns >= ?")
        params.append(int(since.timestamp()) * 10**9)
    for name, allowed in FILTERED.get(label, {}).items():
        clauses.append(f'"{name}" IN ({", ".join("?" * len(allowed))})')
        params.extend(allowed)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    group = ", ".join(keys) or "1"
    return f"SELECT {group}, {_SUMS} FROM plain{where} GROUP BY {group}", params


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _RssWatch:
    """The largest resident set size seen while it runs, sampled every millisecond, in MB."""

    def __init__(self) -> None:
        self.before = self.peak = _rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, _rss_mb())

    def growth(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, _rss_mb()) - self.before


def report_child(kind: str, url: str, label: str) -> None:
    """Run one report in this process; print its seconds, rows and RSS growth as JSON."""
    by, since, granularity = REPORTS[label]
    if kind == "duckdb":
        import duckdb

        conn = duckdb.connect(url, read_only=True)
        sql, params = _floor_sql(label, "//")
        watch = _RssWatch()
        began = time.perf_counter()
        rows = len(conn.execute(sql, params).fetchall())
    elif kind == "sqlite-plain":
        conn2 = sqlite3.connect(url)
        sql, params = _floor_sql(label, "/")
        watch = _RssWatch()
        began = time.perf_counter()
        rows = len(conn2.execute(sql, params).fetchall())
    elif kind == "postgres-plain":
        import psycopg

        address, _, table = url.rpartition("|")
        conn3 = psycopg.connect(address)
        sql, params = _floor_sql(label, "/")
        watch = _RssWatch()
        began = time.perf_counter()
        rows = len(
            conn3.execute(sql.replace("FROM plain", f"FROM {table}").replace("?", "%s"), params).fetchall()
        )
    else:
        from meterline.ledger import PostgresLedger, open_ledger

        address, _, schema = url.rpartition("|")  # a PostgreSQL ledger as "URL|schema"
        ledger = PostgresLedger(address, schema=schema) if address else open_ledger(url)
        watch = _RssWatch()
        began = time.perf_counter()
        where = FILTERED.get(label)
        rows = len(ledger.totals(by=by, since=since, granularity=granularity, where=where))  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "rows": rows, "rss_mb": watch.growth()}))


def _child(kind: str, url: str, label: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--report", kind, url, label], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _best(kind: str, url: str, label: str, rounds: int = 3) -> dict[str, float]:
    runs = [_child(kind, url, label) for _ in range(rounds)]
    return min(runs, key=lambda run: run["seconds"])


def _write_both(
    ledger: Any, plain: sqlite3.Connection, insert: str, events: list[Any], rows: list[tuple[object, ...]]
) -> tuple[float, float]:
    """Seconds writing ``events`` into ``ledger`` and their flat ``rows`` into ``plain``, by `BATCH`."""
    ours_s = plain_s = 0.0
    for at in range(0, len(events), BATCH):
        began = time.perf_counter()
        ledger.write(events[at : at + BATCH])
        ours_s += time.perf_counter() - began
        began = time.perf_counter()
        plain.execute("BEGIN")
        plain.executemany(insert, rows[at : at + BATCH])
        plain.execute("COMMIT")
        plain_s += time.perf_counter() - began
    return ours_s, plain_s


def _continued(root: Path, insert: str) -> tuple[float, float, int]:
    """Events/s of ours and of the plain rows writing on after the ledger's last day, at its rate.

    A product's ledger has a history: the writes of its next days (the workload continued,
    ``min(N, 100,000)`` events), each into a copy of the filled files so that the reports
    below still read the N events.
    """
    import shutil

    from meterline.ledger import SQLiteLedger

    shutil.copy(root / "ledger.db", root / "ledger-continued.db")
    shutil.copy(root / "plain.db", root / "plain-continued.db")
    end_ns = workload.START_NS + workload.DAYS * workload.DAY_NS
    events = next(iter(workload.events(N, batch=min(N, 100_000), seed=11, start_ns=end_ns)))
    rows = [workload.flat_row(event) for event in events]
    ledger = SQLiteLedger(root / "ledger-continued.db")
    plain = _plain_sqlite(root / "plain-continued.db")
    ours_s, plain_s = _write_both(ledger, plain, insert, events, rows)
    ledger.close()
    plain.close()
    for name in ("ledger-continued.db", "plain-continued.db"):
        for suffix in ("", "-wal", "-shm"):
            (root / (name + suffix)).unlink(missing_ok=True)
    return len(events) / ours_s, len(events) / plain_s, len(events)


def _plain_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    types = {"id": "TEXT PRIMARY KEY", "latency_ms": "REAL"}
    texts = {"operation", "status", "provider", "model", "price_version", *workload.DIMENSIONS}
    columns = ", ".join(
        f"{name} {types.get(name, 'TEXT' if name in texts else 'INTEGER')}" for name in workload.FLAT_COLUMNS
    )
    conn.execute(f"CREATE TABLE IF NOT EXISTS plain ({columns})")
    return conn


def _duckdb_file(path: Path, batches: list[list[tuple[object, ...]]]) -> None:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

    texts = {"id", "operation", "status", "provider", "model", "price_version", *workload.DIMENSIONS}
    schema = pa.schema(
        [
            (name, pa.string() if name in texts else pa.float64() if name == "latency_ms" else pa.int64())
            for name in workload.FLAT_COLUMNS
        ]
    )
    conn = duckdb.connect(str(path))
    for rows in batches:
        arrow_rows = pa.Table.from_pylist(  # noqa: F841 - read by name in the SQL
            [dict(zip(workload.FLAT_COLUMNS, row, strict=True)) for row in rows], schema=schema
        )
        conn.execute("CREATE TABLE IF NOT EXISTS plain AS SELECT * FROM arrow_rows LIMIT 0")
        conn.execute("INSERT INTO plain SELECT * FROM arrow_rows")
    conn.close()


def _postgres() -> None:
    """The same events into a PostgreSQL ledger (batches of 5,000) beside ``COPY`` of the flat rows;
    its reports beside the same GROUP BY over the plain table and in DuckDB. In a schema of its own,
    dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    from meterline.ledger import PostgresLedger

    schema = f"meterline_bench_{uuid.uuid4().hex[:8]}"
    duck_dir = tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR"))
    duck_path = Path(duck_dir.name) / "plain.duckdb"  # the same flat rows, for DuckDB's GROUP BY
    ledger = PostgresLedger(POSTGRES_URL, schema=schema)
    conn = psycopg.connect(POSTGRES_URL, autocommit=True)
    try:
        texts = {"id", "operation", "status", "provider", "model", "price_version", *workload.DIMENSIONS}
        columns = ", ".join(
            f'"{name}" {"TEXT" if name in texts else "FLOAT8" if name == "latency_ms" else "BIGINT"}'
            + (" PRIMARY KEY" if name == "id" else "")
            for name in workload.FLAT_COLUMNS
        )
        plain = sql.Identifier(schema, "plain")
        conn.execute(sql.SQL(f"CREATE TABLE {{}} ({columns})").format(plain))
        copy = sql.SQL("COPY {} FROM STDIN").format(plain)
        ours_s = plain_s = 0.0
        chunk: list[list[tuple[object, ...]]] = []
        for events in workload.events(N, batch=100_000):
            rows = [workload.flat_row(event) for event in events]
            chunk.append(rows)
            if len(chunk) == 10:
                _duckdb_file(duck_path, chunk)
                chunk = []
            for at in range(0, len(events), 5_000):
                began = time.perf_counter()
                ledger.write(events[at : at + 5_000])
                ours_s += time.perf_counter() - began
                began = time.perf_counter()
                with conn.transaction(), conn.cursor().copy(copy) as writing:
                    for row in rows[at : at + 5_000]:
                        writing.write_row(row)
                plain_s += time.perf_counter() - began
        if chunk:
            _duckdb_file(duck_path, chunk)
        print(
            f"PostgreSQL ingest: ledger {N / ours_s:,.0f}/s, plain COPY {N / plain_s:,.0f}/s,"
            f" ratio {plain_s / ours_s:.2f}"
        )
        # What autovacuum does in production (this server runs without it): statistics for the
        # planner, and the space of updated roll-up rows marked for reuse. Ours and the plain table alike.
        for (table,) in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall():
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(schema, table)))
        conn.execute("CHECKPOINT")
        sizes: dict[bool, int] = dict(
            conn.execute(  # every table of the schema with its indexes and TOAST: ours, and the plain one
                "SELECT c.relname = 'plain', sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
                " GROUP BY 1",
                (schema,),
            ).fetchall()
        )
        print(
            f"PostgreSQL bytes/event: ledger {sizes[False] / N:,.0f}, plain {sizes[True] / N:,.0f},"
            f" ratio {sizes[False] / sizes[True]:.2f} (goal <= 1.2)"
        )
        header = f"{'report':<26}{'ledger s':>10}{'+MB':>7}{'plain SQL s':>12}{'ledger/plain':>14}"
        print(f"{header}{'DuckDB s':>10}{'ledger/DuckDB':>15}")
        for label in REPORTS:
            ours = _best("ledger", f"{POSTGRES_URL}|{schema}", label)
            floor = _best("postgres-plain", f'{POSTGRES_URL}|"{schema}".plain', label)
            duck = _best("duckdb", str(duck_path), label)
            print(
                f"{label:<26}{ours['seconds']:>10.3f}{ours['rss_mb']:>7.0f}{floor['seconds']:>12.3f}"
                f"{ours['seconds'] / floor['seconds']:>14.1f}{duck['seconds']:>10.3f}"
                f"{ours['seconds'] / duck['seconds']:>15.1f}"
            )
            assert ours["rows"] == floor["rows"] == duck["rows"] or label == "by day", (label, ours, floor)
    finally:
        duck_dir.cleanup()
        ledger.close()
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.close()


def main() -> None:
    """Fill the stores, then print ingest, size and report figures with ratios."""
    from meterline.ledger import SQLiteLedger

    warnings.simplefilter("ignore")
    if os.environ.get("BENCH_POSTGRES") == "only":
        _postgres()
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as directory:
        root = Path(directory)
        ledger = SQLiteLedger(root / "ledger.db")
        plain = _plain_sqlite(root / "plain.db")
        insert = f"INSERT INTO plain VALUES ({', '.join('?' * len(workload.FLAT_COLUMNS))})"
        ours_s = plain_s = 0.0
        chunk: list[list[tuple[object, ...]]] = []
        for events in workload.events(N, batch=100_000):
            rows = [workload.flat_row(event) for event in events]
            written = _write_both(ledger, plain, insert, events, rows)
            ours_s += written[0]
            plain_s += written[1]
            chunk.append(rows)
            if len(chunk) == 10:
                _duckdb_file(root / "plain.duckdb", chunk)
                chunk = []
        if chunk:
            _duckdb_file(root / "plain.duckdb", chunk)
        ledger.close()
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        plain.close()
        conn = sqlite3.connect(root / "ledger.db")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        continued = _continued(root, insert)
        ours_bytes = (root / "ledger.db").stat().st_size / N
        plain_bytes = (root / "plain.db").stat().st_size / N
        print(f"{N:,} events, batches of {BATCH:,}; peak RSS of the filler {_peak_mb():,.0f} MB")
        print(
            f"SQLite ingest: ledger {N / ours_s:,.0f}/s, plain executemany {N / plain_s:,.0f}/s,"
            f" ratio {plain_s / ours_s:.2f} (goal >= 0.5)"
        )
        print(
            f"SQLite ingest continuing the ledger ({continued[2]:,} events at its rate):"
            f" ledger {continued[0]:,.0f}/s, plain executemany {continued[1]:,.0f}/s,"
            f" ratio {continued[0] / continued[1]:.2f}"
        )
        print(
            f"SQLite bytes/event: ledger {ours_bytes:,.0f}, plain {plain_bytes:,.0f},"
            f" ratio {ours_bytes / plain_bytes:.2f} (goal <= 1.2)"
        )
        url = f"sqlite:///{root / 'ledger.db'}"
        header = f"{'report':<26}{'ledger s':>10}{'+MB':>7}{'plain SQL s':>12}{'DuckDB s':>10}"
        print(f"{header}{'ledger/DuckDB':>15}")
        for label in REPORTS:
            ours = _best("ledger", url, label)
            floor = _best("sqlite-plain", str(root / "plain.db"), label)
            duck = _best("duckdb", str(root / "plain.duckdb"), label)
            print(
                f"{label:<26}{ours['seconds']:>10.3f}{ours['rss_mb']:>7.0f}{floor['seconds']:>12.3f}"
                f"{duck['seconds']:>10.3f}{ours['seconds'] / duck['seconds']:>15.1f}"
            )
            assert ours["rows"] == duck["rows"] or label == "by day", (label, ours, duck)
    if os.environ.get("BENCH_POSTGRES"):
        _postgres()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        report_child(*sys.argv[2:5])
    else:
        main()
