"""Run the command line in-process, and read the tables it prints."""

from __future__ import annotations as _annotations

import pytest

from meterline._cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``meterline ARGV`` in-process; return its exit status, stdout and stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def row(out: str, label: str) -> str:
    """The table line whose first cell is ``label``."""
    for line in out.splitlines():
        if line.strip().startswith(label + "  "):
            return line
    raise AssertionError(f"no row {label!r} in:\n{out}")
