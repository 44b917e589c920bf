"""The demo run shared by the tests that only read it."""

from __future__ import annotations as _annotations

import pytest

from meterline._cli._demo._result import DemoResult
from meterline._cli._demo._run import run_demo


@pytest.fixture(scope="package")
def demo() -> DemoResult:
    """One run of the demo, shared by the tests that only read it."""
    return run_demo(7)
