"""Reading a provider's paginated admin report: every page, until ``has_more`` is false.

The admin key goes in a header and nowhere else: errors name the endpoint's path and what
went wrong (an HTTP status, a body that is not the documented page), never the key or the
full URL's query. Only the standard library is used (``urllib``), so the command needs no
extra to reach the provider.
"""

from __future__ import annotations as _annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from meterline.exceptions import ReconcileError

__all__ = ["MAX_PAGES", "count", "pages", "results", "scope"]

MAX_PAGES: Final = 1000
"""The most pages one report is read in: a cursor that never ends is an error, not a loop."""
_TIMEOUT: Final = 30.0
"""Seconds to wait for a page."""


def pages(
    base: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    *,
    timeout: float = _TIMEOUT,
) -> Iterator[list[dict[str, Any]]]:
    """The ``data`` of each page of ``GET base + path``, following ``next_page`` as ``page``.

    Raises:
        ReconcileError: the endpoint failed, answered something that is not a page of the
            documented shape, or did not stop paginating.
    """
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        query = [*params, *([("page", cursor)] if cursor is not None else [])]
        body = _get(f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(query)}", path, headers, timeout)
        data = body.get("data") if type(body) is dict else None
        if type(data) is not list or type(body.get("has_more")) is not bool:
            raise ReconcileError(
                f"{path}: expected a page {{data: [...], has_more, next_page}}, received"
                f" {type(body).__name__} {sorted(body) if type(body) is dict else ''}"
            )
        yield [bucket for bucket in data if type(bucket) is dict]
        if not body["has_more"]:
            return
        cursor = body.get("next_page")
        if type(cursor) is not str or not cursor:
            raise ReconcileError(f"{path}: has_more is true but next_page is {cursor!r}: expected a cursor")
    raise ReconcileError(f"{path}: still paginating after {MAX_PAGES} pages")


def _get(url: str, path: str, headers: Mapping[str, str], timeout: float) -> Any:
    # The base URL is checked to be http(s) by `reconcile` before any request is made.
    request = urllib.request.Request(url, headers={**headers, "Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise ReconcileError(f"{path}: the provider answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReconcileError(f"{path}: could not reach the provider ({reason})") from None
    except ValueError:
        raise ReconcileError(f"{path}: the provider's answer is not JSON") from None


def results(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    """The results of one day's bucket (both providers' reports nest them so).

    Raises:
        ReconcileError: when ``results`` is not a list.
    """
    found = bucket.get("results")
    if type(found) is not list:
        raise ReconcileError(f"bucket results={found!r:.80}: expected a list")
    return [result for result in found if type(result) is dict]


def scope(result: dict[str, Any], field: str | None) -> str | None:
    """The result's project, workspace or API key id (``field``), or ``None`` when not split by one."""
    if field is None:
        return None
    value = result.get(field)
    return value if type(value) is str else None


def count(result: dict[str, Any], name: str) -> int:
    """A count of a result (absent or null is 0).

    Raises:
        ReconcileError: when it is not a non-negative int.
    """
    value = result.get(name)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ReconcileError(f"{name}={value!r}: expected a non-negative int")
    return value
