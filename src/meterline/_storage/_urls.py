"""URLs as meterline shows them: never with a password or a secret.

The one redaction: every message, log line, stats value and ``repr`` that names a store or an
endpoint shows it through `redact`, and a driver's error text is `scrub`-bed of the secrets
its URL held, so a password given in a URL (its authority, a query parameter, a conninfo
``key=value``) reaches no log.
"""

from __future__ import annotations as _annotations

import re
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from meterline.exceptions import ConfigurationError, safe_repr

__all__ = [
    "SECRET_KEYS",
    "check_url",
    "is_conninfo",
    "postgres_driver_url",
    "postgres_public_url",
    "redact",
    "scrub",
    "secrets_in",
]

SECRET_KEYS: Final = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "sslpassword",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "auth_token",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "key",
        "auth",
        "signature",
        "sig",
    }
)
"""Names (any case, ``-`` read as ``_``) of query parameters and conninfo keys whose values are secret."""

_HIDDEN: Final = "***"
_CONNINFO_PAIR: Final = re.compile(r"""([A-Za-z_][\w-]*)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']*)""")
"""``key = value`` in a libpq conninfo string; a value is single-quoted (``\\'`` inside) or a word."""


def _secret(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in SECRET_KEYS


def redact(url: str) -> str:
    """``url`` as it may be shown: every password and secret replaced by ``***``.

    Hides the password of a URL's authority (``postgresql://app:***@db/x``,
    ``redis://:***@cache:6379/0``), the value of every query parameter named like a secret
    (`SECRET_KEYS`: ``?password=***``, ``&api_key=***``…), and, in a ``key=value`` conninfo
    string (``host=db password=*** dbname=x``), the value of every such key. Text that is
    neither is returned unchanged.
    """
    if "://" not in url:
        return _CONNINFO_PAIR.sub(lambda m: m[1] + m[2] + _HIDDEN if _secret(m[1]) else m[0], url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed authority (a bad port…): hide everything after the scheme
        return url.split("://", 1)[0] + "://" + _HIDDEN
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{_HIDDEN}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_secret(name) for name, _ in pairs):
        query = urlencode([(name, _HIDDEN if _secret(name) else value) for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to hide: as given (urlunsplit would rewrite sqlite:/// as sqlite:/)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def secrets_in(url: str) -> tuple[str, ...]:
    """The secret values ``url`` holds (what `redact` hides), longest first, to `scrub` text of them."""
    found: list[str] = []
    if "://" not in url:
        for match in _CONNINFO_PAIR.finditer(url):
            if _secret(match[1]):
                value = match[3]
                if value.startswith("'") and value.endswith("'") and len(value) >= 2:
                    found += [value, value[1:-1]]
                else:
                    found.append(value)
    else:
        try:
            parts = urlsplit(url)
            password = parts.password
        except ValueError:
            return (url,)
        if password:
            found += [password, unquote(password)]
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if _secret(name):
                found.append(value)
        for raw in parts.query.split("&"):
            name, _, value = raw.partition("=")
            if _secret(name):
                found.append(value)
    return tuple(sorted({value for value in found if value}, key=len, reverse=True))


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) without any secret ``url`` holds."""
    for secret in secrets_in(url):
        text = text.replace(secret, _HIDDEN)
    return text


_CONNINFO_START: Final = re.compile(r"\s*[a-z_]+\s*=")


def is_conninfo(text: str) -> bool:
    """Whether ``text`` is a libpq ``key=value`` string (``host=db dbname=usage``), not a path.

    A URL has a scheme (``postgresql://``) and a file path does not start with ``word=``: such a
    string used to be taken for a SQLite file name, and a file named after the connection
    string, password included, was created in the working directory.
    """
    return "://" not in text and _CONNINFO_START.match(text) is not None


def postgres_driver_url(url: str) -> str:
    """``url`` as libpq takes it (``postgresql+psycopg://`` becomes ``postgresql://``).

    Raises:
        ConfigurationError: when ``url`` is not a non-blank string.
    """
    if type(url) is not str or not url.strip():
        raise ConfigurationError(f"url={url!r}: expected postgresql://user@host/database")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().startswith("postgresql+"):
        return "postgresql://" + rest
    return url


def postgres_public_url(url: str) -> str:
    """A PostgreSQL ``url`` without its password (in the authority or a ``password`` parameter).

    A ``key=value`` conninfo string loses its ``password`` key (parsed by psycopg, which the
    caller has loaded); one that cannot be parsed is hidden whole.
    """
    url = postgres_driver_url(url)
    if "://" not in url:  # a key=value conninfo string
        from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415 - extra loaded

        try:
            params = conninfo_to_dict(url)
        except Exception:  # noqa: BLE001 - an unparsable string is reported by connect; hide it all
            return "postgresql://?"
        return make_conninfo("", **{name: value for name, value in params.items() if not _secret(name)})
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _secret(k)])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def check_url(url: object) -> str:
    """``url`` if it is an ``http`` or ``https`` URL with a host.

    Raises:
        ConfigurationError: naming the URL (any password in it replaced by ``***``).
    """
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            return url
        shown = redact(url)
    else:
        shown = safe_repr(url)
    raise ConfigurationError(f"url={shown!r}: expected an http:// or https:// URL with a host")
