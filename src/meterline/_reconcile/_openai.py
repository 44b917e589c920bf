"""OpenAI's organisation Usage API (completions) and Costs API, read as day lines.

``GET /v1/organization/usage/completions`` gives daily buckets of results grouped by
``model`` (and ``project_id`` or ``api_key_id``): ``input_tokens`` (cached tokens included, as meterline
counts), ``input_cached_tokens``, ``output_tokens`` and ``num_model_requests``.
``GET /v1/organization/costs`` gives daily buckets of ``amount.value`` (USD) by line item
(and project). Both take Unix seconds and paginate with ``page``/``next_page``. The admin
key is read from ``OPENAI_ADMIN_KEY`` by the command.
"""

from __future__ import annotations as _annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from meterline._reconcile._lines import CostLine, Report, UsageLine
from meterline._reconcile._pages import count, pages, results, scope
from meterline.exceptions import ReconcileError

__all__ = ["ADMIN_KEY_VARIABLE", "BASE_URL", "openai_report"]

BASE_URL: Final = "https://api.openai.com"
ADMIN_KEY_VARIABLE: Final = "OPENAI_ADMIN_KEY"
USAGE_PATH: Final = "/v1/organization/usage/completions"
COSTS_PATH: Final = "/v1/organization/costs"


def openai_report(base: str, key: str, start: datetime, end: datetime, *, split: str | None) -> Report:
    """OpenAI's usage and costs of the days from ``start`` to ``end`` (UTC midnights).

    Args:
        base: The API's base URL (``https://api.openai.com``).
        key: An admin key.
        start: The first day (inclusive).
        end: The day after the last (exclusive).
        split: Split each day's usage by this field (``project_id`` or ``api_key_id``); the
            costs are split by ``project_id`` only (the Costs API groups by nothing finer).

    Raises:
        ReconcileError: the API failed or answered something else than its documented pages.
    """
    headers = {"Authorization": f"Bearer {key}"}
    window = [("start_time", str(int(start.timestamp()))), ("end_time", str(int(end.timestamp())))]
    cost_split = split if split == "project_id" else None
    report = Report()
    usage_params = [*window, ("bucket_width", "1d"), ("group_by", "model"), *_group(split), ("limit", "31")]
    for page in pages(base, USAGE_PATH, usage_params, headers):
        for bucket in page:
            day = _day(bucket)
            for result in results(bucket):
                model = result.get("model")
                report.add_usage(
                    UsageLine(
                        day,
                        model if type(model) is str else "(no model)",
                        scope(result, split),
                        count(result, "input_tokens"),
                        count(result, "output_tokens"),
                        count(result, "input_cached_tokens"),
                        count(result, "num_model_requests"),
                    )
                )
    cost_params = [*window, ("bucket_width", "1d"), *_group(cost_split), ("limit", "180")]
    for page in pages(base, COSTS_PATH, cost_params, headers):
        for bucket in page:
            day = _day(bucket)
            for result in results(bucket):
                report.add_cost(CostLine(day, scope(result, cost_split), _amount(result)))
    return report


def _group(field: str | None) -> list[tuple[str, str]]:
    return [] if field is None else [("group_by", field)]


def _day(bucket: dict[str, Any]) -> date:
    start = bucket.get("start_time")
    if type(start) is not int:
        raise ReconcileError(f"bucket start_time={start!r}: expected Unix seconds")
    return datetime.fromtimestamp(start, tz=UTC).date()


def _amount(result: dict[str, Any]) -> Decimal:
    amount = result.get("amount")
    value = amount.get("value") if type(amount) is dict else None
    currency = amount.get("currency") if type(amount) is dict else None
    if type(value) not in (int, float) or currency not in ("usd", "USD"):
        raise ReconcileError(f"amount={amount!r:.80}: expected {{value: a number, currency: 'usd'}}")
    number = Decimal(repr(value))
    if not number.is_finite():
        raise ReconcileError(f"amount.value={value!r}: expected a finite number of USD")
    return number
