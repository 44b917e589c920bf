"""Dimensions: the names and values that attribute an event (``user="u1"``, ``agent="planner"``).

Scopes and tags set them; `Meter.totals`, the ledgers' reports and budgets group and filter by
them. One rule for every name, checked before use: a lower-case identifier. That is what
lets the ledgers put a name in SQL from a whitelist, never from the user's text.

One contract for every text an event holds, derived from what every store can keep: UTF-8
text (no lone surrogates), at most `MAX_TEXT_BYTES` per value, and at most
`MAX_DIMENSIONS_BYTES` for all of an event's dimensions together. The tightest store is
PostgreSQL, whose index entries hold at most 2,704 bytes: the ledger's roll-up key is an
event's hour, operation, status, provider, model and dimensions, and a budget counter's key
is its budget's name and the values of its ``per`` dimensions. Within these limits every
value `Meter.record` accepts can be stored and indexed by every store; past them it is
refused before anything is counted. A longer value (a title, a URL) should be hashed by the
caller, its full text kept elsewhere.
"""

from __future__ import annotations as _annotations

import json as _json
import re
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii as _escape
from typing import Final, NoReturn

from meterline.exceptions import ConfigurationError

__all__ = [
    "DIMENSION_NAME",
    "EMPTY_DIMENSIONS",
    "EVENT_FIELDS",
    "MAX_DIMENSIONS_BYTES",
    "MAX_TEXT_BYTES",
    "Dimensions",
    "check_dimensions",
    "check_names",
    "check_size",
    "check_text",
    "dimensions_json",
    "where_filters",
]

DIMENSION_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A dimension name (and any name used to group or filter): a lower-case identifier.

Names are checked against it before use, and never put in SQL text by the ledgers."""

EVENT_FIELDS: Final = ("operation", "status", "provider", "model")
"""Event fields that totals and reports group and filter by, besides the dimensions.

They are not dimensions: a scope or tag may not use their names."""

MAX_TEXT_BYTES: Final = 256
"""The longest text value an event may hold (a model, a status, an id, a dimension's value), in
UTF-8 bytes: 256 ASCII characters, or 64 characters of four bytes each."""
MAX_DIMENSIONS_BYTES: Final = 1536
"""The most an event's dimensions may take together as stored (their compact JSON, where a
character past ASCII is escaped), in bytes."""

_RESERVED: Final = frozenset(EVENT_FIELDS)
_IDENTIFIER: Final = "a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)"
_NAMES_SEEN: Final[set[str]] = set()
"""Dimension names `check_dimensions` found good: a program uses a few, on every call (a
call's tags are checked each time), and a set lookup costs a tenth of the pattern's match."""
_MAX_NAMES_SEEN: Final = 1024


def check_names(names: Sequence[str], argument: str) -> tuple[str, ...]:
    """Check ``names`` (event fields or dimension names) given as ``argument``.

    Raises:
        ConfigurationError: on a bare string (``by="user"``) or a name that is not a
            lower-case identifier.
    """
    if isinstance(names, str):
        raise ConfigurationError(
            f"{argument}={names!r}: expected a tuple of names, e.g. {argument}=({names!r},)"
        )
    for name in names:
        if type(name) is not str or not DIMENSION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"{argument}: {name!r}: expected an event field or a dimension name ({_IDENTIFIER})"
            )
    return tuple(names)


def where_filters(where: Mapping[str, object] | None) -> dict[str, frozenset[object]]:
    """``where`` as name -> allowed values: one value, or any of a set, list or tuple.

    ``None`` matches events without the dimension (or without a provider or model).

    Raises:
        ConfigurationError: on a name that is not a lower-case identifier.
    """
    if not where:
        return {}
    check_names(tuple(where), "where")
    return {
        name: frozenset(value) if isinstance(value, set | frozenset | list | tuple) else frozenset((value,))
        for name, value in where.items()
    }


def check_dimensions(dims: Mapping[str, object], what: str) -> dict[str, str]:
    """Check dimension names (identifiers, never event fields) and turn int values into str.

    Args:
        dims: The dimensions as given (a scope's keywords, a call's tags).
        what: What to call them in an error (``"scope dimension"``, ``"tag"``).

    Raises:
        ConfigurationError: on a bad name, an event field's name, or a value that is not a
            str or an int.
    """
    checked: dict[str, str] = {}
    for name, value in dims.items():
        if type(name) is not str or name not in _NAMES_SEEN:
            _check_dimension_name(name, what)
        if type(value) is str:
            if not value.isascii() or len(value) > MAX_TEXT_BYTES:  # `check_text`'s common case, inline
                check_text(value, f"{what} {name}")
            checked[name] = value
        elif type(value) is int:
            checked[name] = str(value)
        else:
            raise ConfigurationError(f"{what} {name}={value!r}: expected a str (or an int)")
    return checked


def _check_dimension_name(name: object, what: str) -> None:
    """Check one dimension name; a good one is remembered (`_NAMES_SEEN`)."""
    if type(name) is not str or not DIMENSION_NAME.fullmatch(name):
        raise ConfigurationError(f"{what} name {name!r}: expected {_IDENTIFIER}")
    if name in _RESERVED:
        raise ConfigurationError(
            f"{what} name {name!r} is an event field; pass it to record() instead of as a dimension"
        )
    if len(_NAMES_SEEN) < _MAX_NAMES_SEEN:
        _NAMES_SEEN.add(name)


def check_text(value: str, argument: str) -> None:
    """Raises `ConfigurationError` unless every store can keep ``value``.

    That is: text UTF-8 can encode, of at most `MAX_TEXT_BYTES` bytes. Python strings may hold
    lone surrogates (from ``surrogateescape`` decoding, or a JSON escape of half a pair) that no
    database can store: refused here, before anything is counted, rather than by the ledger
    later. ASCII text (the common case) is not encoded to check it.
    """
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"{argument}={value!r}: holds a lone surrogate at {exc.start}; expected text UTF-8 can store"
            ) from None
    if size > MAX_TEXT_BYTES:
        raise ConfigurationError(
            f"{argument}={value[:32]!r}… is {size} bytes long; expected at most {MAX_TEXT_BYTES}"
            " bytes of UTF-8 (hash a longer value)"
        )


def check_size(dims: Mapping[str, str], what: str = "the dimensions") -> None:
    r"""Raises `ConfigurationError` unless ``dims`` take at most `MAX_DIMENSIONS_BYTES` as stored.

    Stores keep an event's dimensions as their compact JSON (`Dimensions.json`, made once and
    kept), where a character past ASCII takes 6 or 12 bytes (an escape such as ``é``):
    that is what is measured.

    Args:
        dims: An event's dimensions, every value already checked by `check_text`.
        what: What to call them in an error.
    """
    # A character takes at most 12 bytes as stored (a surrogate pair's two escapes), a name its
    # length (an identifier), an item 6 more (quotes, colon, comma): most dimensions are far
    # enough below the limit not to need their JSON made (the scope's entry would cost twice).
    bound = 2
    for name, value in dims.items():
        bound += len(name) + 12 * len(value) + 6
    if bound <= MAX_DIMENSIONS_BYTES:
        return
    size = len(dims.json() if isinstance(dims, Dimensions) else Dimensions(dims).json())
    if size > MAX_DIMENSIONS_BYTES:
        raise ConfigurationError(
            f"{what} ({', '.join(sorted(dims))}) take {size} bytes as stored (compact JSON);"
            f" expected at most {MAX_DIMENSIONS_BYTES} (what every store can index)"
        )


class Dimensions(dict[str, str]):
    """An event's dimensions: a read-only ``dict`` of str to str.

    Events share their scope's dimensions, so they must not change: every mutating method
    raises ``TypeError``. Being a ``dict``, it serialises with ``json.dumps`` as it is, and it
    hashes, copies and pickles like the value it is.
    """

    __slots__ = ("_json",)

    def json(self) -> str:
        """The dimensions as compact JSON with sorted keys (made once: the value never changes).

        The text of ``json.dumps(self, sort_keys=True, separators=(",", ":"))``, written out
        here with the json module's own C escaping of each name and value: a third of its
        time (1.0 against 2.6 µs for four dimensions), and a ledger's writer makes one for each
        new set of dimensions it stores (every event, when a session id is among a call's tags).
        """
        try:
            return self._json
        except AttributeError:
            try:
                items = [f"{_escape(name)}:{_escape(self[name])}" for name in sorted(self)]
                text = "{" + ",".join(items) + "}"
            except TypeError:  # a name or value that is not a str: as json.dumps writes it
                text = _json.dumps(self, sort_keys=True, separators=(",", ":"))
            self._json: str = text
            return text

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an event's dimensions are read-only; copy them with dict(...) to change them")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __copy__(self) -> Dimensions:
        return self

    def __deepcopy__(self, memo: object) -> Dimensions:
        return self

    def __reduce__(self) -> tuple[type[Dimensions], tuple[dict[str, str]]]:
        return Dimensions, (dict(self),)

    def __repr__(self) -> str:
        return f"Dimensions({dict.__repr__(self)})"


EMPTY_DIMENSIONS: Final = Dimensions()
"""The dimensions of an event recorded outside every scope, without tags."""


def dimensions_json(dimensions: Mapping[str, str]) -> str:
    """An event's dimensions as stored: compact JSON, sorted keys (a `Dimensions`' own, made once)."""
    if type(dimensions) is Dimensions:
        return dimensions.json()
    return _json.dumps(dict(dimensions), sort_keys=True, separators=(",", ":"))
