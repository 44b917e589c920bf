"""Specification of `meterline._dashboard._app`: each endpoint over HTTP, the CLI's numbers, and safe."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline._cli import main
from meterline._dashboard import TOKEN_COOKIE, DashboardServer, Views
from meterline.exceptions import ConfigurationError
from tests.dashboard.conftest import Filled
from tests.dashboard.data import cost_of, in_range

API = (
    "/api/overview",
    "/api/series",
    "/api/report",
    "/api/events",
    "/api/latest",
    "/api/dimensions",
    "/api/budgets",
    "/api/tools",
)


def get(served: str, path: str, params: Any = None, **kwargs: Any) -> httpx.Response:
    """GET ``path`` of the dashboard at ``served``."""
    return httpx.get(served + path, params=params, timeout=30, **kwargs)


def test_every_page_and_asset_is_served(served: str) -> None:
    """Each page is an HTML shell naming its page; the script and Chart.js come from the app itself."""
    for path, page in (
        ("/", "overview"),
        ("/explore", "explore"),
        ("/events", "events"),
        ("/budgets", "budgets"),
        ("/tools", "tools"),
        ("/events/" + "0" * 32, "event"),
    ):
        response = get(served, path)
        assert response.status_code == 200, path
        assert f'data-page="{page}"' in response.text
    for asset in ("/static/dashboard.js", "/static/dashboard.css", "/static/chart.umd.min.js"):
        assert get(served, asset).status_code == 200
    assert "http" not in get(served, "/").text.split("<body")[0].replace("http-equiv", "")


def test_the_openapi_document_lists_every_endpoint(served: str) -> None:
    """/openapi.json documents each API path with its parameters; no page loads Swagger from a CDN."""
    document = get(served, "/openapi.json").json()
    assert set(API) | {"/api/events/{event_id}"} == set(document["paths"])
    names = {p["name"] for p in document["paths"]["/api/report"]["get"]["parameters"]}
    assert names == {"by", "where", "since", "until", "granularity", "limit"}
    assert get(served, "/docs").status_code == 404


def test_the_report_endpoint_gives_the_cli_s_rows(
    served: str, sqlite_filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    """/api/report returns exactly what `meterline report --format json` prints for the same query."""
    # Yesterday: the latest events are 5 to 600 minutes old, so today's date alone has none
    # in the first minutes after midnight.
    since = (sqlite_filled.now - timedelta(days=1)).strftime("%Y-%m-%d")
    for args, params in (
        (["--by", "user"], {"by": "user"}),
        (
            ["--by", "model,agent", "--since", since, "--granularity", "hour"],
            {"by": "model,agent", "since": since, "granularity": "hour"},
        ),
        (
            ["--by", "session", "--where", "org=acme", "--where", "user=bob"],
            [("by", "session"), ("where", "org=acme"), ("where", "user=bob")],
        ),
        (
            ["--by", "tool", "--where", "operation=execute_tool", "--since", "7d"],
            {"by": "tool", "where": "operation=execute_tool", "since": "7d"},
        ),
        (["--by", "session", "--limit", "4"], {"by": "session", "limit": "4"}),
    ):
        assert main(["report", "--ledger", sqlite_filled.url, *args, "--format", "json"]) == 0
        cli = json.loads(capsys.readouterr().out)
        assert get(served, "/api/report", params).json() == cli
        assert cli, args


def test_overview_endpoint_equals_the_events(served: str, sqlite_filled: Filled) -> None:
    """/api/overview's spans are its events' sums for the moment it states."""
    data = get(served, "/api/overview").json()
    for period in data["periods"]:
        since, until = datetime.fromisoformat(period["since"]), datetime.fromisoformat(period["until"])
        assert Decimal(period["cost"]) == cost_of(in_range(sqlite_filled.events, since, until))


def test_endpoints_answer_with_the_views_numbers(served: str, views: Views, sqlite_filled: Filled) -> None:
    """Series, events, an event, latest, dimensions, budgets and tools are the read side's answers."""
    assert get(
        served, "/api/series", {"by": "agent", "since": "2000-01-01", "top": "1"}
    ).json() == views.series(by=("agent",), since=datetime.fromisoformat("2000-01-01T00:00:00+00:00"), top=1)
    assert get(served, "/api/events", [("where", "user=carol"), ("limit", "5")]).json() == views.events(
        where={"user": "carol"}, limit=5
    )
    some = sqlite_filled.events[len(sqlite_filled.events) // 2]
    assert get(served, f"/api/events/{some.id}").json()["event"] == some.to_dict()
    at = some.time.isoformat()
    assert get(served, f"/api/events/{some.id}", {"at": at}).json()["event"] == some.to_dict()
    for unknown in ("f" * 32, "0" * 32):  # an id whose digits are no time, or a time with nothing
        answer = get(served, f"/api/events/{unknown}")
        assert answer.status_code == 404
        assert unknown in answer.json()["error"]
    assert get(served, "/api/latest", {"limit": "3"}).json() == views.latest(limit=3)
    names = get(served, "/api/dimensions").json()["names"]
    assert {"model", "user", "session", "agent", "tool"} <= set(names)
    assert get(served, "/api/budgets").json()["configured"] is True
    assert get(served, "/api/tools").json() == views.tools()


@pytest.mark.parametrize(
    ("path", "params", "names"),
    [
        ("/api/report", {"by": "user;drop table meterline_events"}, "by"),
        ("/api/report", {"by": "user", "where": "1x=2"}, "where"),
        ("/api/report", {"by": "user", "since": "yesterday"}, "yesterday"),
        ("/api/report", {"by": "user", "granularity": "fortnight"}, "fortnight"),
        ("/api/report", {"by": "user", "grouping": "x"}, "grouping"),
        ("/api/report", {"by": "user", "limit": "0"}, "limit"),
        ("/api/series", {"by": "user", "top": "0"}, "top"),
        ("/api/series", {"by": "user", "top": "1e309"}, "top"),
        ("/api/series", {"by": "user", "granularity": "year"}, "granularity"),
        ("/api/events", {"limit": "-1"}, "limit"),
        ("/api/events", {"limit": "99999999999999999999999"}, "limit"),
        ("/api/events", {"since": "9" * 5000}, "time"),
        ("/api/latest", {"limit": "true"}, "limit"),
        ("/api/events/" + "g" * 32, None, "event id"),
        ("/api/events/" + "0" * 32, {"at": "soon"}, "soon"),
        ("/api/overview", {"x": "1"}, "'x'"),
    ],
)
def test_hostile_parameters_get_400_naming_them(served: str, path: str, params: Any, names: str) -> None:
    """A bad name, value or unknown parameter is answered 400 with a message saying what was wrong."""
    response = get(served, path, params)
    assert response.status_code == 400
    assert names in response.json()["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/api/report", "/api/series", "/api/events"]),
    st.lists(
        st.tuples(
            st.sampled_from(["by", "where", "since", "until", "granularity", "limit", "top"]),
            st.text(max_size=80),
        ),
        max_size=4,
    ),
)
def test_any_query_string_is_answered_200_or_400(
    served: str, path: str, params: list[tuple[str, str]]
) -> None:
    """Whatever the query string, the answer is a result or a 400 with a message: never a server error."""
    allowed = {
        "/api/report": {"by", "where", "since", "until", "granularity", "limit"},
        "/api/events": {"where", "since", "until", "limit"},
    }
    response = get(served, path, params)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]
    elif path in allowed:
        assert all(name in allowed[path] for name, _ in params)


def test_only_reading_is_allowed(served: str) -> None:
    """Nothing but GET is served: the dashboard never writes."""
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert httpx.request(method, served + "/api/report", timeout=10).status_code == 405


def test_every_response_forbids_outside_resources(served: str) -> None:
    """The Content-Security-Policy lets pages load and connect to this origin only."""
    for path in ("/", "/api/overview", "/static/dashboard.js"):
        headers = get(served, path).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "connect-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_without_a_token_only_loopback_host_names_are_answered(served: str) -> None:
    """A request whose Host is not a loopback name (DNS rebinding) is refused."""
    assert get(served, "/api/dimensions", headers={"Host": "evil.example"}).status_code == 400
    assert get(served, "/api/dimensions", headers={"Host": "localhost"}).status_code == 200


def test_a_token_guards_every_request(views: Views) -> None:
    """With a token, requests without it get 401; a bearer header or the cookie set by ?token= pass."""
    token = "s3cret-token-of-some-length"
    server = DashboardServer(views, port=0, token=token)
    url = server.start()
    try:
        assert httpx.get(url + "/api/dimensions", timeout=10).status_code == 401
        assert httpx.get(url + "/", timeout=10).status_code == 401
        assert (
            httpx.get(
                url + "/api/dimensions", headers={"Authorization": "Bearer wrong"}, timeout=10
            ).status_code
            == 401
        )
        assert (
            httpx.get(
                url + "/api/dimensions", headers={"Authorization": f"Bearer {token}"}, timeout=10
            ).status_code
            == 200
        )
        opened = httpx.get(url + "/explore", params={"token": token, "by": "user"}, timeout=10)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/explore?by=user"
        assert opened.cookies[TOKEN_COOKIE] == token
        assert (
            httpx.get(url + "/api/dimensions", cookies={TOKEN_COOKIE: token}, timeout=10).status_code == 200
        )
    finally:
        server.stop()


def test_other_addresses_need_a_long_token(views: Views) -> None:
    """Binding beyond loopback without a token, or with a short one, is refused before listening."""
    with pytest.raises(ConfigurationError, match="--token"):
        DashboardServer(views, host="0.0.0.0", port=0)
    with pytest.raises(ConfigurationError, match="16 characters"):
        DashboardServer(views, host="0.0.0.0", port=0, token="short")
    DashboardServer(views, host="::1", port=0)  # loopback: no token needed


def test_a_failing_store_is_a_503_not_a_crash(sqlite_filled: Filled, tmp_path: Any) -> None:
    """When the ledger cannot be read the API answers 503 with the store's error."""
    from meterline.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'gone.db'}")
    server = DashboardServer(Views(ledger), port=0)
    url = server.start()
    try:
        ledger.close()
        response = httpx.get(url + "/api/report", params={"by": "user"}, timeout=10)
        assert response.status_code == 503
        assert "the store failed" in response.json()["error"]
    finally:
        server.stop()


@pytest.mark.services
def test_a_postgres_ledger_is_served_alike(postgres_filled: Filled) -> None:
    """Over PostgreSQL the API answers the same numbers: the overview's spans are their events' cost."""
    server = DashboardServer(Views(postgres_filled.ledger), port=0)
    url = server.start()
    try:
        data = httpx.get(url + "/api/overview", timeout=30).json()
        for period in data["periods"]:
            since, until = datetime.fromisoformat(period["since"]), datetime.fromisoformat(period["until"])
            assert Decimal(period["cost"]) == cost_of(in_range(postgres_filled.events, since, until))
        rows = httpx.get(url + "/api/report", params={"by": "user", "limit": "3"}, timeout=30).json()
        assert rows == [
            row.to_dict(("user",)) for row in postgres_filled.ledger.totals(by=("user",), limit=3)
        ]
        assert httpx.get(url + "/", timeout=30).status_code == 200
    finally:
        server.stop()
