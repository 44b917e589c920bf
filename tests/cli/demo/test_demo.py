"""Specification of `meterline._cli._demo`: the ``meterline demo`` command."""

from __future__ import annotations as _annotations

import json

import pytest

from tests.cli.console import run


def test_demo_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline demo` exits 0 and prints the header, every table and the notes."""
    status, out, err = run(capsys, "demo")
    assert status == 0
    assert err == ""
    for section in (
        "meterline demo (seed 7)",
        "total cost",
        "unmeasured",
        "unpriced",
        "price data",
        "Cost by org",
        "Cost by user",
        "sessions by cost",
        "Cost by agent",
        "Cost by model",
        "Tools",
        "Caches",
        "Notes",
    ):
        assert section in out


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline demo --seed 3 --format json` prints the demo's tables as one JSON document."""
    status, out, _ = run(capsys, "demo", "--seed", "3", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["seed"] == 3
    assert data["totals"]["unmeasured"] >= 1
    assert {"by_user", "by_session", "by_agent", "by_model", "by_tool", "cache"} <= set(data)
