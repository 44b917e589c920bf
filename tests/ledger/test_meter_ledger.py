"""A meter with a ledger: every event reaches it exactly once, and reports read it back."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

import meterline
from meterline import Meter, Usage
from meterline._cli import main


def _record_a_day(meter: Meter) -> list[meterline.UsageEvent]:
    events: list[meterline.UsageEvent] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", meterline.UnpricedModelWarning)
        for user in ("u1", "u2"):
            with meter.scope(user=user, session=f"{user}-s1"):
                events.extend(
                    meter.record(
                        Usage(input_tokens=100 + index, cache_read_tokens=index, output_tokens=20),
                        model=("gpt-4o", "claude-sonnet-4-5-20250929")[index % 2],
                        provider=("openai", "anthropic")[index % 2],
                        latency_ms=12.5,
                    )
                    for index in range(50)
                )
                events.append(meter.record(None, model="gpt-4o", provider="openai"))
                events.append(meter.record(Usage(input_tokens=5), model="llama3", provider="ollama"))
                events.append(meter.record_tool("search", category="retrieval", duration_ms=3.0))
                events.append(meter.record_cache_hit(tokens_saved=40))
    return events


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_every_event_reaches_the_ledger_once(tmp_path: Path, durability: str) -> None:
    """Recorded events are in the ledger after flush(), equal to what record() returned."""
    meter = Meter(f"sqlite:///{tmp_path / 'usage.db'}", durability=durability)
    events = _record_a_day(meter)
    assert meter.flush(timeout=30)
    ledger = meter.ledger
    assert ledger is not None
    stored = {event.id: event for event in ledger.events()}
    assert stored == {event.id: event for event in events}
    meter.close()
    meter.close()


def test_ledger_totals_match_the_live_totals(tmp_path: Path) -> None:
    """The ledger's roll-ups add up to exactly the meter's live totals."""
    meter = Meter(tmp_path / "usage.db")
    _record_a_day(meter)
    meter.flush(timeout=30)
    ledger = meter.ledger
    assert ledger is not None
    live = meter.totals(by=("user",))
    for row in ledger.totals(by=("user",)):
        totals = live[row.key]
        assert row.events == totals.events
        assert row.cost == totals.cost
        assert row.unmeasured == totals.unmeasured
        assert row.unpriced == totals.unpriced
        assert row.usage.input_tokens == totals.usage.input_tokens + sum(
            tool.input_tokens for tool in totals.tools.values()
        )
    meter.close()


def test_the_environment_names_the_default_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Meter() writes to $METERLINE_LEDGER when it is set."""
    monkeypatch.setenv("METERLINE_LEDGER", f"sqlite:///{tmp_path / 'env.db'}")
    meter = Meter()
    meter.record(Usage(input_tokens=1), model="gpt-4o", provider="openai")
    meter.close()
    ledger = meterline.open_ledger()
    assert ledger.stats().events == 1
    ledger.close()


def test_report_and_export_commands_read_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`meterline report` sorts by cost with a total line; `export` streams every event once."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    meter = Meter(url)
    events = _record_a_day(meter)
    meter.close()
    assert main(["report", "--ledger", url, "--by", "model,user"]) == 0
    table = capsys.readouterr().out
    assert "total" in table
    assert table.index("claude-sonnet-4-5-20250929") < table.index("gpt-4o ")
    assert main(["report", "--ledger", url, "--by", "user", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(Decimal(row["cost"]) for row in rows) == sum((e.cost for e in events if e.cost), Decimal(0))
    assert main(["export", "--ledger", url, "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(event.id for event in events)
    middle = sorted(event.id for event in events)[10]
    assert main(["export", "--ledger", url, "--after", middle]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(events) - 11
    assert main(["ledger", "stats", "--ledger", url]) == 0
    assert f"{len(events)}" in capsys.readouterr().out


def test_reprice_keeps_costs_when_prices_did_not_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-pricing with the same price data changes nothing; with an override it changes the model's events."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    meter = Meter(url)
    _record_a_day(meter)
    meter.close()
    assert main(["reprice", "--ledger", url]) == 0
    assert capsys.readouterr().out.startswith("repriced 0 events")
    table = tmp_path / "prices.toml"
    table.write_text('[[model]]\nprovider = "ollama"\nmodel = "llama3"\ninput_mtok = "1"\n', encoding="utf-8")
    assert main(["reprice", "--ledger", url, "--prices", str(table)]) == 0
    assert capsys.readouterr().out.startswith("repriced 2 events")


def test_report_where_filters_like_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`report --where NAME=VALUE` gives the rows of totals(where=…); NAME alone keeps events without it."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    meter = Meter(url)
    _record_a_day(meter)
    meter.close()
    ledger = meterline.open_ledger(url)
    expected = [row.to_dict(("model",)) for row in ledger.totals(by=("model",), where={"user": "u1"})]
    without_tool = [row.to_dict(("user",)) for row in ledger.totals(by=("user",), where={"tool": None})]
    ledger.close()
    assert main(["report", "--ledger", url, "--by", "model", "--where", "user=u1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert main(["report", "--ledger", url, "--by", "user", "--where", "tool", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == without_tool
    assert sum(row["events"] for row in rows) == 2 * 53  # each user's 54 events but the tool call
