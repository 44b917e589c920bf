"""Each integration's floor is its extra's minimum and the release its min environment pins."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

import meterline
from meterline import _extras

ROOT = Path(__file__).parents[2]
FLOORS = {
    # module: (extra, distribution, pinned distribution in tests/integrations/min/<module>.txt)
    "langchain": ("langchain", "langchain-core", "langchain-core"),
    "litellm": ("litellm", "litellm", "litellm"),
    "pydantic_ai": ("pydantic-ai", "pydantic-ai-slim", "pydantic-ai-slim"),
    "openai_agents": ("openai-agents", "openai-agents", "openai-agents"),
}


def version(text: str) -> tuple[int, ...]:
    """``"0.3.30"`` -> ``(0, 3, 30)``, padded to three parts."""
    parts = tuple(int(part) for part in text.split("."))
    return parts + (0,) * (3 - len(parts))


@pytest.mark.parametrize("module", sorted(FLOORS))
def test_floor_matches_extra_and_pins(module: str) -> None:
    """MIN_VERSION == the extra's `>=` floor == the version tests/integrations/min pins."""
    integration = pytest.importorskip(f"meterline.integrations.{module}")
    extra, dist, pinned = FLOORS[module]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    (requirement,) = extras[extra]
    floor = re.fullmatch(rf"{re.escape(dist)}>=([\d.]+)", requirement)
    assert floor is not None, requirement
    pins = (ROOT / "tests" / "integrations" / "min" / f"{module}.txt").read_text(encoding="utf-8")
    pin = re.search(rf"^{re.escape(pinned)}(?:\[[^\]]*\])?==([\d.]+)$", pins, re.MULTILINE)
    assert pin is not None, pins
    assert integration.MIN_VERSION == version(floor.group(1)) == version(pin.group(1))


def test_an_older_framework_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing an integration over too old a framework raises UnsupportedSDKError with the fix."""
    pytest.importorskip("langchain_core")
    _extras.check_version.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "0.2.0")
    monkeypatch.delitem(sys.modules, "meterline.integrations.langchain", raising=False)
    try:
        with pytest.raises(
            meterline.UnsupportedSDKError,
            match=r"langchain-core 0\.2\.0 is older than 0\.3\.30.*meterline\[langchain\]",
        ):
            importlib.import_module("meterline.integrations.langchain")
    finally:
        _extras.check_version.cache_clear()
