"""No failure path shows a secret: every log line, error and repr naming a store or endpoint is redacted."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meterline import Meter, Usage
from meterline.exceptions import MeterlineError
from meterline.exporters import BillingSink, CloudEvents
from meterline.ledger import open_ledger

SECRET = "S3cr3t-Pa55"
"""What must never be printed."""

DOWN_POSTGRES = [
    f"postgresql://app:{SECRET}@127.0.0.1:1/usage",
    f"postgresql://app@127.0.0.1:1/usage?sslmode=disable&password={SECRET}",
    f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/usage",
]
DOWN_REDIS = [f"redis://:{SECRET}@127.0.0.1:1/0", f"redis://127.0.0.1:1/0?password={SECRET}"]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the meterline logger, down to DEBUG."""
    with caplog.at_level(logging.DEBUG, logger="meterline"):
        yield caplog


def _shown(logs: pytest.LogCaptureFixture, attempt: Callable[[], object]) -> str:
    """Everything ``attempt`` showed: its error (and the causes' texts it chose to repeat) and the logs."""
    shown = []
    try:
        shown.append(repr(attempt()))
    except MeterlineError as exc:
        shown += [str(exc), repr(exc)]
    for record in logs.records:
        shown.append(record.getMessage())
        if record.exc_text:
            shown.append(record.exc_text)
    return "\n".join(shown)


@pytest.mark.parametrize("url", DOWN_POSTGRES)
def test_an_unreachable_postgres_ledger(url: str, logs: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Opening, and a meter recording to, a PostgreSQL ledger that is down never show its password."""
    pytest.importorskip("psycopg")
    assert SECRET not in _shown(logs, lambda: open_ledger(url))

    def meter_on_it() -> object:
        meter = Meter(ledger=url)
        meter.record(Usage(input_tokens=1, output_tokens=1), model="gpt-4o", provider="openai")
        meter.flush(timeout=2)
        stats = meter.stats()
        meter.close()
        return stats

    assert SECRET not in _shown(logs, meter_on_it)


@pytest.mark.parametrize("url", DOWN_POSTGRES)
def test_an_unreachable_postgres_budget_store(url: str, logs: pytest.LogCaptureFixture) -> None:
    """A PostgreSQL budget store that is down never shows its password."""
    pytest.importorskip("psycopg")
    from meterline.budgets import open_budget_store

    assert SECRET not in _shown(logs, lambda: open_budget_store(url))


def test_a_postgres_conninfo_string(logs: pytest.LogCaptureFixture) -> None:
    """Stores given a libpq key=value string never show its password (in errors or repr)."""
    pytest.importorskip("psycopg")
    from meterline.budgets._postgres import PostgresBudgetStore
    from meterline.ledger._postgres import PostgresLedger

    conninfo = f"host=127.0.0.1 port=1 dbname=usage user=app password={SECRET}"
    assert SECRET not in _shown(logs, lambda: PostgresLedger(conninfo))
    assert SECRET not in _shown(logs, lambda: open_ledger(conninfo))  # a server, not a file
    assert SECRET not in _shown(logs, lambda: PostgresBudgetStore(conninfo))
    broken = f"host=127.0.0.1 port=1 password='{SECRET}"  # unterminated: libpq quotes it back
    assert SECRET not in _shown(logs, lambda: PostgresLedger(broken))


@pytest.mark.parametrize("url", DOWN_REDIS)
def test_an_unreachable_redis_budget_store(url: str, logs: pytest.LogCaptureFixture) -> None:
    """A Redis budget store that is down never shows its password."""
    pytest.importorskip("redis")
    from meterline.budgets import open_budget_store

    assert SECRET not in _shown(logs, lambda: open_budget_store(url))


@pytest.mark.parametrize(
    "url",
    [f"mysql://app:{SECRET}@db/usage", f"ftp://db/usage?token={SECRET}", f"nope://u:{SECRET}@h:99999999/x"],
)
def test_an_unknown_scheme(url: str, logs: pytest.LogCaptureFixture) -> None:
    """A URL of an unknown scheme is refused without its secret, by the ledger and the budget store."""
    from meterline.budgets import open_budget_store

    assert SECRET not in _shown(logs, lambda: open_ledger(url))
    assert SECRET not in _shown(logs, lambda: open_budget_store(url))


def test_a_failing_billing_endpoint(logs: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A billing sink whose endpoint is down, or refuses, never shows the key in its URL."""
    url = f"http://user:{SECRET}@127.0.0.1:1/events?api_key={SECRET}"

    def sink_to_it() -> object:
        meter = Meter()
        sink = BillingSink(
            url, CloudEvents(source="//meterline/test"), spool_dir=tmp_path / "spool", retry_max=0.2
        )
        sink.attach(meter)
        meter.record(Usage(input_tokens=1, output_tokens=1), model="gpt-4o", provider="openai")
        sink.flush(1.0)
        sink.close(0.5)
        return sink

    shown = _shown(logs, sink_to_it)
    assert "127.0.0.1:1" in shown  # the endpoint is named, and it failed
    assert SECRET not in shown
