"""One event the ledger cannot store never stops the rest: it is dead-lettered with its reason."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from meterline import Meter, Usage, UsageEvent
from meterline._delivery import Spool
from meterline.ledger._sqlite import SQLiteLedger
from meterline.ledger._writer import LedgerWriter
from tests.cli.console import run

USAGE = Usage(input_tokens=10, output_tokens=5)


def _events(meter: Meter, count: int, model: str = "gpt-4o-mini") -> list[UsageEvent]:
    return [meter.record(USAGE, model=model, provider="openai") for _ in range(count)]


def _poison(meter: Meter) -> list[UsageEvent]:
    """Hand-made events no store can keep (record() refuses them): a lone surrogate, a huge cost."""
    priced = meter.record(USAGE, model="gpt-4o-mini", provider="openai")
    surrogate = UsageEvent.from_dict({**priced.to_dict(), "id": priced.id + "s", "response_id": "r-\ud800"})
    huge = UsageEvent.from_dict({**priced.to_dict(), "id": priced.id + "x", "cost": str(Decimal("1e10"))})
    return [surrogate, huge]


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    """A fresh SQLite ledger."""
    return SQLiteLedger(tmp_path / "usage.db")


def test_a_poison_event_is_dead_lettered_and_the_rest_stored(
    ledger: SQLiteLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch with two unstorable events: the ten others are stored, the two kept with their reasons."""
    meter = Meter()
    events = _events(meter, 5) + _poison(meter) + _events(meter, 5)
    writer = LedgerWriter(ledger, spool=Spool(tmp_path / "spool"), batch_size=100)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        for event in events:
            writer.submit(event)
        assert writer.flush(timeout=10)
    stats = writer.stats()
    writer.close()
    assert ledger.stats().events == 10
    assert (stats.committed, stats.rejected, stats.spooled, stats.lost) == (10, 2, 0, 0)
    letters = list(writer.dead_letters)
    assert [letter.event.id for letter in letters] == [event.id for event in events[5:7]]
    assert all(letter.reason for letter in letters)
    assert "meterline ledger dead-letters" in caplog.text
    assert not writer.spool.segments()


def test_a_spool_with_a_poison_event_replays_the_rest(ledger: SQLiteLedger, tmp_path: Path) -> None:
    """A spool an earlier run left, with an unstorable event in it, replays every other event."""
    meter = Meter()
    events = _events(meter, 20) + _poison(meter)[1:] + _events(meter, 20)  # a cost past 64 bits
    spool = Spool(tmp_path / "spool")
    spool.append(events)
    spool.close()
    writer = LedgerWriter(ledger, spool=Spool(tmp_path / "spool"), flush_interval=0.05)
    writer.submit(_events(meter, 1)[0])  # starts the thread, which replays the spool
    assert writer.flush(timeout=10)
    for _ in range(200):
        if not writer.spool.segments():
            break
        writer.flush(timeout=0.1)
    writer.close()
    assert ledger.stats().events == 41
    assert not writer.spool.segments()
    assert [letter.event.id for letter in writer.dead_letters] == [events[20].id]


def test_a_ledger_that_is_down_spools_and_dead_letters_nothing(tmp_path: Path) -> None:
    """When the ledger takes nothing and answers nothing, the batch is spooled whole: not its fault."""
    ledger = SQLiteLedger(tmp_path / "usage.db")
    ledger.close()  # every call now raises LedgerError
    writer = LedgerWriter(ledger, spool=Spool(tmp_path / "spool"), durability="sync")
    meter = Meter()
    for event in _events(meter, 3):
        writer.submit(event)
    stats = writer.stats()
    writer.close()
    assert (stats.spooled, stats.rejected) == (3, 0)
    assert len(writer.dead_letters) == 0


def test_dead_letters_are_listed_and_retried(
    ledger: SQLiteLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command lists the dead letters with their reasons; --retry keeps those still refused."""
    monkeypatch.setenv("METERLINE_SPOOL_DIR", str(tmp_path / "spools"))
    url = f"sqlite:///{ledger.path}"
    meter = Meter()
    surrogate, _huge = _poison(meter)
    good = _events(meter, 2)
    writer = LedgerWriter(ledger)  # the ledger's own spool, where the command looks
    for event in [surrogate, *good]:
        writer.submit(event)
    assert writer.flush(timeout=10)
    assert writer.stats().rejected == 1
    writer.close()
    status, out, _ = run(capsys, "ledger", "dead-letters", "--ledger", url)
    assert status == 1
    assert surrogate.id in out
    assert "1 event" in out
    status, out, _ = run(capsys, "ledger", "dead-letters", "--ledger", url, "--retry")
    assert status == 1  # still refused: kept, with the latest reason
    assert "retried: 0 written" in out
    assert len(writer.dead_letters) == 1
    assert ledger.stats().events == len(good)


@pytest.mark.services
def test_postgres_dead_letters_a_value_it_cannot_take(tmp_path: Path) -> None:
    """On PostgreSQL too, an event with a lone surrogate is refused as a LedgerError and dead-lettered."""
    import uuid

    from meterline.ledger._postgres import PostgresLedger
    from tests.ledger.services import require_postgres

    psycopg = pytest.importorskip("psycopg")
    url = require_postgres()
    schema = f"meterline_test_{uuid.uuid4().hex[:12]}"
    ledger = PostgresLedger(url, schema=schema)
    try:
        meter = Meter()
        events = _events(meter, 3) + _poison(meter)[:1] + _events(meter, 3)
        writer = LedgerWriter(ledger, spool=Spool(tmp_path / "spool"), batch_size=100)
        for event in events:
            writer.submit(event)
        assert writer.flush(timeout=10)
        writer.close()
        assert ledger.stats().events == 6
        assert [letter.event.id for letter in writer.dead_letters] == [events[3].id]
    finally:
        ledger.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
