"""Fixtures for the SDK instrumentation: a local API server, a meter that keeps its events."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import openai
import pytest

import meterline
from tests.instrument.server import FakeAPI, serve


class Recorded:
    """A meter and every event it recorded, in order."""

    def __init__(self) -> None:
        self.meter = meterline.Meter()
        self.events: list[meterline.UsageEvent] = []
        self.meter.subscribe(self.events.append)

    @property
    def only(self) -> meterline.UsageEvent:
        """The one event recorded (fails when there are more or none)."""
        assert len(self.events) == 1, self.events
        return self.events[0]


@pytest.fixture(scope="session", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Move what is alive now (the SDKs' modules and types) out of the collector's sight.

    The tests collect garbage to settle abandoned streams; with the SDKs imported, a full
    collection walks some 200,000 objects (about 0.25 s), and the suite collects after
    every test. Frozen objects are still freed by reference counting; only cycles among them
    wait for the end of the session.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    """A scripted API server on 127.0.0.1."""
    server, fake = serve()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(api: FakeAPI, rec: Recorded) -> Iterator[openai.OpenAI]:
    """An instrumented OpenAI client of the local server (modules of the other SDKs have their own)."""
    with openai.OpenAI(api_key="k", base_url=f"{api.url}/v1", max_retries=0) as sdk_client:
        yield meterline.instrument(sdk_client, rec.meter)


@pytest.fixture
def rec() -> Iterator[Recorded]:
    """A fresh meter whose events are kept; streams left open by a test are collected after it."""
    recorded = Recorded()
    yield recorded
    gc.collect()
    assert recorded.meter.stats().machinery_errors == 0
