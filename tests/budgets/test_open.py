"""`open_budget_store` turns a URL into the right store, and refuses anything else by name."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from meterline.budgets import (
    MemoryBudgetStore,
    PostgresBudgetStore,
    RedisBudgetStore,
    SQLiteBudgetStore,
    open_budget_store,
)
from meterline.exceptions import ConfigurationError, MissingExtraError
from tests.budgets.conformance import NOW, line, vec
from tests.ledger.services import require_postgres, require_redis


@pytest.mark.parametrize("url", [None, "memory://", "MEMORY://"])
def test_memory(url: str | None) -> None:
    """No URL, or memory://, gives a new in-memory store each time."""
    store = open_budget_store(url)
    assert type(store) is MemoryBudgetStore
    assert store is not open_budget_store(url)


def test_a_store_passes_through() -> None:
    """A store instance is returned unchanged."""
    store = MemoryBudgetStore()
    assert open_budget_store(store) is store


def test_sqlite_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///rel.db is relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    store = open_budget_store("sqlite:///rel.db")
    assert isinstance(store, SQLiteBudgetStore)
    assert store.path == tmp_path / "rel.db"
    assert (tmp_path / "rel.db").exists()
    store.close()


@pytest.mark.parametrize("form", ["sqlite:///{}", "{}", "path"])
def test_sqlite_absolute_and_plain_paths(tmp_path: Path, form: str) -> None:
    """sqlite:////abs.db, a plain path string and a Path open the same file."""
    target = tmp_path / "abs.db"
    url = target if form == "path" else form.format(target)
    store = open_budget_store(url)
    assert isinstance(store, SQLiteBudgetStore)
    assert store.path == target
    assert store.url == f"sqlite:///{target}"
    store.close()


def test_postgres() -> None:
    """postgresql://… opens a PostgreSQL store."""
    store = open_budget_store(require_postgres())
    assert isinstance(store, PostgresBudgetStore)
    store.settle(None, [line(f"open-{uuid.uuid4().hex}")], [vec(1)], NOW)
    store.close()


def test_redis() -> None:
    """redis://… opens a Redis store."""
    store = open_budget_store(require_redis())
    assert isinstance(store, RedisBudgetStore)
    assert store.prefix == "meterline"
    store.close()


def test_missing_extra_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py installed, a redis:// URL names the extra that adds it."""
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingExtraError, match=r"meterline\[redis\]"):
        open_budget_store("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com", "unknown scheme 'http'"),
        ("mysql://user:hunter2@db/x", "unknown scheme 'mysql'"),
        ("sqlite://rel.db", "three slashes"),
        ("sqlite:///", "is a file"),
        (":memory:", "is a file"),
        ("", "expected a URL"),
        ("memory://x", "just 'memory://'"),
        (42, "expected a BudgetStore or a URL"),
    ],
)
def test_bad_urls(url: object, expected: str) -> None:
    """Unknown schemes and malformed URLs raise ConfigurationError naming the value and what was expected."""
    with pytest.raises(ConfigurationError, match=expected) as caught:
        open_budget_store(url)  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
