"""The SQLite ledger's schema: stored costs read back exactly."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st


@given(st.integers(min_value=0, max_value=2**63 - 1))
@settings(max_examples=300, deadline=None)
def test_the_view_writes_a_cost_out_as_usd_text_does(pico: int) -> None:
    """A cost stored as pico-dollars alone reads back as the exact text `usd_text` gives."""
    from meterline.ledger._rows import usd_text
    from meterline.ledger._sqlite_schema import COST_TEXT

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE e (cost TEXT, cost_pico INTEGER)")
        conn.execute("INSERT INTO e VALUES (NULL, ?)", (pico,))
        ((text,),) = conn.execute(f"SELECT {COST_TEXT} FROM e")
    finally:
        conn.close()
    assert text == usd_text(pico)


_HEX_IDS = st.binary(min_size=16, max_size=16).map(bytes.hex)
_IDS = st.one_of(
    _HEX_IDS,
    _HEX_IDS.map(str.upper),
    st.text("0123456789abcdefABCDEF \n", min_size=32, max_size=32),  # fromhex takes these; they stay text
    st.text(max_size=40),
)


@given(_IDS)
@settings(max_examples=300, deadline=None)
def test_an_id_is_packed_only_when_it_reads_back_unchanged(event_id: str) -> None:
    """`stored_id` packs exactly the ids of 32 lower-case hex digits; `ID_TEXT` reads each back as it was."""
    from meterline.ledger._sqlite_schema import ID_TEXT, stored_id

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE e (id TEXT UNIQUE)")
        conn.execute("INSERT INTO e VALUES (?)", (stored_id(event_id),))
        ((text, kind),) = conn.execute(f"SELECT {ID_TEXT}, typeof(e.id) FROM e")
    finally:
        conn.close()
    assert text == event_id
    packed = len(event_id) == 32 and set(event_id) <= set("0123456789abcdef")
    assert kind == ("blob" if packed else "text")


@given(st.lists(_IDS, unique=True, max_size=30))
@settings(max_examples=200, deadline=None)
def test_stored_ids_sort_as_documented(ids: list[str]) -> None:
    """In id order, ids of 32 hex digits keep their text's order, after every other id (in its order)."""
    from meterline.ledger._sqlite_schema import ID_TEXT, stored_id

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE e (id TEXT UNIQUE)")
        conn.executemany("INSERT INTO e VALUES (?)", [(stored_id(event_id),) for event_id in ids])
        read = [text for (text,) in conn.execute(f"SELECT {ID_TEXT} FROM e ORDER BY e.id")]
    finally:
        conn.close()
    packed = sorted(event_id for event_id in ids if isinstance(stored_id(event_id), bytes))
    assert read == sorted(set(ids) - set(packed)) + packed
