"""A damaged ledger never crashes the host: it is reported unusable, spooled around, and checked."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline import Meter, Usage
from meterline.exceptions import LedgerError
from meterline.ledger import check_ledger, open_ledger
from tests.cli.console import run

USAGE = Usage(input_tokens=10, output_tokens=5)


@pytest.fixture(scope="module")
def sound(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ledger file with 60 events over 5 users and 3 models."""
    path = tmp_path_factory.mktemp("sound") / "usage.db"
    meter = Meter(ledger=f"sqlite:///{path}")
    for i in range(60):
        with meter.scope(user=f"u{i % 5}"):
            meter.record(USAGE, model=("gpt-4o", "gpt-4o-mini", "o3")[i % 3], provider="openai")
    meter.close()
    return path


def _damaged(sound: Path, directory: Path, flips: list[tuple[int, int]]) -> Path:
    """A copy of ``sound`` with the byte at each position replaced."""
    path = directory / "damaged.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = bytearray(sound.read_bytes())
    for position, value in flips:
        data[position % len(data)] = value
    path.write_bytes(bytes(data))
    return path


def test_a_sound_ledger_checks_ok(sound: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sound ledger passes, every event read back; the command exits 0."""
    found = check_ledger(sound)
    assert found.ok
    assert found.events_read == 60
    assert found.stats is not None
    assert found.stats.events == 60
    status, out, _ = run(capsys, "ledger", "check", "--ledger", str(sound))
    assert status == 0
    assert "ok (60 events read back)" in out


def test_a_damaged_schema_is_reported(
    sound: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid UTF-8 in the schema: opening raises LedgerError, the check names it, the command exits 1."""
    data = sound.read_bytes()
    at = data.index(b"CREATE TABLE meterline_rollup_dim_month") + 13  # a live table (older ones were dropped)
    path = _damaged(sound, tmp_path, [(at + i, 0xFF) for i in range(4)])
    with pytest.raises(LedgerError):
        open_ledger(path)
    found = check_ledger(path)
    assert not found.ok
    assert any("cannot be opened" in problem for problem in found.problems)
    status, out, _ = run(capsys, "ledger", "check", "--ledger", str(path))
    assert status == 1
    assert "problem" in out


def test_a_meter_on_a_damaged_ledger_records_and_spools(sound: Path, tmp_path: Path) -> None:
    """Meter(ledger=damaged) does not raise: record() works, the events are spooled, none lost."""
    data = sound.read_bytes()
    at = data.index(b"CREATE TABLE meterline_rollup_dim_month") + 13  # a live table (older ones were dropped)
    path = _damaged(sound, tmp_path, [(at + i, 0xFF) for i in range(4)])
    meter = Meter(ledger=f"sqlite:///{path}")
    for _ in range(5):
        meter.record(USAGE, model="gpt-4o", provider="openai")
    assert meter.flush(timeout=5)  # kept: in the spool, to be replayed once the file is fixed
    stats = meter.stats().ledger
    meter.close()
    assert stats is not None
    assert stats.spooled >= 5
    assert stats.lost == 0


@pytest.mark.parametrize("key", ["dim_months_until", "dim_values_pruned"])
def test_a_damaged_meta_value_is_a_ledger_error(sound: Path, tmp_path: Path, key: str) -> None:
    """A meta value that is no longer an integer (a flipped byte) makes reads raise LedgerError, naming it."""
    path = tmp_path / "usage.db"
    shutil.copy(sound, path)
    with sqlite3.connect(path) as conn:
        damaged = (key, "\x00796515200")  # a flipped byte in "1796515200"
        conn.execute("INSERT OR REPLACE INTO meterline_meta (key, value) VALUES (?, ?)", damaged)
    ledger = open_ledger(path)
    try:
        with pytest.raises(LedgerError, match=key):
            ledger.totals(by=("user",), granularity="day")
    finally:
        ledger.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=12))
def test_flipped_bytes_raise_only_ledger_errors(
    sound: Path, tmp_path: Path, flips: list[tuple[int, int]]
) -> None:
    """Whatever bytes are flipped, opening and reading raise LedgerError or work; check never raises."""
    logging.disable(logging.CRITICAL)
    try:
        path = _damaged(sound, tmp_path, flips)
        try:
            ledger = open_ledger(path)
        except LedgerError:
            pass
        else:
            try:
                ledger.stats()
                ledger.totals(by=("user",), granularity="day")
                for _event in ledger.events():
                    pass
            except LedgerError:
                pass
            finally:
                ledger.close()
        check_ledger(path)
        shutil.rmtree(tmp_path / "spool", ignore_errors=True)
    finally:
        logging.disable(logging.NOTSET)
