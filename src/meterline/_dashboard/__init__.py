"""``meterline serve``: a read-only local dashboard over a ledger and a budget store (extra ``dashboard``).

Pages (overview, explore, drill-down to events, budgets, tools and caches) and the JSON API
under them (`create_app`, documented at ``/openapi.json``) read the ledger through its report
API; `Views` is that read side, `DashboardServer` serves it. Every asset ships in the wheel.
"""

from __future__ import annotations as _annotations

from meterline._dashboard._app import TOKEN_COOKIE, create_app
from meterline._dashboard._server import DashboardServer, is_loopback
from meterline._dashboard._views import HIERARCHY, NotFound, Views

__all__ = ["HIERARCHY", "TOKEN_COOKIE", "DashboardServer", "NotFound", "Views", "create_app", "is_loopback"]
