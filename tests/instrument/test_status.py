"""A call's status: ok, cancelled, the HTTP code when the API answered, else the error's name."""

from __future__ import annotations

import asyncio

import pytest

from meterline._instrument._status import CANCELLED, status_of


class _HTTPError(Exception):
    def __init__(self, code: object) -> None:
        super().__init__("failed")
        self.status_code = code


@pytest.mark.parametrize("stop", [asyncio.CancelledError(), KeyboardInterrupt(), GeneratorExit()])
def test_a_stopped_call_is_cancelled(stop: BaseException) -> None:
    """What the application raises to stop a call gives the cancelled status."""
    assert status_of(stop) == CANCELLED


def test_an_answered_call_has_its_http_code() -> None:
    """An error carrying an HTTP status code (100-599) has that code as its status."""
    assert status_of(_HTTPError(429)) == "429"
    assert status_of(_HTTPError(503)) == "503"


@pytest.mark.parametrize("code", [None, 42, 600, "429", True])
def test_anything_else_is_named_by_its_class(code: object) -> None:
    """Without a valid HTTP code, the status is the error's class name (as OpenTelemetry's error.type)."""
    assert status_of(_HTTPError(code)) == "_HTTPError"
    assert status_of(ConnectionError()) == "ConnectionError"
