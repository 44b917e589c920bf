"""Price overrides: TOML tables, validated rows, custom models."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterline import (
    Meter,
    Price,
    PriceOverride,
    PriceTable,
    PriceTableError,
    Usage,
)
from meterline._pricing import Pricer


def test_toml_overrides_price_custom_models(tmp_path: Path) -> None:
    """A TOML table prices a self-hosted model, exact and prefix rows, before genai-prices."""
    table = tmp_path / "prices.toml"
    table.write_text(
        """
[[model]]
provider = "ollama"
model = "llama3.3*"
input_mtok = "0.10"
output_mtok = "0.30"
cache_read_mtok = "0.01"
note = "our GPU cost"

[[model]]
provider = "openai"
model = "gpt-4o"
since = 2030-01-01
input_mtok = "1"
output_mtok = "1"
""",
        encoding="utf-8",
    )
    meter = Meter(prices=table)
    event = meter.record(
        Usage(input_tokens=10_000, cache_read_tokens=4000, output_tokens=1000),
        model="llama3.3:70b",
        provider="ollama",
    )
    assert event.cost == Decimal("0.00094")
    gpt = meter.record(Usage(input_tokens=1_000_000), model="gpt-4o", provider="openai")
    assert gpt.cost == Decimal("2.5")  # the 2030 row is not in force yet
    assert Pricer(PriceTable.from_toml(table)).rates("llama3.3:70b", "ollama").note == "our GPU cost"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[model]\n", "not valid TOML"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\n', "no price given"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = "-1"\n', "input_mtok='-1'"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = "abc"\n', "input_mtok='abc'"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = 1.5\n', "input_mtok=1.5"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput = "1"\n', "unknown key 'input'"),
        ('[[model]]\nmodel = "m"\ninput_mtok = "1"\n', "provider=None"),
        (
            '[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = "1"\nsince = "yesterday"\n',
            "since='yesterday'",
        ),
        ('[[model]]\nprovider = "Bad Name!"\nmodel = "m"\ninput_mtok = "1"\n', "Bad Name!"),
        ("rows = 1\n", "unknown top-level key 'rows'"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = "1e400"\n', "input_mtok='1e400'"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\ninput_mtok = "1e-30"\n', "rounds to nothing"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\nper_request = "1e-13"\n', "per_request='1e-13'"),
        ('[[model]]\nprovider = "x"\nmodel = "m"\noutput_mtok = "1000001"\n', "to 1,000,000 USD"),
    ],
)
def test_bad_price_tables_name_the_row_and_field(tmp_path: Path, text: str, message: str) -> None:
    """A bad TOML table raises PriceTableError naming what is wrong."""
    table = tmp_path / "bad.toml"
    table.write_text(text, encoding="utf-8")
    with pytest.raises(PriceTableError, match=r"bad\.toml") as info:
        PriceTable.from_toml(table)
    assert message in str(info.value)


def test_prices_at_the_bounds_are_kept_exactly(tmp_path: Path) -> None:
    """The smallest and largest prices a table accepts price a call exactly."""
    table = tmp_path / "bounds.toml"
    table.write_text(
        '[[model]]\nprovider = "x"\nmodel = "tiny"\ninput_mtok = "0.000001"\nper_request = "0.000000000001"\n'
        '[[model]]\nprovider = "x"\nmodel = "huge"\noutput_mtok = "1000000"\n',
        encoding="utf-8",
    )
    meter = Meter(prices=PriceTable.from_toml(table))
    tiny = meter.record(Usage(input_tokens=3), model="tiny", provider="x")
    huge = meter.record(Usage(output_tokens=3), model="huge", provider="x")
    assert (tiny.cost, huge.cost) == (Decimal("0.000000000004"), Decimal(3))


def test_a_price_table_that_is_not_utf8_is_a_price_table_error(tmp_path: Path) -> None:
    """A file in another encoding raises PriceTableError naming the byte, not UnicodeDecodeError."""
    table = tmp_path / "latin1.toml"
    table.write_bytes('[[model]]\nprovider = "x"\nmodel = "café"\ninput_mtok = "1"\n'.encode("latin-1"))
    with pytest.raises(PriceTableError, match=r"latin1\.toml.*not UTF-8 text \(byte 0xe9"):
        PriceTable.from_toml(table)


def test_missing_price_table_file(tmp_path: Path) -> None:
    """A missing file is a PriceTableError, not an OSError."""
    with pytest.raises(PriceTableError, match="cannot be read"):
        PriceTable.from_toml(tmp_path / "missing.toml")


def test_override_validation() -> None:
    """Overrides refuse an empty model, a '*' alone and an end before the start."""
    with pytest.raises(PriceTableError):
        PriceOverride(provider="openai", model="*", price=Price(input_mtok=Decimal("1")))
    with pytest.raises(PriceTableError, match="until"):
        PriceOverride(
            provider="openai",
            model="m",
            price=Price(input_mtok=Decimal("1")),
            since=datetime(2026, 1, 2, tzinfo=UTC),
            until=datetime(2026, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(PriceTableError):
        Price(input_mtok=True)  # type: ignore[arg-type]
