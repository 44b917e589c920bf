"""Optional features: import an extra's module, or fail with the command that installs it."""

from __future__ import annotations as _annotations

import functools
import importlib
import importlib.metadata
import re
from types import ModuleType
from typing import Final

from meterline.exceptions import MissingExtraError, UnsupportedSDKError

__all__ = ["EXTRAS", "check_version", "require"]

EXTRAS: Final = {
    "postgres": ("psycopg",),
    "redis": ("redis",),
    "otel": ("opentelemetry",),
    "prometheus": ("prometheus_client",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google.genai",),
    "langchain": ("langchain_core",),
    "litellm": ("litellm",),
    "pydantic-ai": ("pydantic_ai",),
    "openai-agents": ("agents",),
    "analytics": ("pyarrow", "duckdb"),
    "dashboard": ("fastapi", "uvicorn", "jinja2"),
}
"""Each extra and the top-level modules it provides."""


def require(extra: str, module: str) -> ModuleType:
    """Import ``module``, which the extra ``extra`` installs.

    Only a missing ``module`` (or one of its parents) becomes a `MissingExtraError`; any other
    import error inside the module is a real bug and propagates unchanged.

    Raises:
        MissingExtraError: naming the extra and the ``pip install`` command that adds it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        raise MissingExtraError(
            f"{module!r} is not installed; this feature needs the {extra!r} extra: "
            f'pip install "meterline[{extra}]"'
        ) from exc


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+", maxsplit=1)[0])[:3])


@functools.cache
def check_version(dist: str, extra: str, minimum: tuple[int, ...]) -> None:
    """Refuse a distribution older than the oldest release meterline is tested with.

    Args:
        dist: The distribution's name on PyPI (``"openai"``, ``"langchain-core"``).
        extra: The meterline extra that installs a supported release.
        minimum: The oldest supported release, as ``(major, minor, patch)``.

    Raises:
        UnsupportedSDKError: naming the installed release, the floor and the upgrade command.
    """
    try:
        installed = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return  # imported from a source tree: nothing to compare
    if _version_tuple(installed) < minimum:
        floor = ".".join(map(str, minimum))
        raise UnsupportedSDKError(
            f"{dist} {installed} is older than {floor}, the oldest meterline supports: "
            f'pip install -U "meterline[{extra}]"'
        )
