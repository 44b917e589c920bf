"""A batch of events bound as the SQLite ledger stores it: every field of `event_to_row`, exactly."""

from __future__ import annotations

from decimal import Decimal

from tests.ledger.conformance import T0, make_event


def test_bound_rows_are_the_rows_of_the_contract() -> None:
    """`bind_rows` binds `event_to_row`'s values: id packed, keys and dims as ids, NULLs as 0, -1 or NaN."""
    import math

    from meterline.ledger._rows import EVENT_COLUMNS, event_to_row
    from meterline.ledger._sqlite_rows import bind_rows
    from meterline.ledger._sqlite_schema import _NULLABLE_TEXT, KEY_FIELDS, STORED_COLUMNS, WIDTH, stored_id
    from tests.ledger.conformance import HOSTILE, metered_events

    _, events = metered_events()
    events += [make_event(i, T0, model=value, dims={"note": value}) for i, value in enumerate(HOSTILE)]
    events.append(make_event(99, T0, model=None, provider=None, latency_ms=None, cost=None))
    keys: list[tuple[object, ...]] = []

    def key_id(fields: tuple[object, ...]) -> int:
        if fields not in keys:
            keys.append(fields)
        return keys.index(fields) + 1

    dims: dict[str, dict[str, str]] = {}

    def dims_ids(text: str, dimensions: object) -> str:
        dims.setdefault(text, dict(dimensions))  # type: ignore[call-overload]
        return str(list(dims).index(text))

    values = bind_rows(events, {}, key_id, {}, dims_ids)
    rows = [values[start : start + WIDTH] for start in range(0, len(values), WIDTH)]
    for event, bound in zip(events, rows, strict=True):
        expected = dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True))
        del expected["hour"]  # not stored: the view derives it from time_ns
        stored = dict(zip(STORED_COLUMNS, bound, strict=True))
        assert keys[stored.pop("key_id") - 1] == tuple(expected.pop(name) for name in KEY_FIELDS)
        text = list(dims)[int(stored.pop("dims"))]
        assert text == expected.pop("dimensions")
        assert dims[text] == dict(event.dimensions)
        assert stored.keys() == expected.keys()
        for name, value in stored.items():
            if name == "id":
                assert value == stored_id(expected[name]) == bytes.fromhex(expected[name])
            elif name == "cost" and value == 0 and expected[name] is not None:
                # Exact in pico-dollars: only the integer is stored (the view writes the text).
                assert Decimal(expected[name]) == Decimal(stored["cost_pico"]).scaleb(-12)
            elif expected[name] is None and name in _NULLABLE_TEXT:
                assert value == 0, name
            elif expected[name] is None and name == "latency_ms":
                assert math.isnan(value)
            elif expected[name] is None and name == "reported_cost_pico":
                assert value == -1
            else:
                assert value == expected[name], name
