"""A ledger report's query written as text: ages and dates, dimension lists, filters.

The command line (``meterline report --since 7d --by user,model --where org=acme``) and the
dashboard's JSON API (``/api/report?since=7d&by=user,model&where=org=acme``) read the same
text the same way, so the same query gives the same rows in both.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from meterline._dimensions import check_names
from meterline.exceptions import ConfigurationError

__all__ = ["parse_by", "parse_when", "parse_where"]

_AGE: Final = re.compile(r"(\d{1,6})\s*([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_TEXT: Final = 1024
"""The longest query text read (a filter holds at most one 256-byte value and its name)."""


def _bounded(text: object, what: str) -> str:
    if type(text) is not str or len(text) > MAX_TEXT:
        shown = repr(text) if type(text) is not str else repr(text[:40]) + "…"
        raise ConfigurationError(f"{what} {shown}: expected text of at most {MAX_TEXT} characters")
    return text


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """Parse ``7d``/``12h``/``30m``/``45s``/``2w`` (that long ago) or an ISO 8601 date or date-time.

    A date-time without a zone is UTC.

    Raises:
        ConfigurationError: naming the text and the accepted forms.
    """
    text = _bounded(text, "time").strip()
    match = _AGE.fullmatch(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        try:
            return (now or datetime.now(tz=UTC)) - delta
        except OverflowError:
            raise ConfigurationError(f"time {text!r}: that long ago is before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"time {text!r}: expected an age such as 7d, 12h or 30m, or an ISO 8601 date or date-time"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_by(text: str) -> tuple[str, ...]:
    """Names separated by commas (``model,agent``): event fields or dimension names.

    Raises:
        ConfigurationError: on an empty list or a name that is not a lower-case identifier.
    """
    names = tuple(name.strip() for name in _bounded(text, "dimensions").split(",") if name.strip())
    if not names:
        raise ConfigurationError(f"dimensions {text!r}: expected names separated by commas, e.g. model,agent")
    check_names(names, "by")
    return names


def parse_where(texts: Iterable[str]) -> dict[str, str | tuple[str | None, ...] | None]:
    """Filters ``NAME=VALUE`` (events whose NAME is VALUE) or ``NAME`` (events without NAME).

    A name given more than once keeps events with any of its values. The value is taken as
    written (it may hold ``=`` or be empty).

    Returns:
        The ``where`` mapping `meterline.ledger.LedgerBackend.totals` takes.

    Raises:
        ConfigurationError: on a name that is not a lower-case identifier.
    """
    values: dict[str, list[str | None]] = {}
    for text in texts:
        name, equals, value = _bounded(text, "filter").partition("=")
        check_names((name.strip(),), "where")
        values.setdefault(name.strip(), []).append(value if equals else None)
    return {name: found[0] if len(found) == 1 else tuple(found) for name, found in values.items()}
