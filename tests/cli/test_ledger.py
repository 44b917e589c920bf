"""Specification of `meterline._cli._ledger`: the pieces of its commands that need no store.

Ledger URLs and the export shapes (times: `tests/ledger/test_query_text.py`).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from meterline import ConfigurationError, Meter, Usage, open_ledger
from meterline._cli._ledger import export_lines
from meterline.exporters import CLOUDEVENT_TYPE, cloudevent


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://usage.db", "three slashes"),
        ("sqlite:///:memory:", "must be a file"),
        ("mysql://localhost/db", "unknown scheme 'mysql'"),
        ("", "expected a URL"),
    ],
)
def test_bad_ledger_urls_are_refused(url: str, message: str) -> None:
    """An unusable ledger URL raises ConfigurationError saying what is expected."""
    with pytest.raises(ConfigurationError, match=message):
        open_ledger(url)


def test_no_url_and_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a URL and without $METERLINE_LEDGER, open_ledger says how to name one."""
    monkeypatch.delenv("METERLINE_LEDGER", raising=False)
    with pytest.raises(ConfigurationError, match="METERLINE_LEDGER"):
        open_ledger()


def test_durability_is_validated() -> None:
    """A durability other than batch or sync is refused."""
    with pytest.raises(ConfigurationError, match="durability='fast'"):
        Meter(durability="fast")


def _events() -> list:  # type: ignore[type-arg]
    meter = Meter()
    with meter.scope(customer="cust_123", session="s1"):
        priced = meter.record(
            Usage(input_tokens=1200, cache_read_tokens=1000, output_tokens=300),
            model="gpt-4o-2024-08-06",
            provider="openai",
            request_model="gpt-4o",
            latency_ms=812.5,
        )
        unmeasured = meter.record(None, model="gpt-4o", provider="openai")
    return [priced, unmeasured]


def test_cloudevents_follow_the_structured_json_format() -> None:
    """An exported CloudEvent has the event id, a source, a versioned type, the subject and decimal money."""
    priced, unmeasured = _events()
    document = cloudevent(priced, source="//meterline/test", subject_dimension="customer")
    assert document["specversion"] == "1.0"
    assert document["id"] == priced.id
    assert document["source"] == "//meterline/test"
    assert document["type"] == CLOUDEVENT_TYPE
    assert document["subject"] == "cust_123"
    assert document["datacontenttype"] == "application/json"
    assert document["time"].endswith("Z")
    data = document["data"]
    assert (data["input_tokens"], data["output_tokens"], data["cache_read_input_tokens"]) == (1200, 300, 1000)
    assert data["cost"] == {"amount": "0.00475", "currency": "USD", "source": "local"}
    assert Decimal(data["cost"]["amount"]) == priced.cost
    assert (data["request_model"], data["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    empty = cloudevent(unmeasured, source="//meterline/test", subject_dimension="missing")
    assert "subject" not in empty
    assert empty["data"]["input_tokens"] is None
    assert empty["data"]["cost"] is None


def test_exports_stream_jsonl_csv_and_cloudevents() -> None:
    """Each export format yields one line per event (CSV after a header) that parses back."""
    events = _events()
    jsonl = list(export_lines(iter(events), "jsonl", source="s", subject=None))
    assert [json.loads(line)["id"] for line in jsonl] == [event.id for event in events]
    rows = list(
        csv.DictReader(io.StringIO("".join(export_lines(iter(events), "csv", source="s", subject=None))))
    )
    assert [row["id"] for row in rows] == [event.id for event in events]
    assert rows[0]["cost"] == "0.00475"
    assert rows[1]["measured"] == "0"
    assert rows[1]["input_tokens"] == ""
    lines = list(export_lines(iter(events), "cloudevents", source="s", subject="customer"))
    assert {json.loads(line)["subject"] for line in lines} == {"cust_123"}


def test_a_report_shows_tool_calls_only_when_some_were_made() -> None:
    """The ``tool calls`` column appears when a row counts server-side tool calls, with its total."""
    from meterline import Usage
    from meterline._cli._ledger import render_report
    from meterline.ledger import LedgerRow

    plain = LedgerRow(key=("u1",), period=None, events=1, usage=Usage(input_tokens=5), cost=Decimal("0.01"))
    assert "tool calls" not in render_report([plain], ("user",), None)
    searched = LedgerRow(
        key=("u2",),
        period=None,
        events=2,
        usage=Usage(input_tokens=5, web_search_requests=3, file_search_requests=1),
        cost=Decimal("0.05"),
    )
    table = render_report([searched, plain], ("user",), None)
    header, *lines = table.splitlines()
    assert "tool calls" in header
    assert lines[-1].split()[-2:] == ["4", "$0.060000"]  # the total line: 4 tool calls, then the cost
