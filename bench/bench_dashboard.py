"""The dashboard on a real product's ledger: its API's latency and the overview's time to draw.

Run from the project root (extras ``dashboard`` and ``analytics``, and Debian's chromium):

    .venv/bin/python bench/bench_dashboard.py                 # BENCH_N events (default 1,000,000)
    BENCH_LEDGER=/tmp/dash.db .venv/bin/python bench/bench_dashboard.py   # keep (or reuse) the ledger

The ledger holds `workload.events` (50 priced models, 200 orgs, 10,000 users, 100,000
sessions, 5 agents, 12 tools) over the 90 days up to now, in SQLite (the embedded default).
`meterline serve` runs over it in a process of its own, then:

1. API: p50 and p99 of 30 requests of each query the pages make: the overview (six spans'
   totals, tokens), its top 10 sessions and users (of 7 days, the page's default, and of 30),
   its chart (cost by model and day over 30 days), and an explore query (by user over 30
   days: the table, its 500 costliest rows as the page asks, and its chart by user and day).
   Beside each, the same numbers from DuckDB over the same events as flat rows (the engine's
   floor for the same work, best of 5), as a ratio.
2. Browser: the overview opened 5 times in headless Chromium, each in a new page: the time
   from navigation until every panel is drawn (the page marks the moment), median and max.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

if os.path.isdir("src"):
    sys.path.insert(0, os.path.abspath("src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpx

import workload
from bench_ledger_scale import _duckdb_file
from meterline.ledger import open_ledger

N = int(os.environ.get("BENCH_N", "1000000"))
ROUNDS = 30
CHROMIUM = "/usr/bin/chromium"
NOW = datetime.now(tz=UTC)
START_NS = int((NOW - timedelta(days=workload.DAYS)).timestamp()) * 10**9
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
MONTH = (MIDNIGHT - timedelta(days=29)).isoformat()
WEEK = (MIDNIGHT - timedelta(days=6)).isoformat()
"""The last 30 and 7 UTC days, today included: the pages' spans."""
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "overview (6 spans, tokens)": ("/api/overview", {}),
    "top 10 sessions, 7 d": ("/api/report", {"by": "session", "since": WEEK, "limit": "10"}),
    "top 10 users, 7 d": ("/api/report", {"by": "user", "since": WEEK, "limit": "10"}),
    "top 10 sessions, 30 d": ("/api/report", {"by": "session", "since": MONTH, "limit": "10"}),
    "top 10 users, 30 d": ("/api/report", {"by": "user", "since": MONTH, "limit": "10"}),
    "overview chart (model x day, 30 d)": (
        "/api/series",
        {"by": "model", "since": MONTH, "granularity": "day"},
    ),
    "explore table (by user, 30 d)": ("/api/report", {"by": "user", "since": MONTH, "limit": "500"}),
    "explore chart (user x day, 30 d)": ("/api/series", {"by": "user", "since": MONTH, "granularity": "day"}),
}


def _build(path: Path) -> tuple[float, list[list[tuple[object, ...]]]]:
    """Write the events to a SQLite ledger at ``path``; return seconds taken and the flat rows."""
    ledger = open_ledger(f"sqlite:///{path}")
    flat: list[list[tuple[object, ...]]] = []
    began = time.perf_counter()
    for batch in workload.events(N, batch=5_000, start_ns=START_NS):
        ledger.write(batch)
        flat.append([workload.flat_row(event) for event in batch])
    seconds = time.perf_counter() - began
    ledger.close()
    return seconds, flat


def _duckdb_queries(path: Path) -> dict[str, Callable[[], object]]:
    """The same numbers as each API query, as plain DuckDB statements over the flat rows."""
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    until = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    spans = []
    for days in (1, 7, 30):  # as the overview's: whole UTC days, and as many before up to this hour
        since = MIDNIGHT - timedelta(days=days - 1)
        spans += [(since, until), (since - timedelta(days=days), until - timedelta(days=days))]
    month = int(datetime.fromisoformat(MONTH).timestamp()) * 10**9
    sums = "count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cost_pico)"

    def overview() -> object:
        spans_sql = (
            f"SELECT operation, {sums} FROM plain WHERE time_ns >= ? AND time_ns < ? GROUP BY operation"
        )
        return [
            conn.execute(spans_sql, [int(a.timestamp()) * 10**9, int(b.timestamp()) * 10**9]).fetchall()
            for a, b in spans
        ]

    def top(name: str, since: str, limit: int = 10) -> Callable[[], object]:
        sql = (
            f'SELECT "{name}", {sums} FROM plain WHERE time_ns >= ? GROUP BY 1 ORDER BY 6 DESC LIMIT {limit}'
        )
        start = int(datetime.fromisoformat(since).timestamp()) * 10**9
        return lambda: conn.execute(sql, [start]).fetchall()

    def grouped(name: str, daily: bool) -> Callable[[], object]:
        day = ", time_ns // 86400000000000" if daily else ""
        sql = f'SELECT "{name}"{day}, {sums} FROM plain WHERE time_ns >= ? GROUP BY ALL'
        return lambda: conn.execute(sql, [month]).fetchall()

    return {
        "overview (6 spans, tokens)": overview,
        "top 10 sessions, 7 d": top("session", WEEK),
        "top 10 users, 7 d": top("user", WEEK),
        "top 10 sessions, 30 d": top("session", MONTH),
        "top 10 users, 30 d": top("user", MONTH),
        "overview chart (model x day, 30 d)": grouped("model", True),
        "explore table (by user, 30 d)": top("user", MONTH, 500),
        "explore chart (user x day, 30 d)": grouped("user", True),
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _best(work: Callable[[], object], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def _serve(path: Path) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "meterline", "serve", "--ledger", f"sqlite:///{path}", "--port", str(port)],
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/api/dimensions", timeout=5)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the dashboard did not start")


def _drawn_seconds(url: str, rounds: int = 5) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    times = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=args)
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/")
            page.wait_for_selector("body[data-drawn='1']", timeout=60_000)
            times.append(page.evaluate("window.meterlineDrawnAt") / 1000)
            page.close()
        browser.close()
    return times


def main() -> None:
    """Build the ledger, serve it, and print the API's latencies and the overview's drawing time."""
    kept = os.environ.get("BENCH_LEDGER")
    folder = Path(tempfile.mkdtemp(prefix="meterline-dash-"))
    path = Path(kept) if kept else folder / "ledger.db"
    duck = folder / "flat.duckdb"
    if path.exists():
        print(f"reusing {path} (its events end when it was built)")
        flat = [[workload.flat_row(e) for e in batch] for batch in workload.events(N, start_ns=START_NS)]
    else:
        seconds, flat = _build(path)
        print(f"ledger: {N:,} events written in {seconds:.1f} s ({path.stat().st_size / 2**20:,.0f} MB)")
    _duckdb_file(duck, flat)
    del flat
    floors = {label: _best(work) for label, work in _duckdb_queries(duck).items()}
    server, url = _serve(path)
    try:
        title = f"API query ({ROUNDS} requests)"
        print(f"\n{title:<40}{'p50 s':>8}{'p99 s':>8}{'DuckDB s':>10}{'p50/DuckDB':>12}")
        with httpx.Client(base_url=url, timeout=120) as client:
            for label, (path_, params) in QUERIES.items():
                client.get(path_, params=params).raise_for_status()  # warm
                times = []
                for _ in range(ROUNDS):
                    began = time.perf_counter()
                    client.get(path_, params=params).raise_for_status()
                    times.append(time.perf_counter() - began)
                p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
                print(f"{label:<40}{p50:>8.3f}{p99:>8.3f}{floors[label]:>10.3f}{p50 / floors[label]:>12.1f}")
        if Path(CHROMIUM).exists():
            drawn = _drawn_seconds(url)
            print(
                f"\noverview drawn in Chromium (5 loads): median {statistics.median(drawn):.3f} s, "
                f"max {max(drawn):.3f} s (goal: under 1 s)"
            )
        else:
            print(f"\nno Chromium at {CHROMIUM}: `make browser` installs it")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
