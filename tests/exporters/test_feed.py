"""`meterline export --format cloudevents|stripe` from a ledger: delivered in batches, resumable by cursor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterline import ConfigurationError, Meter, Usage, UsageEvent, open_ledger
from meterline._cli import main
from meterline.exporters._feed import Cursor

from .conftest import Endpoint


def fill(url: str, count: int, customer: str | None = "cus_1") -> list[UsageEvent]:
    """Record ``count`` events into the ledger at ``url`` and return them."""
    meter = Meter(ledger=url, durability="sync")
    events = []
    for index in range(count):
        with meter.scope(**({"customer": customer} if customer else {})):
            events.append(
                meter.record(
                    Usage(input_tokens=10 + index, output_tokens=1), model="gpt-4o", provider="openai"
                )
            )
    meter.close()
    return events


@pytest.fixture
def url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite ledger."""
    return f"sqlite:///{tmp_path / 'usage.db'}"


def export(url: str, *args: str) -> int:
    """Run ``meterline export --ledger URL ARGS``; return the exit status."""
    return main(["export", "--ledger", url, *args])


def test_delivery_resumes_from_the_cursor_without_resending(
    endpoint: Endpoint, url: str, tmp_path: Path
) -> None:
    """A second run sends only the events recorded since the first; none twice."""
    cursor = tmp_path / "feed.cursor"
    first = fill(url, 7)
    args = ["--format", "cloudevents", "--subject", "customer", "--to", endpoint.url, "--cursor", str(cursor)]
    assert export(url, *args, "--batch", "3") == 0
    assert [document["id"] for document in endpoint.documents()] == [event.id for event in first]
    assert [len(batch) for batch in endpoint.batches] == [3, 3, 1]
    assert export(url, *args) == 0
    assert len(endpoint.documents()) == 7
    second = fill(url, 2)
    assert export(url, *args) == 0
    assert [document["id"] for document in endpoint.documents()] == [event.id for event in first + second]
    saved = json.loads(cursor.read_text())
    assert (saved["last_id"], saved["delivered"], saved["format"]) == (second[-1].id, 9, "cloudevents")
    assert cursor.stat().st_mode & 0o777 == 0o600


def test_a_failed_delivery_leaves_the_cursor_at_the_last_acknowledged_batch(
    endpoint: Endpoint, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the endpoint fails mid-export, a rerun sends exactly what was not acknowledged."""
    events = fill(url, 10)
    cursor = tmp_path / "feed.cursor"
    args = ["--format", "cloudevents", "--to", endpoint.url, "--cursor", str(cursor), "--batch", "3"]
    endpoint.successes_left = 2
    assert export(url, *args, "--retries", "0") == 2
    assert "run the export again" in capsys.readouterr().err
    assert json.loads(cursor.read_text())["last_id"] == events[5].id
    endpoint.successes_left = None
    assert export(url, *args) == 0
    ids = [document["id"] for document in endpoint.documents()]
    assert ids == [event.id for event in events]


def test_a_refusing_endpoint_stops_the_export_without_moving_the_cursor(
    endpoint: Endpoint, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 4xx is not retried: the export exits 2 naming the answer, and nothing is marked delivered."""
    fill(url, 2)
    cursor = tmp_path / "feed.cursor"
    endpoint.status = 422
    assert export(url, "--format", "cloudevents", "--to", endpoint.url, "--cursor", str(cursor)) == 2
    assert "422" in capsys.readouterr().err
    assert endpoint.attempts == 1
    assert not cursor.exists()


def test_late_events_within_the_window_are_still_sent(endpoint: Endpoint, url: str, tmp_path: Path) -> None:
    """An event stored after newer ones were delivered (a replayed spool) is sent by the next run."""
    early_meter = Meter()
    with early_meter.scope(customer="cus_1"):
        late = early_meter.record(Usage(input_tokens=5, output_tokens=1), model="gpt-4o", provider="openai")
    on_time = fill(url, 3)
    cursor = tmp_path / "feed.cursor"
    args = ["--format", "cloudevents", "--to", endpoint.url, "--cursor", str(cursor)]
    assert export(url, *args) == 0
    ledger = open_ledger(url)
    try:
        assert ledger.write([late]) == 1
    finally:
        ledger.close()
    assert late.id < on_time[0].id
    assert export(url, *args) == 0
    assert [document["id"] for document in endpoint.documents()] == [event.id for event in on_time] + [
        late.id
    ]


def test_stripe_export_to_stdout_skips_events_without_a_customer(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stripe meter events are written one a line; an event without the customer is reported, not sent."""
    billed = fill(url, 2)
    fill(url, 1, customer=None)
    args = ["--format", "stripe", "--customer", "customer", "--stripe-meter", "llm_cost=cost:0.000001"]
    assert export(url, *args, "--stripe-meter", "llm_out=output_tokens") == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["identifier"] for line in lines] == [
        f"{event.id}:{name}" for event in billed for name in ("llm_cost", "llm_out")
    ]
    assert lines[1]["payload"] == {"stripe_customer_id": "cus_1", "value": "1"}
    assert "skipped" in err
    assert "no 'customer' dimension" in err


def test_stripe_export_needs_a_customer_dimension(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--format stripe without --customer is a usage error that says what to add."""
    fill(url, 1)
    assert export(url, "--format", "stripe") == 2
    assert "--customer DIMENSION" in capsys.readouterr().err


def test_cursor_and_to_need_a_billing_format(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--to with --format jsonl is refused."""
    fill(url, 1)
    assert export(url, "--format", "jsonl", "--to", "http://127.0.0.1:9/x") == 2
    assert "--format cloudevents or stripe" in capsys.readouterr().err


def test_a_cursor_of_another_format_or_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    """A cursor file resumes only the format it was made for, and must be a cursor."""
    path = tmp_path / "c"
    Cursor(format="stripe").advance(["0" * 32]).save(path)
    with pytest.raises(ConfigurationError, match="--format 'stripe'"):
        Cursor.load(path, format="cloudevents")
    path.write_text(
        '{"version": 1, "last_id": "../../etc", "recent": [], "delivered": 0, "format": "stripe"}'
    )
    with pytest.raises(ConfigurationError, match="expected a meterline export cursor"):
        Cursor.load(path, format="stripe")


def test_the_cursor_forgets_ids_older_than_its_window() -> None:
    """Only ids within the lateness window of the newest one are kept."""
    old = f"{1_000_000:012x}" + "0" * 20
    new = f"{1_000_000 + 700_000:012x}" + "0" * 20
    cursor = Cursor(format="cloudevents", lateness_s=600).advance([old]).advance([new])
    assert cursor.recent == frozenset({new})
    assert cursor.last_id == new
    assert cursor.start_after() == f"{1_000_000 + 100_000:012x}"
