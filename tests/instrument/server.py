"""A scripted HTTP API on 127.0.0.1: the real SDK clients talk to it as to the provider.

Each request takes the next scripted `Reply` (or the default one) and is logged, so a test
can tell what reached the server. Streams are written with chunked transfer encoding in the
provider's own framing, and a reply can drop the connection part-way, as a failing network does.
"""

from __future__ import annotations

import json
import socket
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import meterline

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    """One fixture case from tests/fixtures (``"openai/chat_plain"``)."""
    case: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return case


def usage_of(case: dict[str, object]) -> meterline.Usage:
    """The canonical usage a fixture case expects."""
    return meterline.Usage.from_dict(case["expected"])  # type: ignore[arg-type]


def openai_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    """OpenAI chat framing: ``data: {json}`` events ending with ``data: [DONE]``."""
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def event_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    """Named-event framing (Anthropic, OpenAI Responses): ``event: type`` then ``data: {json}``."""
    return [f"event: {chunk['type']}\ndata: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]


def gemini_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    """Gemini ``?alt=sse`` framing: ``data: {json}`` with CRLF line ends."""
    return [f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks]


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    """A JSON body (non-streaming)."""
    events: list[bytes] | None = None
    """The stream's frames, each written as one chunk."""
    drop_after: int | None = None
    """Drop the connection after this many frames (no end of the chunked body)."""
    gzip: bool = False
    """Send the body gzip-encoded (a stream's frames each flushed through one compressor)."""


@dataclass
class Received:
    """One request the server got."""

    method: str
    path: str
    body: Any


@dataclass
class FakeAPI:
    """The server's script and log."""

    replies: deque[Reply] = field(default_factory=deque)
    default: Reply | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        """The next scripted reply, else the default one."""
        with self.lock:
            if self.replies:
                return self.replies.popleft()
        return self.default or Reply(status=500, body={"error": {"message": "no reply scripted"}})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms stall
    api: FakeAPI

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self.api.lock:
            self.api.received.append(Received("POST", self.path, body))
        reply = self.api.next_reply()
        packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16) if reply.gzip else None
        if reply.events is None:
            data = json.dumps(reply.body).encode()
            if packer is not None:
                data = packer.compress(data) + packer.flush()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            if packer is not None:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        if packer is not None:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, plain in enumerate(reply.events):
            frame = plain if packer is None else packer.compress(plain) + packer.flush(zlib.Z_SYNC_FLUSH)
            if reply.drop_after is not None and index >= reply.drop_after:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            self.wfile.flush()
        if packer is not None:
            tail = packer.flush()
            self.wfile.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hangs up early (a test's early close) is expected


def serve() -> tuple[ThreadingHTTPServer, FakeAPI]:
    """Start a server on a free port of 127.0.0.1 (call ``shutdown()`` and ``server_close()``)."""
    api = FakeAPI()
    handler = type("Handler", (_Handler,), {"api": api})
    server = _Server(("127.0.0.1", 0), handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, api
