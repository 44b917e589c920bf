"""A missing extra fails with an install hint; other import errors are not hidden."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from meterline import MissingExtraError
from meterline._extras import EXTRAS, require


class _Block(importlib.abc.MetaPathFinder):
    """Makes the named top-level modules unimportable, as if they were not installed."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if fullname.split(".", maxsplit=1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


@pytest.fixture
def no_openai() -> Iterator[None]:
    """Hide the openai SDK for the duration of a test."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "openai"}
    for name in saved:
        del sys.modules[name]
    blocker = _Block("openai")
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(saved)


@pytest.mark.usefixtures("no_openai")
def test_missing_extra_names_the_pip_command() -> None:
    """Requiring a module that is not installed raises MissingExtraError with the install hint."""
    with pytest.raises(MissingExtraError, match=r'pip install "meterline\[openai\]"') as info:
        require("openai", "openai")
    assert isinstance(info.value, ImportError)


def test_present_modules_are_returned() -> None:
    """A module that is installed is imported and returned."""
    assert require("openai", "openai").__name__ == "openai"


def test_other_import_errors_propagate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that is present but fails on its own missing import is not disguised as a missing extra."""
    (tmp_path / "broken_feature.py").write_text(
        "import no_such_dependency_of_the_feature\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("openai", "broken_feature")
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "no_such_dependency_of_the_feature"


def test_every_extra_in_pyproject_is_known() -> None:
    """Every optional-dependency group that provides modules is listed in EXTRAS."""
    import tomllib

    groups = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(EXTRAS) == set(groups) - {"all", "dev", "cli"}
