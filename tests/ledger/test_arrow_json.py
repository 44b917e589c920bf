"""Each column's JSON made by Arrow kernels is exactly what Python's json module and reprs write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline._money import to_usd
from meterline.ledger._arrow_json import _floats, _strings, _times, _usd, concatenated
from meterline.ledger._rows import json_string

pa = pytest.importorskip("pyarrow")

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(values=st.lists(st.none() | st.floats(allow_nan=False), max_size=50))
def test_floats_are_written_as_repr(values: list[float | None]) -> None:
    """Plain, exponent, negative zero, infinities and nulls: ``float.__repr__`` or ``null``."""
    written = _floats(pa.array(values, pa.float64())).to_pylist()
    assert written == ["null" if value is None else float.__repr__(value) for value in values]


def test_floats_arrow_writes_differently_are_still_repr() -> None:
    """Values Arrow writes otherwise (7841, 1.2e+14, 1e+15, 1.5e-05) come out as Python writes them."""
    values = [7841.0, 123456789012345.6, 1e15, 1.5e-05, 0.0001, 1e16, -0.0, 12.5]
    assert _floats(pa.array(values)).to_pylist() == [repr(value) for value in values]


@given(picos=st.lists(st.none() | _INT64, max_size=50))
def test_costs_are_written_as_their_decimal(picos: list[int | None]) -> None:
    """Pico-dollars, zero, under a millionth (``1E-7``), negative and huge: ``str(to_usd(pico))`` quoted."""
    written = _usd(pa.array(picos, pa.int64())).to_pylist()
    assert written == ["null" if pico is None else json_string(str(to_usd(pico))) for pico in picos]


@given(
    times=st.lists(
        st.integers(min_value=-(10**18), max_value=2**63 - 1),
        max_size=50,
    )
)
def test_times_are_written_as_isoformat(times: list[int]) -> None:
    """Whole seconds, microseconds, nanoseconds cut, times before 1970: ``isoformat()`` with a Z."""
    written = _times(pa.array(times, pa.int64())).to_pylist()
    expected = []
    for time_ns in times:
        seconds, nanos = divmod(time_ns, 10**9)
        moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
        expected.append(f'"{moment.isoformat()[:-6]}Z"')
    assert written == expected


@given(texts=st.lists(st.none() | st.text(), max_size=50))
def test_strings_are_escaped_as_json_does(texts: list[str | None]) -> None:
    """Quotes, backslashes, controls, DEL and non-ASCII: ``json.dumps``'s ASCII escaping, or ``null``."""
    written = _strings(pa.array(texts, pa.string())).to_pylist()
    assert written == ["null" if text is None else json_string(text) for text in texts]


@given(lists=st.lists(st.lists(st.text(max_size=5), max_size=4), max_size=20), cut=st.integers(0, 3))
def test_concatenated_joins_each_lists_strings(lists: list[list[str]], cut: int) -> None:
    """Empty lists and strings, items sliced from a larger array: each list's strings joined."""
    flat = ["pad"] * cut + [text for strings in lists for text in strings]
    items = pa.array(flat, pa.string()).slice(cut)
    bounds = [0]
    for strings in lists:
        bounds.append(bounds[-1] + len(strings))
    joined = concatenated(pa.array(bounds, pa.int32()), items)
    assert joined.to_pylist() == ["".join(strings) for strings in lists]
