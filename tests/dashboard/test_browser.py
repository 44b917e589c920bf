"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Each test opens pages of `meterline serve` over a ledger the fixtures filled, checks what is
drawn against the ledger (and the command line), and keeps a screenshot of each page under
``build/test-artifacts/dashboard`` (``$METERLINE_TEST_ARTIFACTS`` overrides the folder).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline import Usage
from meterline._cli import main
from meterline.budgets import BudgetStore, budget_status
from tests.dashboard.conftest import BUDGETS, Filled
from tests.dashboard.data import event

playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra (playwright) is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = (
    Path(os.environ.get("METERLINE_TEST_ARTIFACTS") or Path(__file__).parents[2] / "build" / "test-artifacts")
    / "dashboard"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless (skips without it, unless METERLINE_REQUIRE_SERVICES=1)."""
    if not Path(CHROMIUM).exists():
        message = (
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium (scripts/install_browser.sh)"
        )
        if os.environ.get("METERLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=list(ARGS))
        yield chromium
        chromium.close()


class Page:
    """One browser page on the dashboard, which records every address it requests."""

    def __init__(self, browser: Any, served: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.page = self.context.new_page()
        self.served = served
        self.requested: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def open(self, path: str) -> Any:
        """Go to ``path`` and wait until the page says it is drawn."""
        self.page.goto(self.served + path)
        self.drawn()
        return self.page

    def drawn(self) -> None:
        """Wait until the page's script has drawn everything (it marks the body)."""
        self.page.wait_for_selector("body[data-drawn='1']", timeout=15_000)

    def shot(self, name: str) -> None:
        """Keep a screenshot of the whole page as a test artifact."""
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        """Close the page; fail if it requested an outside address or a script failed."""
        outside = [url for url in self.requested if not url.startswith((self.served + "/", "data:", "blob:"))]
        self.context.close()
        assert outside == [], f"the page requested outside addresses: {outside}"
        assert self.errors == [], self.errors


@pytest.fixture
def page(browser: Any, served: str) -> Iterator[Page]:
    """A fresh page; at the end, no address outside the dashboard was requested and no script failed."""
    opened = Page(browser, served)
    yield opened
    opened.close()


def _until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page (the driver evaluates it: the CSP forbids eval)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(50)


def _labels(page: Any, canvas: str) -> list[str]:
    labels: list[str] = page.evaluate(
        f"Chart.getChart(document.querySelector('{canvas}')).data.datasets.map(d => d.label)"
    )
    return labels


def _usd(amount: Decimal) -> str:
    # The sum of tidy costs may end in zeros (0.12 + 0.18 = 0.30); the page shows 0.3.
    whole, _, fraction = f"{amount.normalize():f}".partition(".")
    return f"${int(whole):,}" + (f".{fraction}" if fraction else "")


def test_overview_total_is_the_cli_report_s_to_the_last_digit(
    page: Page, sqlite_filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each span's cost on the overview equals `meterline report` over the same span, every digit."""
    shown = page.open("/")
    for name in ("today", "7d", "30d"):
        card = shown.locator(f".card[data-period='{name}']")
        since, until = card.get_attribute("data-since"), card.get_attribute("data-until")
        assert (
            main(
                [
                    "report",
                    "--ledger",
                    sqlite_filled.url,
                    "--since",
                    since,
                    "--until",
                    until,
                    "--format",
                    "json",
                ]
            )
            == 0
        )
        total = sum((Decimal(row["cost"]) for row in json.loads(capsys.readouterr().out)), Decimal(0))
        assert card.locator(".cost").inner_text() == _usd(total)
    assert "unmeasured" in shown.locator(".card[data-period='30d'] .not-in-cost").inner_text()
    page.shot("overview")
    month = shown.locator(".card[data-period='30d']").get_attribute("data-since")
    for span, since in (
        ("7", shown.locator(".card[data-period='7d']").get_attribute("data-since")),
        ("30", month),
    ):
        shown.select_option("#top-span", span)
        argv = ["report", "--ledger", sqlite_filled.url, "--by", "session", "--since", since, "--limit", "3"]
        assert main([*argv, "--format", "json"]) == 0
        top = [row["session"] for row in json.loads(capsys.readouterr().out)]
        _until(
            shown,
            f"Array.from(document.querySelectorAll('#top-session tbody tr td:first-child'))"
            f".slice(0, 3).map(td => td.textContent).join() === {','.join(top)!r}",
        )


def test_changing_the_grouping_redraws_the_chart_with_its_series(page: Page, sqlite_filled: Filled) -> None:
    """Switching the overview chart to agent, and exploring by user, draws those groups' series by cost."""
    shown = page.open("/")
    assert _labels(shown, "#cost-chart")[0] in {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"}
    shown.select_option("#series-by", "agent")
    _until(
        shown,
        "['planner', 'writer'].includes("
        "Chart.getChart(document.querySelector('#cost-chart')).data.datasets[0].label)",
    )
    since = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    by_agent: Counter[str] = Counter()
    for e in sqlite_filled.events:
        if e.time >= since and e.cost is not None:
            by_agent[e.dimensions["agent"]] += e.cost  # type: ignore[assignment]
    assert _labels(shown, "#cost-chart") == [agent for agent, _ in by_agent.most_common()]

    shown = page.open("/explore?by=session&granularity=week&since=2000-01-01")
    by_session: Counter[str] = Counter()
    for e in sqlite_filled.events:
        if e.cost is not None:
            by_session[e.dimensions["session"]] += e.cost  # type: ignore[assignment]
    top = [session for session, _ in by_session.most_common(8)]
    assert _labels(shown, "#explore-chart") == [*top, "other"]
    page.shot("explore")


def test_a_drill_down_reaches_an_event_and_shows_its_cost(page: Page, sqlite_filled: Filled) -> None:
    """Overview's top user → that user's sessions → a session's events → one event, its cost as stored."""
    shown = page.open("/")
    user = shown.locator("#top-user tbody tr td a").first
    name = user.inner_text()
    user.click()
    page.drawn()
    assert shown.url.endswith(f"/explore?by=session&where=user%3D{name}")
    assert shown.locator("#explore-table thead th").first.inner_text() == "session"
    shown.locator("#explore-table tbody tr").first.locator("a", has_text="events").click()
    page.drawn()
    assert "/events?" in shown.url
    page.shot("events")
    first = shown.locator("#events-table tbody tr td a").first
    first.click()
    page.drawn()
    event_id = shown.url.rsplit("/", 1)[1].split("?")[0]
    stored = next(e for e in sqlite_filled.events if e.id == event_id)
    assert stored.dimensions["user"] == name
    expected = (
        "—"
        if stored.operation in ("execute_tool", "cache")
        else _usd(stored.cost)
        if stored.cost is not None
        else ""
    )
    assert shown.locator("dd[data-field='cost']").inner_text().startswith(expected)
    assert shown.locator("dd[data-field='id']").inner_text() == event_id
    page.shot("event")


def test_a_budget_bar_shows_used_of_limit(page: Page, budget_store: BudgetStore) -> None:
    """Each budget key has a bar as wide as its share used, with used and limit written beside it."""
    shown = page.open("/budgets")
    status = {
        tuple(s.key.values()): s for s in budget_status(budget_store, BUDGETS) if s.budget == "daily-cost"
    }
    alice = status[("alice",)]
    panel = shown.locator(".budget", has_text="user=alice")
    used, limit = Decimal(alice.used), Decimal(alice.limit)
    assert panel.locator(".usage").inner_text().startswith(f"used {_usd(used)} of {_usd(limit)}")
    width = panel.locator(".bar .used").evaluate("node => node.style.width")
    assert float(width.rstrip("%")) == pytest.approx(float(used / limit) * 100, abs=0.01)
    assert "alerts fired this window: 50 %, 80 %" in panel.inner_text()
    page.shot("budgets")


def test_the_csv_download_equals_the_table(page: Page) -> None:
    """The CSV downloaded from Explore holds exactly the table's rows, in the order shown (after a sort)."""
    shown = page.open("/explore?by=user,agent&since=2000-01-01")
    shown.locator("#explore-table thead th", has_text="events").click()
    with shown.expect_download() as download:
        shown.click("#download-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    table = shown.evaluate(
        "Array.from(document.querySelectorAll('#explore-table tr')).map(tr => "
        "Array.from(tr.cells).filter(c => !c.classList.contains('no-csv')).map(c => c.textContent))"
    )
    assert rows == table
    assert rows[0][:2] == ["user", "agent"]
    counts = [int(row[2].replace(",", "")) for row in rows[1:]]
    assert counts == sorted(counts)


def test_tools_page_shows_calls_and_caches(page: Page, sqlite_filled: Filled) -> None:
    """The tools page lists each tool's calls and the cache's hit rate."""
    shown = page.open("/tools")
    since = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    calls = Counter(
        e.dimensions["tool"]
        for e in sqlite_filled.events
        if e.operation == "execute_tool" and e.time >= since
    )
    for tool, count in calls.items():
        assert (
            shown.locator("#tools-table tr", has_text=tool).locator("td").nth(1).inner_text() == f"{count:,}"
        )
    assert shown.locator("dd[data-field='hit rate']").inner_text().endswith("%")
    page.shot("tools")


def test_new_events_appear_without_a_reload(page: Page, sqlite_filled: Filled) -> None:
    """An event written while the overview is open shows in its latest events and its totals."""
    shown = page.open("/")
    before = shown.locator(".card[data-period='today'] .cost").inner_text()
    new = event(
        datetime.now(tz=UTC),
        {"org": "acme", "user": "alice", "session": "live", "agent": "writer"},
        usage=Usage(input_tokens=1, output_tokens=1),
        cost=Decimal("1.000000001"),
    )
    sqlite_filled.ledger.write([new])
    sqlite_filled.events.append(new)
    shown.wait_for_selector(f"#latest a[href^='/events/{new.id}?']", timeout=10_000)
    _until(shown, f"document.querySelector(\".card[data-period='today'] .cost\").textContent !== {before!r}")
    assert shown.url == page.served + "/"
