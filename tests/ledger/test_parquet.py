"""A Parquet export holds every event, partitioned by day; DuckDB's report over it equals the ledger's."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import meterline
from meterline import ConfigurationError, LedgerError, Meter, Usage
from meterline.ledger import (
    Granularity,
    LedgerRow,
    SQLiteLedger,
    export_ledger_parquet,
    export_parquet,
    parquet_totals,
)
from tests.cli.console import run
from tests.ledger.conformance import HOSTILE, T0, make_event

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("duckdb")

DAY = 86_400 * 10**9


def _ledger(tmp_path: Path) -> SQLiteLedger:
    """A SQLite ledger of 605 events over three days (three users, two models, a tool, billing details).

    Besides model calls: an unmeasured call, server-side tool calls, a tier, a batch call and a
    cost the provider stated.
    """
    meter = Meter(ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    events: list[meterline.UsageEvent] = []
    meter.subscribe(events.append)
    for index in range(600):
        with meter.scope(user=f"u{index % 3}", session=f"s{index % 40}"):
            model, provider = ("gpt-4o", "openai") if index % 2 else ("claude-sonnet-4-5", "anthropic")
            meter.record(
                Usage(
                    input_tokens=1000 + index,
                    cache_read_tokens=index % 500,
                    output_tokens=50,
                    reasoning_tokens=5,
                ),
                model=model,
                provider=provider,
                latency_ms=12.5,
            )
    with meter.scope(user="u1"):
        meter.record(None, model="gpt-4o", provider="openai")
        meter.record_tool("search", status="success", duration_ms=3.0)
    with meter.scope(user="u2"):
        searched = Usage(input_tokens=9000, output_tokens=300, web_search_requests=2, web_fetch_requests=1)
        meter.record(searched, model="claude-sonnet-4-5", provider="anthropic", service_tier="priority")
        meter.record(Usage(input_tokens=500, output_tokens=20), model="gpt-4o", provider="openai", batch=True)
    meter.flush()
    ledger = meter.ledger
    assert isinstance(ledger, SQLiteLedger)
    # Spread the stored events over three days (the ledger keeps what it is given).
    spread = SQLiteLedger(str(tmp_path / "spread.db"))
    spread.write(
        [
            meterline.UsageEvent.from_dict({**event.to_dict(), "time_ns": event.time_ns - (i % 3) * DAY})
            for i, event in enumerate(events)
        ]
        + [dataclasses.replace(events[0], id="f" * 32, reported_cost=Decimal("0.0042"))]
    )
    meter.close()
    return spread


def _key(row: LedgerRow) -> tuple[str, tuple[str, ...]]:
    return str(row.period), tuple(str(value) for value in row.key)


@pytest.mark.parametrize(
    ("by", "granularity"),
    [
        ((), None),
        (("user",), None),
        (("model",), "day"),
        (("user", "model"), None),
        (("operation", "status"), "hour"),
    ],
)
def test_duckdb_report_equals_the_ledgers(
    tmp_path: Path, by: tuple[str, ...], granularity: Granularity | None
) -> None:
    """Grouped by any dimensions and period, DuckDB over the export gives the ledger's rows exactly."""
    ledger = _ledger(tmp_path)
    written = export_parquet(ledger.events(), tmp_path / "export", rows_per_file=128)
    assert (written.events, written.days) == (605, 3)
    ours = parquet_totals(tmp_path / "export", by=by, granularity=granularity)
    assert ours == ledger.totals(by=by, granularity=granularity)  # the same rows in the same order
    ledger.close()


@pytest.mark.parametrize(
    "where",
    [
        {"user": "u1"},
        {"user": ["u0", "u2"], "model": "gpt-4o"},
        {"user": None},
        {"session": ["s1", "s39", None]},
        {"provider": "OpenAI"},  # a provider as a caller spells it: its canonical name's events
        {"model": None},
        {"user": "nobody"},
        {"user": 5},  # no dimension holds an int
    ],
)
def test_duckdb_report_filters_as_the_ledgers(tmp_path: Path, where: dict[str, object]) -> None:
    """``where`` keeps the events the ledger's report keeps: values, None for missing, canonical providers."""
    ledger = _ledger(tmp_path)
    export_parquet(ledger.events(), tmp_path / "export")
    for by in ((), ("user",), ("model", "session")):
        assert parquet_totals(tmp_path / "export", by=by, where=where) == ledger.totals(by=by, where=where)
    ledger.close()


def test_duckdb_report_filters_on_hostile_values_as_the_ledgers(tmp_path: Path) -> None:
    """Values holding NUL, quotes, SQL or a line separator, bound as parameters: the ledger's rows."""
    ledger = SQLiteLedger(str(tmp_path / "hostile.db"))
    notes = (*HOSTILE, ",1,", "")
    ledger.write(
        [
            make_event(
                number,
                T0 + timedelta(minutes=number),
                dims={"note": notes[number % 6], "user": f"u{number % 3}"},
            )
            for number in range(60)
        ]
    )
    export_parquet(ledger.events(), tmp_path / "export")
    for value in notes:
        for where in ({"note": value}, {"note": [value, None], "user": ["u1", "u2"]}):
            assert parquet_totals(tmp_path / "export", by=("user",), where=where) == ledger.totals(
                by=("user",), where=where
            ), where
    ledger.close()


def test_a_damaged_file_is_a_ledger_error(tmp_path: Path) -> None:
    """A file of the dataset DuckDB cannot read fails the report with a LedgerError naming the dataset."""
    ledger = _ledger(tmp_path)
    export_parquet(ledger.events(), tmp_path / "export")
    ledger.close()
    damaged = sorted((tmp_path / "export").glob("day=*/*.parquet"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(LedgerError, match="Parquet export"):
        parquet_totals(tmp_path / "export", by=("user",))


def test_the_dataset_is_partitioned_by_day_with_the_documented_schema(tmp_path: Path) -> None:
    """Each day a directory; files hold at most rows_per_file rows; columns and types as documented."""
    ledger = _ledger(tmp_path)
    written = export_parquet(ledger.events(), tmp_path / "export", rows_per_file=128)
    days = sorted(path.name for path in (tmp_path / "export").iterdir())
    assert len(days) == 3
    assert all(day.startswith("day=") for day in days)
    files = sorted((tmp_path / "export").glob("day=*/*.parquet"))
    assert len(files) == written.files
    tables = [pq.read_table(path) for path in files]
    assert all(table.num_rows <= 128 for table in tables)
    assert sum(table.num_rows for table in tables) == 605
    schema = tables[0].schema
    assert str(schema.field("cost").type) == "decimal128(38, 12)"
    dimensions = schema.field("dimensions").type
    assert (str(dimensions.key_type), str(dimensions.item_type)) == ("string", "string")
    assert str(schema.field("time").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("web_search_requests").type) == "int64"
    assert (str(schema.field("service_tier").type), str(schema.field("batch").type)) == ("string", "bool")
    assert str(schema.field("reported_cost").type) == "decimal128(38, 12)"
    rows = [row for table in tables for row in table.drop_columns(["time"]).to_pylist()]
    assert sum(row["web_search_requests"] for row in rows) == 2
    assert [row["service_tier"] for row in rows if row["service_tier"]] == ["priority"]
    assert sum(row["batch"] for row in rows) == 1
    assert [row["reported_cost"] for row in rows if row["reported_cost"] is not None] == [Decimal("0.0042")]
    ids = {row["id"] for table in tables for row in table.select(["id"]).to_pylist()}
    assert ids == {event.id for event in ledger.events()}
    ledger.close()


def test_since_until_and_empty_directories(tmp_path: Path) -> None:
    """since/until bound the report; an export refuses a non-empty directory; a report needs a dataset."""
    ledger = _ledger(tmp_path)
    export_parquet(ledger.events(), tmp_path / "export")
    newest = max(event.time for event in ledger.events())
    since = newest - timedelta(hours=1)
    (ours,) = parquet_totals(tmp_path / "export", since=since)
    (theirs,) = ledger.totals(since=since)
    assert ours == theirs
    with pytest.raises(ConfigurationError, match="empty or new directory"):
        export_parquet(ledger.events(), tmp_path / "export")
    with pytest.raises(ConfigurationError, match="Parquet export"):
        parquet_totals(tmp_path / "nothing")
    with pytest.raises(ConfigurationError, match="by"):
        parquet_totals(tmp_path / "export", by=("user'; DROP TABLE x; --",))
    ledger.close()


def test_the_command_line_exports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Meterline export --format parquet, then report --engine duckdb --format json: the ledger's figures."""
    ledger = _ledger(tmp_path)
    url = f"sqlite:///{tmp_path / 'spread.db'}"
    status, _, err = run(
        capsys, "export", "--ledger", url, "--format", "parquet", "--out", str(tmp_path / "pq")
    )
    assert status == 0
    assert "605 events" in err
    status, out, _ = run(
        capsys,
        "report",
        "--engine",
        "duckdb",
        "--parquet",
        str(tmp_path / "pq"),
        "--by",
        "user",
        "--format",
        "json",
    )
    assert status == 0
    ours = {row["user"]: Decimal(row["cost"]) for row in json.loads(out)}
    status, out, _ = run(capsys, "report", "--ledger", url, "--by", "user", "--format", "json")
    assert ours == {row["user"]: Decimal(row["cost"]) for row in json.loads(out)}
    assert run(capsys, "report", "--engine", "duckdb", "--by", "user")[0] == 2
    filtered: tuple[str, ...] = ("--by", "model", "--where", "user=u1", "--where", "user=u2", "--limit", "1")
    filtered += ("--format", "csv")
    duck = run(capsys, "report", "--engine", "duckdb", "--parquet", str(tmp_path / "pq"), *filtered)
    assert duck[:2] == run(capsys, "report", "--ledger", url, *filtered)[:2]
    assert duck[0] == 0
    assert len(duck[1].splitlines()) == 2  # the header and the first row
    ledger.close()


def test_export_refuses_a_bad_batch_size(tmp_path: Path) -> None:
    """rows_per_file must be a positive int; nothing is written."""
    with pytest.raises(ConfigurationError, match="rows_per_file"):
        export_parquet([], tmp_path / "x", rows_per_file=0)
    assert not (tmp_path / "x").exists()


def test_the_ledgers_raw_rows_export_the_same_dataset(tmp_path: Path) -> None:
    """SQLite's column-at-once export writes exactly what the event-by-event one writes."""
    ledger = _ledger(tmp_path)
    fast = export_ledger_parquet(ledger, tmp_path / "fast", rows_per_file=100)
    slow = export_parquet(ledger.events(), tmp_path / "slow", rows_per_file=100)
    assert (fast.events, fast.days) == (slow.events, slow.days) == (605, 3)
    tables = [pq.read_table(tmp_path / name).sort_by("id") for name in ("fast", "slow")]
    assert tables[0].equals(tables[1])
    since = max(event.time for event in ledger.events()) - timedelta(hours=1)
    bounded = export_ledger_parquet(ledger, tmp_path / "bounded", since=since)
    assert bounded.events == sum(1 for _ in ledger.events(since=since))
    ledger.close()
