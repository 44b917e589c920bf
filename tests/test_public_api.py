"""The public surface: __all__ is curated, sorted, importable and complete."""

from __future__ import annotations

import inspect

import meterline


def test_all_is_unique() -> None:
    """__all__ lists each public name once (ruff's RUF022 keeps it sorted)."""
    assert len(meterline.__all__) == len(set(meterline.__all__))


def test_every_public_name_is_exported() -> None:
    """Every public (non-underscore) name of the package, lazily loaded ones included, is in __all__."""
    public = {
        name
        for name in dir(meterline)
        if not name.startswith("_") and not inspect.ismodule(getattr(meterline, name))
    }
    public.discard("annotations")
    assert public | {"__version__"} == set(meterline.__all__)
    for name in meterline.__all__:
        assert getattr(meterline, name) is not None


def test_fixed_names_from_the_design_exist() -> None:
    """The names the design fixes are public."""
    for name in (
        "usage_from",
        "usage_from_stream",
        "Usage",
        "Meter",
        "get_meter",
        "configure",
        "scope",
        "record",
    ):
        assert name in meterline.__all__


def test_errors_share_one_base() -> None:
    """Every exception meterline exports derives from MeterlineError, every warning from MeterlineWarning."""
    for name in meterline.__all__:
        value = getattr(meterline, name)
        if isinstance(value, type) and issubclass(value, Exception) and not issubclass(value, Warning):
            assert issubclass(value, meterline.MeterlineError), name
    assert issubclass(meterline.UnpricedModelWarning, meterline.MeterlineWarning)


def test_importing_meterline_does_not_load_the_price_data() -> None:
    """Price data and pydantic load lazily, on the first price lookup."""
    import subprocess
    import sys

    code = "import sys, meterline; print('genai_prices' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_import_leaves_the_sdk_integrations_unloaded() -> None:
    """`import meterline` does not import the SDK integrations; `meterline.instrument` loads them."""
    import subprocess
    import sys

    code = (
        "import sys, meterline; assert 'meterline._instrument' not in sys.modules;"
        " assert callable(meterline.instrument); assert 'meterline._instrument' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
