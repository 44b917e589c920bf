"""Specification of `meterline._cli._dashboard`: ``meterline serve`` serves a ledger, safely by default."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from meterline import Meter, Usage
from meterline._cli import main
from tests.cli.console import run

pytest.importorskip("fastapi", reason="the dashboard extra is not installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_answers_with_the_ledger_s_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`meterline serve --ledger URL` serves the pages and the API over that ledger until stopped."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    meter = Meter(url)
    with meter.scope(user="alice"):
        meter.record(Usage(input_tokens=1000, output_tokens=100), model="gpt-4o", provider="openai")
    meter.close()
    port = _free_port()
    env = {**os.environ, "METERLINE_DASHBOARD_TOKEN": ""}
    server = subprocess.Popen(
        [sys.executable, "-m", "meterline", "serve", "--ledger", url, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/report", params={"by": "user"}, timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "the dashboard exited"
                assert time.monotonic() < deadline, "the dashboard did not start in 20 s"
                time.sleep(0.1)
        assert main(["report", "--ledger", url, "--by", "user", "--format", "json"]) == 0
        assert answer.json() == json.loads(capsys.readouterr().out)
        assert 'data-page="overview"' in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert f"on http://127.0.0.1:{port}/" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "--token"),
        (["--host", "192.168.1.10", "--token", "short"], "16 characters"),
    ],
)
def test_serve_refuses_an_open_address_without_a_token(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    """Binding anything but loopback needs a token of at least 16 characters: refused with status 2."""
    monkeypatch.delenv("METERLINE_DASHBOARD_TOKEN", raising=False)
    status, _, err = run(capsys, "serve", "--ledger", f"sqlite:///{tmp_path / 'l.db'}", "--port", "0", *argv)
    assert status == 2
    assert message in err


def test_serve_needs_a_ledger(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --ledger or $METERLINE_LEDGER, serve says what to give."""
    monkeypatch.delenv("METERLINE_LEDGER", raising=False)
    status, _, err = run(capsys, "serve")
    assert status == 2
    assert "--ledger" in err
