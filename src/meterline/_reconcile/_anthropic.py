"""Anthropic's Usage and Cost Admin API, read as day lines.

``GET /v1/organizations/usage_report/messages`` gives daily buckets of results grouped by
``model`` (and ``workspace_id`` or ``api_key_id``): ``uncached_input_tokens``, ``cache_creation`` (5 minute
and 1 hour writes), ``cache_read_input_tokens`` and ``output_tokens``; meterline's input is
their sum. It does not count requests. ``GET /v1/organizations/cost_report`` gives daily
buckets of ``amount``: a decimal string in cents (``"123.45"`` is $1.23). Both take RFC 3339
times and paginate with ``page``/``next_page``; the admin key (``ANTHROPIC_ADMIN_KEY``) goes
in ``x-api-key``. Anthropic documents that the cost report leaves Priority Tier costs out.
"""

from __future__ import annotations as _annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from meterline._reconcile._lines import CostLine, Report, UsageLine
from meterline._reconcile._pages import count, pages, results, scope
from meterline.exceptions import ReconcileError

__all__ = ["ADMIN_KEY_VARIABLE", "BASE_URL", "anthropic_report"]

BASE_URL: Final = "https://api.anthropic.com"
ADMIN_KEY_VARIABLE: Final = "ANTHROPIC_ADMIN_KEY"
USAGE_PATH: Final = "/v1/organizations/usage_report/messages"
COST_PATH: Final = "/v1/organizations/cost_report"
_VERSION: Final = "2023-06-01"


def anthropic_report(base: str, key: str, start: datetime, end: datetime, *, split: str | None) -> Report:
    """Anthropic's usage and costs of the days from ``start`` to ``end`` (UTC midnights).

    ``split``: split each day's usage by this field (``workspace_id`` or ``api_key_id``); the
    costs are split by ``workspace_id`` only (the cost report groups by nothing finer).

    Raises:
        ReconcileError: the API failed or answered something else than its documented pages.
    """
    headers = {"x-api-key": key, "anthropic-version": _VERSION}
    window = [("starting_at", _rfc3339(start)), ("ending_at", _rfc3339(end)), ("bucket_width", "1d")]
    cost_split = split if split == "workspace_id" else None
    report = Report()
    usage_params = [*window, ("group_by[]", "model"), *_group(split), ("limit", "31")]
    for page in pages(base, USAGE_PATH, usage_params, headers):
        for bucket in page:
            day = _day(bucket)
            for result in results(bucket):
                cache = result.get("cache_creation")
                if cache is not None and type(cache) is not dict:
                    raise ReconcileError(f"cache_creation={cache!r:.80}: expected an object")
                writes = (
                    0
                    if cache is None
                    else count(cache, "ephemeral_5m_input_tokens") + count(cache, "ephemeral_1h_input_tokens")
                )
                read = count(result, "cache_read_input_tokens")
                model = result.get("model")
                report.add_usage(
                    UsageLine(
                        day,
                        model if type(model) is str else "(no model)",
                        scope(result, split),
                        count(result, "uncached_input_tokens") + writes + read,
                        count(result, "output_tokens"),
                        read,
                        None,
                    )
                )
    cost_params = [*window, *_group(cost_split), ("limit", "31")]
    for page in pages(base, COST_PATH, cost_params, headers):
        for bucket in page:
            day = _day(bucket)
            for result in results(bucket):
                report.add_cost(CostLine(day, scope(result, cost_split), _cents(result)))
    return report


def _group(field: str | None) -> list[tuple[str, str]]:
    return [] if field is None else [("group_by[]", field)]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _day(bucket: dict[str, Any]) -> date:
    start = bucket.get("starting_at")
    try:
        return datetime.fromisoformat(str(start).replace("Z", "+00:00")).date()
    except ValueError:
        raise ReconcileError(f"bucket starting_at={start!r:.80}: expected an RFC 3339 time") from None


def _cents(result: dict[str, Any]) -> Decimal:
    amount, currency = result.get("amount"), result.get("currency")
    try:
        cents = Decimal(amount) if type(amount) is str and currency == "USD" else None
    except InvalidOperation:
        cents = None
    if cents is None or not cents.is_finite():
        raise ReconcileError(
            f"amount={amount!r:.80} currency={currency!r}: expected a decimal string of US cents"
        )
    return cents / 100
