"""A report's groups become frozen LedgerRows, equal to rows built field by field, sorted by cost."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from meterline import Usage
from meterline.ledger import LedgerRow
from meterline.ledger._groups import (
    EVENTS,
    SUM_LATENCY,
    SUM_PICO,
    SUM_SAVED,
    SUM_USAGE,
    WIDTH,
    Groups,
    to_rows,
)


def _sums(events: int, pico: int, input_tokens: int) -> list[Any]:
    sums: list[Any] = [0] * WIDTH
    sums[EVENTS] = events
    sums[SUM_PICO] = pico
    sums[SUM_USAGE[0]] = input_tokens
    sums[SUM_LATENCY] = 2.5
    sums[SUM_SAVED] = 7
    return sums


def test_groups_become_frozen_rows_equal_to_rows_built_by_hand() -> None:
    """Each row is a real, frozen LedgerRow with the group's sums; highest cost first, ties by key."""
    groups: Groups = {
        (("u1",), None): _sums(3, 2_500_000_000, 100),
        ((None,), None): _sums(1, 2_500_000_000, 5),
        (("u2",), None): _sums(9, 10**13, 40),
        (("u0",), None): _sums(1, 2_500_000_000, 5),
    }
    rows = to_rows(groups, None)
    assert [type(row) for row in rows] == [LedgerRow] * 4
    assert rows[0] == LedgerRow(
        key=("u2",),
        period=None,
        events=9,
        usage=Usage(input_tokens=40),
        cost=Decimal(10),
        latency_ms=2.5,
        tokens_saved=7,
    )
    # Equal costs: more events first; equal costs and events: None first, then by value.
    assert [row.key for row in rows] == [("u2",), ("u1",), (None,), ("u0",)]
    assert str(rows[1].cost) == "0.0025"
    assert hash(rows[1]) == hash(dataclasses.replace(rows[1]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].events = 1  # type: ignore[misc]
    assert groups == {}  # emptied as the rows are made
