"""Exporters: where recorded events go besides the ledger.

Monitoring (each needs its extra, imported only when an exporter is made):

- `OTelExporter` (extra ``otel``): OpenTelemetry GenAI metrics and span attributes.
- `PrometheusExporter` (extra ``prometheus``): ``meterline_*_total`` counters and budget
  gauges; `LedgerCollector` serves the same counters from a ledger
  (``meterline serve-metrics``).

Billing (standard library only):

- `CloudEvents` (OpenMeter) and `Stripe` (meter events, one `StripeMeter` each): formats that
  turn an event into the documents a billing system ingests, with the event id as the
  idempotency key.
- `BillingSink`: a live feed from a meter, batched on a background thread, retried with the
  same ids and spooled to disk while the endpoint is down.
- From a ledger: ``meterline export --format cloudevents|stripe --to URL --cursor FILE``.

Each exporter is a meter subscriber: ``exporter.attach(meter)`` (or
``meter.subscribe(exporter)``) starts it and returns the function that stops it. None of them
ever raises into ``record()``: failures are logged on the ``meterline`` logger and counted.
"""

from __future__ import annotations as _annotations

from meterline.exporters._billing import (
    CLOUDEVENT_TYPE,
    STRIPE_QUANTITIES,
    BillingFormat,
    CloudEvents,
    Stripe,
    StripeMeter,
    cloudevent,
)
from meterline.exporters._feed import Cursor, feed, http_sender, lines_sender
from meterline.exporters._http import check_url
from meterline.exporters._otel import OTelExporter
from meterline.exporters._prometheus import BudgetCollector, LedgerCollector, PrometheusExporter
from meterline.exporters._sink import BillingSink, SinkStats

__all__ = [
    "CLOUDEVENT_TYPE",
    "STRIPE_QUANTITIES",
    "BillingFormat",
    "BillingSink",
    "BudgetCollector",
    "CloudEvents",
    "LedgerCollector",
    "OTelExporter",
    "PrometheusExporter",
    "SinkStats",
    "Stripe",
    "StripeMeter",
    "cloudevent",
]

# For the command line (`meterline export --to`), not public API:
__all__ += ["Cursor", "check_url", "feed", "http_sender", "lines_sender"]
