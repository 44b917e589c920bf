"""Dimensions: read-only, JSON-ready attribution values."""

from __future__ import annotations

import json
import random
import uuid
import warnings
from pathlib import Path
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline import Budget, ConfigurationError, Meter, Usage
from meterline._dimensions import MAX_DIMENSIONS_BYTES, MAX_TEXT_BYTES, Dimensions, check_size, check_text
from meterline.budgets import BudgetStore, SQLiteBudgetStore
from meterline.ledger import LedgerBackend, SQLiteLedger
from tests.budgets.stores import delete_prefix, drop_schema
from tests.ledger.services import require_postgres, require_redis


class _Model(TypedDict):
    model: str
    provider: str


GPT: _Model = {"model": "gpt-4o-mini", "provider": "openai"}


def test_dimensions_are_read_only_json_ready_values(meter: Meter) -> None:
    """An event's dimensions cannot be changed, serialise with json, hash, copy and pickle."""
    import copy
    import pickle

    with meter.scope(user="u1"):
        event = meter.record(Usage(input_tokens=1), tags={"feature": "search"}, **GPT)
    dims = event.dimensions
    assert dims == {"user": "u1", "feature": "search"}
    assert json.loads(json.dumps(dims)) == {"user": "u1", "feature": "search"}
    for mutate in (
        lambda: dims.__setitem__("user", "u2"),  # type: ignore[index]
        lambda: dims.update(user="u2"),  # type: ignore[attr-defined]
        lambda: dims.pop("user"),  # type: ignore[attr-defined]
        dims.clear,  # type: ignore[attr-defined]
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert dims["user"] == "u1"
    assert hash(dims) == hash(copy.deepcopy(dims))
    assert pickle.loads(pickle.dumps(event)) == event


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=8))
def test_json_is_the_text_json_dumps_writes(dims: dict[str, str]) -> None:
    """`Dimensions.json` is json.dumps' compact sorted text exactly, escapes and lone surrogates included."""
    assert Dimensions(dims).json() == json.dumps(dims, sort_keys=True, separators=(",", ":"))


def test_json_of_values_that_are_not_str_is_json_dumps_text() -> None:
    """A `Dimensions` built by hand with a non-str value still writes what json.dumps writes."""
    dims = {"n": 1, "b": None, "s": "x"}
    assert Dimensions(dims).json() == '{"b":null,"n":1,"s":"x"}'  # type: ignore[arg-type]


def test_check_text_refuses_only_what_utf8_cannot_store() -> None:
    """Any text UTF-8 encodes passes (accents, emoji, NUL); a lone surrogate is refused, naming it."""
    from meterline._dimensions import check_text
    from meterline.exceptions import ConfigurationError

    for value in ("plain", "café", "模型", "🙂", "a\x00b", ""):
        check_text(value, "model")
    with pytest.raises(ConfigurationError, match=r"model='gpt-\\udc80': holds a lone surrogate at 4"):
        check_text("gpt-\udc80", "model")


@given(st.text(max_size=300))
def test_check_text_accepts_exactly_short_utf8_text(value: str) -> None:
    """Text passes if and only if UTF-8 encodes it in at most MAX_TEXT_BYTES bytes."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        size = None
    if size is not None and size <= MAX_TEXT_BYTES:
        check_text(value, "model")
    else:
        with pytest.raises(ConfigurationError, match="model="):
            check_text(value, "model")


@pytest.mark.parametrize(
    "arguments",
    [
        {"model": "m" * (MAX_TEXT_BYTES + 1)},
        {"model": "é" * (MAX_TEXT_BYTES // 2 + 1)},  # 129 characters, 258 bytes
        {"status": "s" * (MAX_TEXT_BYTES + 1)},
        {"operation_id": "o" * (MAX_TEXT_BYTES + 1)},
        {"tags": {"feature": "f" * (MAX_TEXT_BYTES + 1)}},
        {"tags": {f"t{index}": "v" * 200 for index in range(8)}},  # each fits, together they do not
    ],
    ids=["model", "model-bytes", "status", "operation_id", "tag", "tags-together"],
)
def test_record_refuses_text_past_the_limits_and_records_nothing(
    meter: Meter, arguments: dict[str, object]
) -> None:
    """A value past its limit is refused with a ConfigurationError naming it; no total moves."""
    call: dict[str, object] = {**GPT, **arguments}
    with pytest.raises(ConfigurationError, match=r"bytes"):
        meter.record(Usage(input_tokens=1), **call)  # type: ignore[arg-type]
    assert meter.totals().events == 0


def test_scopes_that_together_pass_the_limit_are_refused_on_entry(meter: Meter) -> None:
    """Nested scopes whose dimensions together pass MAX_DIMENSIONS_BYTES cannot be entered."""
    with meter.scope(**{f"a{index}": "x" * 240 for index in range(6)}):  # 1,489 bytes stored: fine
        meter.record(Usage(input_tokens=1), **GPT)
        with (
            pytest.raises(ConfigurationError, match=f"at most {MAX_DIMENSIONS_BYTES}"),
            meter.scope(b="y" * 250),
        ):
            pass
        with pytest.raises(ConfigurationError, match=f"at most {MAX_DIMENSIONS_BYTES}"):
            meter.reserve(**GPT, input_tokens=1, tags={"c": "z" * 250})
    assert meter.totals().events == 1


def _incompressible(size: int, rng: random.Random) -> str:
    """``size`` bytes of UTF-8 (four-byte characters, then ASCII) that no store can compress."""
    text = "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(size // 4))
    return text + "".join(rng.choice("0123456789abcdef") for _ in range(size % 4))


def _stores(kind: str, tmp_path: Path, schema: str) -> tuple[LedgerBackend, BudgetStore]:
    if kind == "sqlite":
        return SQLiteLedger(tmp_path / "usage.db", durable=True), SQLiteBudgetStore(tmp_path / "budgets.db")
    if kind == "postgres":
        url = require_postgres()
        from meterline.budgets._postgres import PostgresBudgetStore
        from meterline.ledger._postgres import PostgresLedger

        return PostgresLedger(url, schema=schema), PostgresBudgetStore(url, schema)
    url = require_redis()
    from meterline.budgets._redis import RedisBudgetStore

    return SQLiteLedger(tmp_path / "usage.db"), RedisBudgetStore(url, schema)


@pytest.mark.services
@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis"])
def test_every_store_keeps_the_largest_values_record_accepts(kind: str, tmp_path: Path) -> None:
    """At every limit at once, in text no store can compress, the ledger and budgets keep the event."""
    rng = random.Random(kind)
    names = [f"d{index}" for index in range(6)]
    dims = {name: _incompressible(80, rng) for name in names}  # 20 characters: 240 bytes stored each
    while len(Dimensions(dims).json()) < MAX_DIMENSIONS_BYTES:  # then ASCII, to the limit exactly
        shortest = min(names, key=lambda name: len(dims[name]))
        dims[shortest] += rng.choice("0123456789abcdef")
    assert len(Dimensions(dims).json()) == MAX_DIMENSIONS_BYTES
    model, status, operation = (_incompressible(MAX_TEXT_BYTES, rng) for _ in range(3))
    schema = f"limits_{uuid.uuid4().hex[:12]}"
    ledger, store = _stores(kind, tmp_path, schema)
    meter = Meter(ledger, durability="sync", budget_store=store)
    try:
        meter.add_budget(Budget(per=tuple(names), max_tokens=10**9, name="every-dimension"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the model has no price
            with meter.scope(**dims), meter.reserve(model=model, provider="openai", input_tokens=10):
                event = meter.record(
                    Usage(input_tokens=10, output_tokens=5),
                    model=model,
                    provider="openai",
                    operation=operation,
                    status=status,
                )
        delivery = meter.stats().ledger
        assert delivery is not None
        assert (delivery.rejected, delivery.lost, delivery.spooled) == (0, 0, 0)
        assert meter.stats().machinery_errors == 0
        (stored,) = ledger.events()
        assert stored.id == event.id
        assert dict(stored.dimensions) == dims
        assert (stored.model, stored.status, stored.operation) == (model, status, operation)
        (status_row,) = meter.budget_status()
        assert (dict(status_row.key), status_row.used) == (dims, 15)
    finally:
        meter.close()
        ledger.close()
        store.close()
        if kind == "postgres":
            drop_schema(require_postgres(), schema)
        elif kind == "redis":
            delete_prefix(require_redis(), schema)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
        st.text(st.characters(codec="utf-8"), max_size=64),
        max_size=12,
    )
)
def test_check_size_measures_the_stored_json(dims: dict[str, str]) -> None:
    """Dimensions pass if and only if their compact JSON takes at most MAX_DIMENSIONS_BYTES."""
    if len(Dimensions(dims).json()) <= MAX_DIMENSIONS_BYTES:
        check_size(dims)
    else:
        with pytest.raises(ConfigurationError, match=f"expected at most {MAX_DIMENSIONS_BYTES}"):
            check_size(dims)


def test_names_seen_good_never_let_a_bad_name_through(meter: Meter) -> None:
    """After good tag names are remembered, bad and reserved names are still refused, and nothing recorded."""

    class Name(str):
        __slots__ = ()

    meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "u1", "session": "s1"})
    meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "u2", "session": "s2"})
    # A str subclass equal to a remembered name is refused as before: names are exactly str.
    for bad in ({"User": "u"}, {"model": "m"}, {"": "x"}, {1: "x"}, {Name("user"): "x"}):
        with pytest.raises(ConfigurationError, match="name"):
            meter.record(Usage(input_tokens=1), model="gpt-4o", tags=bad)  # type: ignore[arg-type]
    assert meter.totals().requests == 2


def test_values_past_ascii_or_the_limit_are_still_checked_in_tags(meter: Meter) -> None:
    """A tag value's ASCII fast path leaves long and non-ASCII values to the full check."""
    with pytest.raises(ConfigurationError, match="bytes"):
        meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "u" * (MAX_TEXT_BYTES + 1)})
    with pytest.raises(ConfigurationError, match="surrogate"):
        meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "u\ud800"})
    with pytest.raises(ConfigurationError, match="bytes"):
        meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "é" * (MAX_TEXT_BYTES // 2 + 1)})
    event = meter.record(Usage(input_tokens=1), model="gpt-4o", tags={"user": "é" * (MAX_TEXT_BYTES // 2)})
    assert meter.totals().requests == 1
    assert event.dimensions == {"user": "é" * (MAX_TEXT_BYTES // 2)}
