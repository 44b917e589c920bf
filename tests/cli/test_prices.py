"""Specification of `meterline._cli._prices`: ``meterline prices``."""

from __future__ import annotations as _annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.console import row, run


def test_prices_shows_input_and_output_per_million(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline prices gpt-4o` shows $2.50 per 1M input tokens and $10.00 per 1M output tokens."""
    status, out, err = run(capsys, "prices", "gpt-4o")
    assert status == 0
    assert err == ""
    assert "$2.50" in row(out, "input")
    assert "$10.00" in row(out, "output")
    assert "$1.25" in row(out, "cache read")
    for label in ("cache write (5 min)", "cache write (1 h)", "reasoning", "audio input", "audio output"):
        row(out, label)


def test_prices_names_source_and_price_data_version(capsys: pytest.CaptureFixture[str]) -> None:
    """The output says the price came from genai-prices (and which model id matched) and the data version."""
    _, out, _ = run(capsys, "prices", "gpt-4o-2024-08-06", "--provider", "openai")
    assert "genai-prices, model 'gpt-4o'" in out
    assert "genai-prices==" in out
    assert "per request    none" in out


@pytest.mark.parametrize("model", ["claude-sonnet-4-5-20250929", "gemini-2.5-pro"])
def test_prices_shows_each_context_length_tier(capsys: pytest.CaptureFixture[str], model: str) -> None:
    """A model priced by context length shows a column for each tier, named by its input-token threshold."""
    status, out, _ = run(capsys, "prices", model)
    assert status == 0
    assert "up to 200,000 input tokens" in out
    assert "above 200,000 input tokens" in out
    # Two prices on the input row: the base tier and the long-context tier.
    assert row(out, "input").count("$") == 2


def test_prices_tiers_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    """In JSON, a tiered model has one entry per tier with its threshold and decimal-string prices."""
    _, out, _ = run(
        capsys, "prices", "claude-sonnet-4-5-20250929", "--provider", "anthropic", "--format", "json"
    )
    data = json.loads(out)
    assert [tier["above_input_tokens"] for tier in data["tiers"]] == [0, 200_000]
    assert Decimal(data["tiers"][0]["prices"]["input"]) == Decimal(3)
    assert Decimal(data["tiers"][1]["prices"]["input"]) == Decimal(6)


def test_prices_shows_override_and_its_note(capsys: pytest.CaptureFixture[str]) -> None:
    """`deepseek-chat` shows meterline's correction ($0.28 input) and the note explaining it."""
    status, out, _ = run(capsys, "prices", "deepseek-chat")
    assert status == 0
    assert "$0.28" in row(out, "input")
    assert "$0.028" in row(out, "cache read")
    assert "$0.42" in row(out, "output")
    assert "override 'deepseek-chat'" in out
    assert "DeepSeek V3.2 price list" in out


def test_prices_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    """`--format json` prints one JSON document with the rates, source and price version."""
    status, out, _ = run(capsys, "prices", "gpt-4o", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["model"] == "gpt-4o"
    assert data["unit"] == "USD per 1M tokens"
    assert data["source"] == "genai-prices"
    assert data["price_version"].startswith("genai-prices==")
    assert Decimal(data["tiers"][0]["prices"]["input"]) == Decimal("2.5")
    assert Decimal(data["tiers"][0]["prices"]["output"]) == Decimal(10)
    assert set(data["tiers"][0]["prices"]) == {
        "input",
        "cache_read",
        "cache_write",
        "cache_write_1h",
        "output",
        "reasoning",
        "audio_input",
        "audio_output",
    }


def test_prices_at_a_given_instant(capsys: pytest.CaptureFixture[str]) -> None:
    """`--at` prices the model at that instant (UTC when no offset is given) and says so."""
    status, out, _ = run(
        capsys, "prices", "deepseek-chat", "--provider", "deepseek", "--at", "2026-01-01T00:00Z"
    )
    assert status == 0
    assert "2026-01-01T00:00Z" in out
    assert "(now)" not in out
    assert "$0.28" in row(out, "input")


def test_prices_bad_at_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An `--at` that is not an ISO 8601 date exits 2 with argparse's message."""
    status, out, err = run(capsys, "prices", "gpt-4o", "--at", "yesterday")
    assert status == 2
    assert out == ""
    assert "yesterday" in err
    assert "ISO 8601" in err


def test_prices_unknown_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown model exits 2, naming the model on stderr with a price-table snippet that would price it."""
    status, out, err = run(capsys, "prices", "my-finetune-v3")
    assert status == 2
    assert out == ""
    assert "'my-finetune-v3'" in err
    assert "[[model]]" in err
    assert 'model = "my-finetune-v3"' in err
    assert "--prices" in err
    assert "Traceback" not in err


def test_prices_bad_provider_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A provider name that is not valid exits 2 with the library's message, not a traceback."""
    status, out, err = run(capsys, "prices", "gpt-4o", "--provider", "not a provider!")
    assert status == 2
    assert out == ""
    assert err.startswith("meterline: error: invalid provider name 'not a provider!'")


def test_prices_custom_model_from_price_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`--prices FILE.toml` prices a self-hosted model, with or without `--provider`, and shows the note."""
    table = tmp_path / "prices.toml"
    table.write_text(
        '[[model]]\nprovider = "ollama"\nmodel = "llama3.3*"\ninput_mtok = "0.10"\noutput_mtok = "0.30"\n'
        'note = "our GPU cost"\n',
        encoding="utf-8",
    )
    for extra in ([], ["--provider", "ollama"]):
        status, out, err = run(capsys, "prices", "llama3.3:70b", "--prices", str(table), *extra)
        assert status == 0, err
        assert "$0.10" in row(out, "input")
        assert "$0.30" in row(out, "output")
        assert "override 'llama3.3*': our GPU cost" in out
        assert "overrides=" in out


def test_prices_bad_toml_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A price table that is not valid TOML exits 2, naming the file."""
    table = tmp_path / "broken.toml"
    table.write_text('[[model]\nprovider = "ollama"\n', encoding="utf-8")
    status, out, err = run(capsys, "prices", "gpt-4o", "--prices", str(table))
    assert status == 2
    assert out == ""
    assert "broken.toml" in err
    assert "not valid TOML" in err
    assert "Traceback" not in err


def test_prices_invalid_table_row_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A TOML table whose row has a bad price, or a file that does not exist, exits 2 with a clear message."""
    table = tmp_path / "bad.toml"
    table.write_text('[[model]]\nprovider = "ollama"\nmodel = "x"\ninput_mtok = "cheap"\n', encoding="utf-8")
    status, _, err = run(capsys, "prices", "x", "--prices", str(table))
    assert status == 2
    assert "input_mtok='cheap'" in err
    status, _, err = run(capsys, "prices", "x", "--prices", str(tmp_path / "missing.toml"))
    assert status == 2
    assert "cannot be read" in err


def test_prices_show_the_price_of_each_server_tool_call(capsys: pytest.CaptureFixture[str]) -> None:
    """Web search, file search and code interpreter prices per call, in the table and the JSON."""
    _, out, _ = run(capsys, "prices", "gpt-5", "--provider", "openai")
    assert "web search $0.010000" in row(out, "per tool call")
    assert "code execution $0.030000" in row(out, "per tool call")
    _, out, _ = run(capsys, "prices", "gpt-5", "--provider", "openai", "--format", "json")
    assert json.loads(out)["per_call"] == {
        "web_search": "0.01",
        "file_search": "0.0025",
        "code_execution": "0.03",
    }
