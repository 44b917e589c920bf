"""Fixtures for the framework integrations: the instrumentation tests' local API server and meter."""

from tests.instrument.conftest import Recorded, _frozen_heap, api, rec

__all__ = ["Recorded", "_frozen_heap", "api", "rec"]
