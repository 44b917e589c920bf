"""Serving the dashboard: uvicorn on one address, in the foreground or on a thread of its own."""

from __future__ import annotations as _annotations

import ipaddress
import threading
import time
from typing import Final

import uvicorn

from meterline._dashboard._app import LOOPBACK_HOSTS, create_app
from meterline._dashboard._views import Views
from meterline.exceptions import ConfigurationError

__all__ = ["DashboardServer", "is_loopback"]

START_TIMEOUT: Final = 10.0
"""Seconds a background server may take to start listening."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DashboardServer:
    """The dashboard over ``views`` on ``host:port`` (port 0: any free one).

    Raises:
        ConfigurationError: when ``host`` is not a loopback address and no ``token`` is given
            (anyone who can reach the address could read the ledger), or a token is empty.
    """

    def __init__(
        self,
        views: Views,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        refresh_seconds: float = 3.0,
    ) -> None:
        if token is not None and len(token) < 16:
            raise ConfigurationError(
                "--token: expected at least 16 characters (a guessable token protects nothing)"
            )
        if token is None and not is_loopback(host):
            raise ConfigurationError(
                f"--host {host!r} is reachable from other machines: give --token (or "
                "$METERLINE_DASHBOARD_TOKEN) so that only those who hold it can read the ledger"
            )
        self.views = views
        self.host = host
        app = create_app(views, token=token, refresh_seconds=refresh_seconds)
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the dashboard answers (once started)."""
        servers = self._server.servers
        port = (
            servers[0].sockets[0].getsockname()[1]
            if servers and servers[0].sockets
            else self._server.config.port
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    def serve(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self._server.run()

    def start(self) -> str:
        """Serve on a background thread; return the URL once it listens.

        Raises:
            ConfigurationError: when it could not listen in time (the port taken, say).
        """
        self._thread = threading.Thread(target=self._server.run, name="meterline-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the dashboard could not listen on {self.host}:{self._server.config.port}"
                )
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        """Stop a background server and wait for it. Idempotent."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
