r"""Changes to the PostgreSQL roll-ups by value made from stored events: their sums spread over their values.

The write adds new events into the roll-ups by value in SQL (their dimension sets are copied
beside them). Stored events carry their dimensions as JSON text, which PostgreSQL cannot
always parse (``jsonb`` refuses ``\u0000``, which a value may hold), so where stored events
must be taken out or corrected (a prune, re-pricing, the migration from version 4) the
database adds them up per (day, key, dimension set) and this module spreads each sum over the
set's values in Python, then adds the result into the daily, folded days' and monthly
roll-ups through temporary tables keyed by text (`SPREAD_QUERIES`: their values and keys are
numbered as they are added).

Days that have passed are folded from the daily roll-up into the folded days' and the
monthly one (`fold_days`).
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from meterline._events import CACHE_OPERATION, TOOL_OPERATION
from meterline.ledger._groups import SUM_PICO, SUM_USAGE, WIDTH, accumulate, month_of
from meterline.ledger._postgres_copy import escape
from meterline.ledger._postgres_schema import (
    DAY_IDS,
    DAY_KEY,
    DAY_TOTAL_IDS,
    KEY_COLUMNS,
    MONTH_IDS,
    MONTH_KEY,
    SAME_KEY,
    SUM_NAMES,
    add_up,
    new_keys,
    new_values,
    stored_sums,
)
from meterline.ledger._rows import ROLLUP_SUMS, dimensions_of

if TYPE_CHECKING:
    import psycopg

__all__ = ["SPREAD_QUERIES", "Spread", "fold_days", "migrate_v5"]

_DELTA_SUMS: Final = stored_sums([f"d.{name}" for name in ROLLUP_SUMS])
_BY_NAME: Final = " JOIN {dim_values} AS v ON v.name = d.name AND v.value = d.value"
SPREAD_QUERIES: Final = {
    "copy_day_delta": f"COPY pg_temp.meterline_day_delta ({DAY_KEY}, {SUM_NAMES}) FROM STDIN",
    "copy_month_delta": f"COPY pg_temp.meterline_month_delta ({MONTH_KEY}, {SUM_NAMES}) FROM STDIN",
    "copy_day_total_delta": (
        f"COPY pg_temp.meterline_day_total_delta (name, value, day, {SUM_NAMES}) FROM STDIN"
    ),
    # The values and keys of a change are those of stored events, stored already, unless the
    # tables were changed by hand: then a value left out would be a sum lost.
    "new_day_values": new_values("meterline_day_delta"),
    "new_day_keys": new_keys("meterline_day_delta", KEY_COLUMNS),
    "new_month_values": new_values("meterline_month_delta"),
    "new_day_total_values": new_values("meterline_day_total_delta"),
    "add_days": (
        f"INSERT INTO {{dim_day}} AS r ({DAY_IDS}, {SUM_NAMES})"  # noqa: S608 - constants only
        f" SELECT v.value_id, d.day, k.key_id, {_DELTA_SUMS} FROM pg_temp.meterline_day_delta AS d{_BY_NAME}"
        f" JOIN {{rollup_keys}} AS k ON {SAME_KEY.format('k', 'd')} ORDER BY 1, 2, 3{add_up('r', DAY_IDS)}"
    ),
    "add_months": (
        f"INSERT INTO {{dim_month}} AS r ({MONTH_IDS}, {SUM_NAMES})"  # noqa: S608 - constants only
        f" SELECT v.value_id, d.month, {_DELTA_SUMS} FROM pg_temp.meterline_month_delta AS d{_BY_NAME}"
        f" ORDER BY 1, 2{add_up('r', MONTH_IDS)}"
    ),
    "add_day_totals": (
        f"INSERT INTO {{day_total}} AS r ({DAY_TOTAL_IDS}, {SUM_NAMES})"  # noqa: S608 - constants only
        f" SELECT v.value_id, d.day, {_DELTA_SUMS} FROM pg_temp.meterline_day_total_delta AS d{_BY_NAME}"
        f" ORDER BY 1, 2{add_up('r', DAY_TOTAL_IDS)}"
    ),
}
"""What `Spread.apply` runs: copy a change (sums, maybe negative, keyed by text) into its temporary
table, store its values (and keys), then add it into its roll-up by value."""

_INFORMATIONAL: Final = (*SUM_USAGE, SUM_PICO)
"""Sums a tool call's or cache lookup's row leaves out of the monthly roll-up."""
_NOT_MODEL_CALLS: Final = frozenset({escape(TOOL_OPERATION), escape(CACHE_OPERATION)})
_MIGRATION_PAGE: Final = 20_000
"""Rows of the old roll-up read at a time while migrating (bounded memory)."""


class Spread:
    """Sums per (day, key, dimension set) spread over the values, for the daily and monthly roll-ups.

    Args:
        days_from: The first day (seconds) whose daily rows are changed; earlier days go to
            the monthly roll-up only (a prune deletes their daily rows whole). ``None``: all.
        months_until: The first day not folded (its `FOLDED` value): the days before it
            change their monthly and folded days' rows too, the later ones do not (their daily
            rows are folded, changed, when the day has passed).
    """

    def __init__(self, days_from: int | None = None, *, months_until: int = 0) -> None:
        self._days_from = days_from
        self._months_until = months_until
        self._days: dict[tuple[Any, ...], list[Any]] = {}
        self._months: dict[tuple[Any, ...], list[Any]] = {}
        self._day_totals: dict[tuple[Any, ...], list[Any]] = {}
        self._parsed: dict[str, dict[str, Any]] = {}

    def add(self, record: Sequence[Any]) -> None:
        """Add ``(day, operation, status, provider, model, dimensions JSON, *ROLLUP_SUMS)``.

        The key fields are as stored (escaped, '' for a missing provider or model).
        """
        day, operation, status, provider, model, text = record[:6]
        sums = record[6 : 6 + WIDTH]
        dims = self._parsed.get(text)
        if dims is None:
            dims = self._parsed[text] = {
                escape(name): escape(value) for name, value in dimensions_of(text).items()
            }
        month = month_of(day)
        month_sums = list(sums)
        if operation in _NOT_MODEL_CALLS:  # informational: out of the monthly sums
            for at in _INFORMATIONAL:
                month_sums[at] = 0
        daily = self._days_from is None or day >= self._days_from
        monthly = day < self._months_until
        for name, value in dims.items():
            if daily:
                accumulate(self._days, (name, value, day, operation, status, provider, model), sums)
            if monthly:
                accumulate(self._months, (name, value, month), month_sums)
                if daily:
                    accumulate(self._day_totals, (name, value, day), month_sums)

    def apply(
        self,
        cur: psycopg.Cursor[tuple[Any, ...]],
        queries: Mapping[str, bytes],
        *,
        keyed_by_text: bool = False,
    ) -> None:
        """Add what was spread into the roll-ups by value (in the cursor's transaction), and start again.

        ``keyed_by_text``: into the roll-ups of versions 5 to 7 (the migration from version 4).
        """
        days = ("add_days_v5",) if keyed_by_text else ("new_day_values", "new_day_keys", "add_days")
        months = ("add_months_v5",) if keyed_by_text else ("new_month_values", "add_months")
        day_totals = ("new_day_total_values", "add_day_totals")
        for rows, copy, statements in (
            (self._days, "copy_day_delta", days),
            (self._months, "copy_month_delta", months),
            (self._day_totals, "copy_day_total_delta", day_totals),
        ):
            if not rows:
                continue
            with cur.copy(queries[copy]) as out:
                for key, sums in rows.items():
                    out.write_row((*key, *sums))
            for statement in statements:
                cur.execute(queries[statement])
            rows.clear()


def migrate_v5(cur: psycopg.Cursor[tuple[Any, ...]], queries: Mapping[str, bytes]) -> None:
    """Fill the daily roll-up by value from version 4's hourly one (keyed by dimension set), then drop it.

    Nothing is folded yet (`FOLDED` is 0): the next write folds the days before its own into
    the monthly roll-up.
    """
    spread = Spread()
    with cur.connection.cursor(name="meterline_migrate_v5") as rows:
        rows.execute(queries["old_rollup_days"])
        while page := rows.fetchmany(_MIGRATION_PAGE):
            for record in page:
                spread.add(record)
            spread.apply(cur, queries, keyed_by_text=True)
    cur.execute(queries["drop_old_rollup"])


def fold_days(
    cur: psycopg.Cursor[tuple[Any, ...]], queries: Mapping[str, bytes], start: int, end: int
) -> None:
    """Add the daily rows by value of the days [start, end) (seconds) into the folded roll-ups.

    In the cursor's transaction, which holds `FOLDED`'s row (``folded_update``); ``end``
    becomes its value. The days' rows are read by the daily roll-up's index of the day
    (`DAY_INDEX`), the planner told not to scan the table: without statistics of it
    (autovacuum's ANALYZE off, or not yet run) it took a day for many rows and scanned the
    whole table (1M product events: 86 ms a fold on average, 41 ms so;
    ``bench/bench_ledger_scale.py``'s ingest, when the index was BRIN).
    """
    cur.execute(queries["fold_by_day"])  # SET LOCAL: this transaction only
    cur.execute(queries["fold"], (start, end))
    cur.execute(queries["set_folded"], (str(end),))
