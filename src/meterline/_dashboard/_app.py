"""The dashboard's web app: its pages, the JSON API under them, and what keeps it safe.

Built on FastAPI (Starlette underneath), which writes the API's OpenAPI document
(``/openapi.json``) from the routes below; the pages are Jinja2 shells whose script (and the
Chart.js it draws with) ships in the wheel and reads the same API. Only ``GET`` is served:
nothing here writes to the ledger or the budget store.

Safe by default:

- Bound to a loopback address with no token, it answers only requests whose ``Host`` is a
  loopback name (a page elsewhere cannot reach it through DNS rebinding).
- With a token (required to bind any other address), every request carries it: an
  ``Authorization: Bearer`` header, or the ``meterline_token`` cookie a page sets when first
  opened with ``?token=…``. Tokens are compared in constant time.
- Names given to a report reach SQL only through the ledger's checks (lower-case identifiers,
  never in SQL text); values only as parameters. A query parameter the endpoint does not know,
  or a value it cannot read, is answered with 400 and a message naming it.
- Every response forbids loading anything from another origin (Content-Security-Policy).
"""

from __future__ import annotations as _annotations

import hmac
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from meterline._dashboard._views import EVENT_FIELDS, HIERARCHY, NotFound, Views
from meterline._version import __version__
from meterline.exceptions import BudgetStoreError, LedgerError, MeterlineError
from meterline.ledger import parse_by, parse_when, parse_where

__all__ = ["LOOPBACK_HOSTS", "TOKEN_COOKIE", "create_app"]

TOKEN_COOKIE: Final = "meterline_token"  # noqa: S105 - the cookie's name, not a secret
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")
_HERE: Final = Path(str(resources.files("meterline._dashboard")))
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PAGES: Final = {
    "overview": "Overview",
    "explore": "Explore",
    "events": "Events",
    "event": "Event",
    "budgets": "Budgets",
    "tools": "Tools and caches",
}

By = Annotated[str, Query(description="names separated by commas: event fields or dimensions")]
Where = Annotated[
    list[str],
    Query(description="NAME=VALUE: events whose NAME is VALUE (repeat for any of several); NAME: without it"),
]
When = Annotated[
    str | None, Query(description="an age (7d, 12h, 30m) or an ISO 8601 date or date-time (UTC)")
]
Granularity = Annotated[str | None, Query(description="hour, day or month")]


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _only(request: Request, *names: str) -> None:
    """Refuse a query parameter the endpoint does not take (a typo would otherwise pass unseen)."""
    for name in request.query_params:
        if name not in names:
            shown = name if len(name) <= 40 else name[:40] + "…"
            expected = ", ".join(names) if names else "none"
            raise _RefusedError(f"query parameter {shown!r}: not known here (expected: {expected})")


class _RefusedError(Exception):
    """A request this app answers with 400 before asking the ledger."""


def _when(text: str | None) -> Any:
    return None if text is None or not text.strip() else parse_when(text)


def create_app(views: Views, *, token: str | None = None, refresh_seconds: float = 3.0) -> FastAPI:
    """The dashboard over ``views``.

    Args:
        views: The ledger (and budget store) it reads.
        token: When given, every request must carry it (see the module's docstring); without
            one, only loopback ``Host`` names are answered.
        refresh_seconds: How often the pages ask for new events (the live view).

    Returns:
        An ASGI app (served by `DashboardServer`, or by any ASGI server).
    """
    app = FastAPI(
        title="meterline dashboard",
        version=__version__,
        description=(
            "The numbers behind `meterline serve`'s pages, read-only. Money is a decimal string of "
            "USD; times are RFC 3339 in UTC; calls whose usage never arrived (`unmeasured`) or that "
            "have no price (`unpriced`) are counted beside the cost, never as $0. `/api/report` "
            "gives the rows of `meterline report --format json` for the same query."
        ),
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN: the document is enough
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=_HERE / "templates")
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    if token is None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            given = given or request.cookies.get(TOKEN_COOKIE, "") or request.query_params.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "a token is required (Authorization: Bearer, or ?token=)"}, 401)
            if "token" in request.query_params:
                rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                redirect = RedirectResponse(request.url.path + ("?" + rest if rest else ""), status_code=303)
                redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return redirect
        response = await call_next(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    @app.exception_handler(_RefusedError)
    async def refused(_request: Request, exc: _RefusedError) -> JSONResponse:
        return _bad_request(str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
            f" (got {str(error.get('input'))[:40]!r})"
            for error in exc.errors()
        ]
        return _bad_request("; ".join(problems))

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(MeterlineError)
    async def meterline_error(_request: Request, exc: MeterlineError) -> JSONResponse:
        if isinstance(exc, LedgerError | BudgetStoreError):
            return JSONResponse({"error": f"the store failed: {exc}"}, status_code=503)
        return _bad_request(str(exc))

    def page(name: str) -> Callable[[Request], Response]:
        def render(request: Request) -> Response:
            return templates.TemplateResponse(
                request,
                "page.html",
                {
                    "page": name,
                    "title": PAGES[name],
                    "nav": [(page, label) for page, label in PAGES.items() if page != "event"],
                    "version": __version__,
                    "refresh_ms": int(refresh_seconds * 1000),
                    "budgets": views.budget_store is not None,
                    "ledger": views.ledger.url,
                },
            )

        return render

    for name, path in (
        ("overview", "/"),
        ("explore", "/explore"),
        ("events", "/events"),
        ("budgets", "/budgets"),
        ("tools", "/tools"),
    ):
        app.add_api_route(path, page(name), methods=["GET"], include_in_schema=False, name=f"page_{name}")
    app.add_api_route("/events/{event_id}", page("event"), methods=["GET"], include_in_schema=False)

    @app.get("/api/overview", tags=["overview"])
    def overview(request: Request) -> dict[str, Any]:
        """Spend and calls today, over 7 and 30 days, each with the span before and the change.

        Also the tokens by class over 30 days (the top users, sessions and agents of those days
        are `/api/report` with `limit`).
        """
        _only(request)
        return views.overview()

    @app.get("/api/series", tags=["reports"])
    def series(
        request: Request,
        by: By = "model",
        where: Where = [],  # noqa: B006 - FastAPI copies a query list's default
        since: When = None,
        until: When = None,
        granularity: Annotated[str, Query(description="hour, day, week or month")] = "day",
        top: Annotated[int, Query(description="series drawn; the rest add up to 'other'")] = 8,
    ) -> dict[str, Any]:
        """Cost over time by the groups of ``by`` (a chart's series), with the calls not in the cost."""
        _only(request, "by", "where", "since", "until", "granularity", "top")
        return views.series(
            by=parse_by(by),
            where=parse_where(where),
            since=_when(since),
            until=_when(until),
            granularity=granularity,
            top=top,
        )

    @app.get("/api/report", tags=["reports"])
    def report(
        request: Request,
        by: By = "model",
        where: Where = [],  # noqa: B006 - FastAPI copies a query list's default
        since: When = None,
        until: When = None,
        granularity: Granularity = None,
        limit: Annotated[int | None, Query(description="only the first rows by cost")] = None,
    ) -> list[dict[str, Any]]:
        """The rows of ``meterline report --format json`` for the same query, sorted by cost."""
        _only(request, "by", "where", "since", "until", "granularity", "limit")
        return views.report(
            by=parse_by(by),
            where=parse_where(where),
            since=_when(since),
            until=_when(until),
            granularity=granularity or None,
            limit=limit,
        )

    @app.get("/api/events", tags=["events"])
    def events(
        request: Request,
        where: Where = [],  # noqa: B006 - FastAPI copies a query list's default
        since: When = None,
        until: When = None,
        limit: Annotated[int, Query(description="at most this many events, newest first (1 to 1000)")] = 100,
    ) -> list[dict[str, Any]]:
        """The newest events that pass the filters, newest first, each as its JSON export line."""
        _only(request, "where", "since", "until", "limit")
        return views.events(where=parse_where(where), since=_when(since), until=_when(until), limit=limit)

    @app.get("/api/events/{event_id}", tags=["events"])
    def event(
        request: Request,
        event_id: str,
        at: Annotated[
            str | None, Query(description="the event's time (else the time its id starts with)")
        ] = None,
    ) -> dict[str, Any]:
        """One event, its other attempts (same operation id) and the events linked to it."""
        _only(request, "at")
        return views.event(event_id, _when(at))

    @app.get("/api/latest", tags=["events"])
    def latest(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=200, description="at most this many events (1 to 200)")] = 20,
    ) -> list[dict[str, Any]]:
        """The newest events of the ledger, newest first: the pages poll it to show new events live."""
        _only(request, "limit")
        return views.latest(limit=limit)

    @app.get("/api/dimensions", tags=["reports"])
    def dimensions(request: Request) -> dict[str, Any]:
        """The names a report can group by, and the nested scopes a row drills down through."""
        _only(request)
        return {"names": views.dimensions(), "hierarchy": list(HIERARCHY), "fields": list(EVENT_FIELDS)}

    @app.get("/api/budgets", tags=["budgets"])
    def budgets(request: Request) -> dict[str, Any]:
        """Each budget and key: limit, used, reserved, remaining, window, reset, alerts fired."""
        _only(request)
        return views.budgets()

    @app.get("/api/tools", tags=["tools"])
    def tools(request: Request, since: When = None, until: When = None) -> dict[str, Any]:
        """Tool calls, the application cache and the providers' prompt caches."""
        _only(request, "since", "until")
        return views.tools(since=_when(since), until=_when(until))

    return app
