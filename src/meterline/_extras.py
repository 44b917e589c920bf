"""Optional features: import an extra's module, or fail with the command that installs it."""

from __future__ import annotations as _annotations

import importlib
from types import ModuleType
from typing import Final

from meterline.exceptions import MissingExtraError

__all__ = ["EXTRAS", "require"]

EXTRAS: Final = {
    "postgres": ("psycopg",),
    "redis": ("redis",),
    "otel": ("opentelemetry",),
    "prometheus": ("prometheus_client",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google.genai",),
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
