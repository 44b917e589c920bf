"""Specification of `meterline.ledger._query_text`: a report's query read from text (CLI and API alike)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.exceptions import ConfigurationError
from meterline.ledger import parse_by, parse_when, parse_where

NOW = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        (" 12h ", NOW - timedelta(hours=12)),
        ("30m", NOW - timedelta(minutes=30)),
        ("45s", NOW - timedelta(seconds=45)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T05:00:00Z", datetime(2026, 11, 1, 5, tzinfo=UTC)),
        ("2026-11-01T05:00:00+02:00", datetime(2026, 11, 1, 3, tzinfo=UTC)),
    ],
)
def test_ages_and_dates_are_read_in_utc(text: str, expected: datetime) -> None:
    """An age counts back from now; a date or date-time without a zone is UTC."""
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7 days", "9999999d", "999999w", "x" * 2000, "2026-13-01"])
def test_a_time_that_cannot_be_read_is_refused_by_name(text: str) -> None:
    """Unreadable, huge or overlong times raise ConfigurationError naming what was given."""
    with pytest.raises(ConfigurationError, match="time") as refused:
        parse_when(text, now=NOW)
    assert repr(text[:40]).rstrip("'") in str(refused.value)


def test_dimension_lists_are_checked_identifiers() -> None:
    """`model,agent` gives both names; a name that is no identifier never reaches SQL."""
    assert parse_by("model, agent") == ("model", "agent")
    for text in ("", " , ", "user;drop table x", "User", "a-b", '"x"'):
        with pytest.raises(ConfigurationError):
            parse_by(text)


def test_filters_keep_values_as_written_and_repeat_into_any_of() -> None:
    """NAME=VALUE keeps the value verbatim (even '=' or empty); NAME alone means without it."""
    assert parse_where(["org=acme"]) == {"org": "acme"}
    assert parse_where(["user=a", "user=b=c", "tool"]) == {"user": ("a", "b=c"), "tool": None}
    assert parse_where(["user="]) == {"user": ""}
    assert parse_where([]) == {}
    with pytest.raises(ConfigurationError, match="where"):
        parse_where(["1bad=x"])


@given(st.text(max_size=300))
def test_any_text_either_parses_or_raises_configuration_error(text: str) -> None:
    """Hostile text never raises anything but ConfigurationError."""
    for parse in (lambda: parse_when(text, now=NOW), lambda: parse_by(text), lambda: parse_where([text])):
        with contextlib.suppress(ConfigurationError):
            parse()
