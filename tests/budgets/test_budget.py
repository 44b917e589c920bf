"""The `Budget` value: validated limits, policies and windows, from code or TOML."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import (
    Budget,
    ConfigurationError,
    Meter,
)
from meterline.budgets import load_budgets


def test_budget_is_a_frozen_value_with_a_derived_name() -> None:
    """A budget is immutable, compares by value and names itself from its fields."""
    budget = Budget(per=("user",), max_cost="5.00", window="day")
    assert budget.name == "user:cost=5.00/day"
    assert budget.max_cost == Decimal("5.00")
    assert budget == Budget(per=("user",), max_cost=Decimal("5.00"), window="day")
    with pytest.raises(AttributeError):
        budget.max_cost = Decimal(1)  # type: ignore[misc]
    assert Budget(max_tokens=10).name == "global:tokens=10"
    assert Budget(per="thread", max_tokens=1).per == ("thread",)  # type: ignore[arg-type]
    rolling = Budget(per=("user",), max_requests=3, window="90m")
    assert rolling.window == timedelta(minutes=90)
    assert rolling.name == "user:requests=3/rolling 1:30:00"
    assert Budget(max_tokens=1, window="day", timezone="Europe/Paris").name.endswith("/day@Europe/Paris")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({}, "at least one limit"),
        ({"max_tokens": -1}, "max_tokens=-1"),
        ({"max_tokens": True}, "max_tokens=True"),
        ({"max_tokens": 1.5}, "max_tokens=1.5"),
        ({"max_tokens": 2**63}, "max_tokens=9223372036854775808"),
        ({"max_cost": 5.0}, "max_cost=5.0"),
        ({"max_cost": "NaN"}, "max_cost='NaN'"),
        ({"max_cost": "-1"}, "max_cost='-1'"),
        ({"max_cost": "lots"}, "max_cost='lots'"),
        ({"max_cost": True}, "max_cost=True"),
        ({"max_tokens": 1, "per": ("User",)}, "'User'"),
        ({"max_tokens": 1, "per": ()}, "per=()"),
        ({"max_tokens": 1, "per": ("user", "user")}, "named twice"),
        ({"max_tokens": 1, "window": "fortnight"}, "window='fortnight'"),
        ({"max_tokens": 1, "window": timedelta(0)}, "window="),
        ({"max_tokens": 1, "timezone": "Mars/Olympus"}, "timezone='Mars/Olympus'"),
        ({"max_tokens": 1, "timezone": 3}, "timezone=3"),
        ({"max_tokens": 1, "alert_at": (0.5, 1.5)}, "alert_at="),
        ({"max_tokens": 1, "alert_at": (math.nan,)}, "alert_at="),
        ({"max_tokens": 1, "on_unpriced": "ignore"}, "on_unpriced='ignore'"),
        ({"max_tokens": 1, "on_store_error": "estimate"}, "on_store_error='estimate'"),
        ({"max_cost": "1", "on_unpriced": "estimate"}, "estimate_price"),
        ({"max_tokens": 1, "name": "  "}, "name='  '"),
        ({"max_tokens": 1, "name": "a\nb"}, "name="),
        ({"max_tokens": 1, "on_alert": "print"}, "on_alert='print'"),
    ],
)
def test_bad_budgets_are_refused_naming_the_value(kwargs: dict[str, object], named: str) -> None:
    """Every invalid field raises ConfigurationError naming the offending value."""
    with pytest.raises(ConfigurationError, match=None) as caught:
        Budget(**kwargs)  # type: ignore[arg-type]
    assert named in str(caught.value)


@given(
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
        st.floats(allow_nan=True),
        st.booleans(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
    )
)
@settings(max_examples=80, deadline=None)
def test_hostile_limits_are_refused(value: object) -> None:
    """Hostile limit values never build a budget."""
    with pytest.raises(ConfigurationError):
        Budget(max_tokens=value)  # type: ignore[arg-type]


def test_to_dict_and_from_dict_round_trip() -> None:
    """A budget survives to_dict/from_dict, rolling windows and estimate prices included."""
    budgets = [
        Budget(
            per=("user", "session"), max_cost="0.25", max_requests=9, window="week", timezone="Asia/Tokyo"
        ),
        Budget(max_tokens=5, window=timedelta(hours=2), alert_at=(0.9,), name="two hours"),
        Budget(
            max_cost="1", on_unpriced="estimate", estimate_price=("3", "15"), on_store_error="fail_closed"
        ),
    ]
    for budget in budgets:
        assert Budget.from_dict(budget.to_dict()) == budget


def test_from_dict_refuses_unknown_fields() -> None:
    """An unknown field in a budget table is named."""
    with pytest.raises(ConfigurationError, match="max_dollars"):
        Budget.from_dict({"max_dollars": "5"}, source="budgets.toml budget #1")


def test_load_budgets_from_toml(tmp_path: Path) -> None:
    """A TOML file of [[budget]] tables gives the budgets, and a meter can take its path."""
    path = tmp_path / "budgets.toml"
    path.write_text(
        """
[[budget]]
per = ["thread"]
max_tokens = 100_000

[[budget]]
name = "daily spend"
per = ["user"]
max_cost = "5.00"
window = "day"
timezone = "Europe/Paris"
alert_at = [0.8]
"""
    )
    budgets = load_budgets(path)
    assert budgets == [
        Budget(per=("thread",), max_tokens=100_000),
        Budget(
            name="daily spend",
            per=("user",),
            max_cost="5.00",
            window="day",
            timezone="Europe/Paris",
            alert_at=(0.8,),
        ),
    ]
    assert Meter(budgets=path).budgets == tuple(budgets)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[[budget]]\nmax_tokens = -5\n", "budget #1"),
        ("[limits]\nx = 1\n", "limits"),
        ("[[budget]\n", "budgets file"),
    ],
)
def test_bad_budget_files_are_refused(tmp_path: Path, text: str, named: str) -> None:
    """A bad budgets file raises ConfigurationError naming the file and the problem."""
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=named):
        load_budgets(path)


def test_missing_budget_file() -> None:
    """A budgets file that does not exist is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"nowhere\.toml"):
        load_budgets("nowhere.toml")
