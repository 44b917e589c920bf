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
