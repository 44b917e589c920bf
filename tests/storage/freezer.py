"""A TCP relay in front of a real server that can freeze it: connected, acknowledged, silent.

What a client sees of a frozen relay is what it sees of a server stopped with ``SIGSTOP``,
a paused VM or a partition that drops packets: the kernel still accepts the connection and
acknowledges every byte, and no answer ever comes. The relay reads what each side sends and
holds it while frozen, so the real server, shared by the other tests, is never stopped.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit


class Freezer:
    """Relays ``127.0.0.1:<port>`` to ``target``; `freeze` stops relaying, `thaw` resumes it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (of the real server) pointed at the relay instead."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def freeze(self) -> None:
        """From now on, hold every byte in both directions (new connections included)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Relay again, what was held first."""
        self._flowing.set()

    def drop(self) -> None:
        """Close every open connection, as a server restart does (new ones are relayed as before)."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop relaying and close every connection."""
        self._closed = True
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextmanager
def frozen_relay(url: str, default_port: int) -> Iterator[Freezer]:
    """A `Freezer` in front of the server of ``url``, closed afterwards."""
    parts = urlsplit(url)
    freezer = Freezer((parts.hostname or "127.0.0.1", parts.port or default_port))
    try:
        yield freezer
    finally:
        freezer.close()
