"""Specification of `meterline._cli._demo._result`: the JSON form of a demo run."""

from __future__ import annotations as _annotations

import json
from decimal import Decimal

from meterline._cli._demo._result import DemoResult


def test_to_dict_is_json(demo: DemoResult) -> None:
    """`to_dict()` is JSON-serialisable and keeps money as exact decimal strings."""
    data = json.loads(json.dumps(demo.to_dict()))
    assert Decimal(data["totals"]["cost"]) == demo.totals.cost
    assert [row["user"] for row in data["by_user"]] == [row.labels["user"] for row in demo.by_user]
