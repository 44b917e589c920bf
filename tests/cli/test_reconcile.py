"""``meterline reconcile``: a table or JSON of the differences, and an exit status for CI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.console import run
from tests.reconcile.server import AdminAPI, Line, serve
from tests.reconcile.test_compare import DAY1, DAYS, MODEL, _ledger, _provider_lines


@pytest.fixture
def api() -> Iterator[AdminAPI]:
    """The fake admin API, on a free port."""
    yield from serve(AdminAPI())


def _args(tmp_path: Path, api: AdminAPI, *extra: str) -> tuple[str, ...]:
    return (
        "reconcile",
        "--provider",
        "openai",
        "--since",
        DAY1.isoformat(),
        "--until",
        (DAYS[-1] + timedelta(hours=1)).isoformat(),
        "--ledger",
        f"sqlite:///{tmp_path / 'ledger.db'}",
        "--api-base",
        api.url,
        *extra,
    )


def test_agreement_exits_0_and_differences_exit_1(
    api: AdminAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same numbers: status 0; a missed call: status 1 and a table naming the day and model."""
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-do-not-print")
    _ledger(tmp_path, "openai", MODEL).close()
    api.lines = _provider_lines(MODEL)
    status, out, err = run(capsys, *_args(tmp_path, api))
    assert (status, err) == (0, "")
    assert "The ledger agrees with the provider." in out
    api.lines.append(Line(DAYS[0].date(), "o3-2025-04-16", 5000, 900, requests=1, cost=Decimal("0.5")))
    status, out, err = run(capsys, *_args(tmp_path, api))
    assert status == 1
    assert "2 differences" in out
    assert "o3-2025-04-16" in out
    assert "missing in the ledger" in out
    assert "sk-admin" not in out + err
    status, out, _ = run(capsys, *_args(tmp_path, api, "--format", "json"))
    document = json.loads(out)
    assert status == 1
    assert document["agrees"] is False
    assert [d["issues"] for d in document["differences"]] == [["missing in the ledger"], ["cost"]]
    assert document["differences"][0]["provider"] == {
        "input_tokens": 5000,
        "output_tokens": 900,
        "cache_read_tokens": 0,
        "requests": 1,
    }


def test_without_an_admin_key_it_names_the_variable(
    api: AdminAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key: status 2 and the variable to set; a refused key: status 2 and the HTTP status."""
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    _ledger(tmp_path, "openai", MODEL).close()
    status, _, err = run(capsys, *_args(tmp_path, api))
    assert status == 2
    assert "$OPENAI_ADMIN_KEY" in err
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-do-not-print")
    api.fail_with = 403
    status, _, err = run(capsys, *_args(tmp_path, api))
    assert status == 2
    assert "HTTP 403" in err
    assert "sk-admin" not in err
    status, _, err = run(capsys, *_args(tmp_path, api, "--scope-dimension", "Bad Name"))
    assert status == 2
    assert "'Bad Name'" in err
