"""Specification of `meterline._cli`: the entry point, its parser and ``python -m meterline``."""

from __future__ import annotations as _annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import meterline
from tests.cli.console import row, run


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline --version` prints the package version and exits 0."""
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.strip() == f"meterline {meterline.__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline` alone prints the help (listing the commands) on stderr and exits 2."""
    status, out, err = run(capsys)
    assert status == 2
    assert out == ""
    assert "prices" in err
    assert "demo" in err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A command that does not exist exits 2."""
    status, _, err = run(capsys, "no-such-command")
    assert status == 2
    assert "invalid choice" in err


def test_console_entry_point_runs() -> None:
    """`python -m meterline prices gpt-4o-mini` runs in a fresh interpreter and exits 0."""
    src = str(Path(meterline.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (src, os.environ.get("PYTHONPATH"))))}
    done = subprocess.run(
        [sys.executable, "-m", "meterline", "prices", "gpt-4o-mini"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "$0.15" in row(done.stdout, "input")
    assert "$0.60" in row(done.stdout, "output")
