"""Specification of `meterline._cli._demo._report`: the report ``meterline demo`` prints."""

from __future__ import annotations as _annotations

from meterline._cli._demo._report import TOP_SESSIONS
from meterline._cli._demo._result import DemoResult


def test_report_sections(demo: DemoResult) -> None:
    """The report has the header facts, the top sessions, the tables and the notes on what cost leaves out."""
    text = demo.text
    lines = text.splitlines()
    assert lines[0].startswith("meterline demo (seed 7)")
    assert f"price data    {demo.price_version}" in text
    assert f"Top {min(TOP_SESSIONS, len(demo.by_session))} of {len(demo.by_session)} sessions by cost" in text
    assert "never as free" in text
    assert "not a cost of $0" in text
    # The unpriced model's cost is shown as unknown, never as $0.
    ollama_line = next(line for line in lines if line.strip().startswith("ollama ") and "unpriced" in line)
    assert "$" not in ollama_line
