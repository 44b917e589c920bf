"""A real HTTP endpoint on 127.0.0.1 that records what it receives and fails on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Endpoint:
    """What the server received, and how it answers next.

    ``failures`` requests are answered ``fail_status`` (and not recorded as delivered) before
    the endpoint recovers; ``status`` answers every later request.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.batches: list[Any] = []
        self.content_types: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.failures = 0
        self.fail_status = 503
        self.status = 202
        self.attempts = 0
        self.successes_left: int | None = None
        """When set, the endpoint acknowledges this many more batches, then fails (``fail_status``)."""
        self.release = threading.Event()
        """Requests wait until this is set (it is, unless a test clears it to hold them)."""
        self.release.set()

    def documents(self) -> list[dict[str, Any]]:
        """Every document acknowledged, in arrival order (CloudEvents arrays, Stripe ``events``)."""
        with self.lock:
            out: list[dict[str, Any]] = []
            for batch in self.batches:
                out.extend(batch["events"] if isinstance(batch, dict) else batch)
            return out


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A local billing endpoint; answers 202 and records every acknowledged batch."""
    state: Endpoint

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.release.wait(30)
            with state.lock:
                state.attempts += 1
                if state.failures > 0 or state.successes_left == 0:
                    state.failures = max(state.failures - 1, 0)
                    status = state.fail_status
                else:
                    status = state.status
                    if status < 300:
                        if state.successes_left is not None:
                            state.successes_left -= 1
                        state.batches.append(json.loads(body))
                        state.content_types.append(self.headers["Content-Type"])
                        state.headers.append(dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Endpoint(f"http://127.0.0.1:{server.server_port}/api/v1/events")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
