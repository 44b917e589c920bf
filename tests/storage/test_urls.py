"""Store URLs as meterline shows them never carry a password; a conninfo string is no file path."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline._storage import (
    is_conninfo,
    postgres_driver_url,
    postgres_public_url,
    redact,
    scrub,
    secrets_in,
)
from meterline.exceptions import ConfigurationError
from tests.ledger.services import require_postgres


def test_passwords_are_redacted() -> None:
    """A store URL shown in messages never carries its password; one without stays as it is."""
    assert (
        redact("postgresql://app:s3cret@db.internal/metering") == "postgresql://app:***@db.internal/metering"
    )
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("sqlite:///usage.db") == "sqlite:///usage.db"


def test_postgres_public_url_has_no_password() -> None:
    """The public URL drops the password, in the authority or as a parameter, and keeps the rest."""
    pytest.importorskip("psycopg")
    assert postgres_public_url("postgresql://app:pw@db:5433/usage?sslmode=require") == (
        "postgresql://app@db:5433/usage?sslmode=require"
    )
    assert postgres_public_url("postgresql://db/usage?password=pw&application_name=x") == (
        "postgresql://db/usage?application_name=x"
    )
    assert postgres_public_url("postgresql+psycopg://app:pw@db/usage") == "postgresql://app@db/usage"
    assert "pw" not in postgres_public_url("host=db dbname=usage password=pw")
    assert postgres_public_url("host='unterminated password=pw") == "postgresql://?"


def test_driver_url_drops_the_dialect() -> None:
    """A SQLAlchemy-style postgresql+psycopg:// URL is given to libpq as postgresql://."""
    assert postgres_driver_url("postgresql+psycopg://app@db/usage") == "postgresql://app@db/usage"
    assert postgres_driver_url("postgresql://app@db/usage") == "postgresql://app@db/usage"


@pytest.mark.parametrize("url", ["", "   ", None, 5, b"postgresql://db"])
def test_driver_url_refuses_a_non_url(url: object) -> None:
    """A blank or non-string URL is refused, naming the value."""
    with pytest.raises(ConfigurationError, match="url="):
        postgres_driver_url(url)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://db/x?sslmode=require&password=pw", "postgresql://db/x?sslmode=require&password=***"),
        (
            "https://h/v1/events?API_KEY=k1&x=1&access-token=t",
            "https://h/v1/events?API_KEY=***&x=1&access-token=***",
        ),
        ("host=db port=5432 password=pw dbname=x", "host=db port=5432 password=*** dbname=x"),
        ("host=db password = 'p w\\' q' dbname=x", "host=db password = *** dbname=x"),
        ("https://u:p%40ss@h/x", "https://u:***@h/x"),
        ("sqlite:///usage.db", "sqlite:///usage.db"),
        ("nope://u:pw@h:99999999/x", "nope://u:***@h:99999999/x"),
    ],
)
def test_every_kind_of_secret_is_redacted(url: str, shown: str) -> None:
    """Authority passwords, secret query parameters (any case) and conninfo secrets become ***."""
    assert redact(url) == shown


def test_driver_texts_are_scrubbed_of_the_urls_secrets() -> None:
    """A driver's message that repeats a secret of its URL (raw or percent-decoded) loses it."""
    url = "postgresql://app:p%40ss@db/x?token=t0k3n"
    assert set(secrets_in(url)) == {"p%40ss", "p@ss", "t0k3n"}
    assert scrub("bad password p@ss, token t0k3n", url) == "bad password ***, token ***"
    assert scrub("nothing secret", "sqlite:///usage.db") == "nothing secret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=db dbname=usage", True),
        ("  dbname = usage", True),
        ("postgresql://u@h/db?options=-c%20x=y", False),
        ("usage.db", False),
        ("/var/lib/usage.db", False),
        ("sqlite:///a=b.db", False),
        ("", False),
    ],
)
def test_a_conninfo_string_is_told_from_a_path(text: str, expected: bool) -> None:
    """Libpq key=value strings are recognised; URLs and file paths are not."""
    assert is_conninfo(text) is expected


def test_open_ledger_and_budget_store_take_a_conninfo_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conninfo string opens PostgreSQL; no file named after it is created."""
    url = require_postgres()
    from urllib.parse import urlsplit

    from meterline.budgets import open_budget_store
    from meterline.ledger import open_ledger

    parts = urlsplit(url)
    conninfo = f"host={parts.hostname} port={parts.port or 5432} dbname={parts.path.lstrip('/')}"
    if parts.username:
        conninfo += f" user={parts.username}"
    monkeypatch.chdir(tmp_path)
    ledger = open_ledger(conninfo)
    store = open_budget_store(conninfo)
    try:
        assert type(ledger).__name__ == "PostgresLedger"
        assert type(store).__name__ == "PostgresBudgetStore"
        assert ledger.stats().schema_version > 0
    finally:
        ledger.close()
        store.close()
    assert list(tmp_path.iterdir()) == []
