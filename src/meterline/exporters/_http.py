"""POSTing batches to a billing endpoint with the standard library (``urllib``)."""

from __future__ import annotations as _annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Final

from meterline._storage import check_url, redact, scrub
from meterline._version import __version__

__all__ = ["Permanent", "Retryable", "check_url", "post"]

RETRYABLE_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses after which the same batch is sent again (other 4xx are refusals)."""


class Retryable(Exception):  # noqa: N818 - an outcome, not an error a caller handles
    """The endpoint is unreachable, timed out or answered a retryable status: send again later."""


class Permanent(Exception):  # noqa: N818 - an outcome, not an error a caller handles
    """The endpoint refused the batch (3xx, or 4xx but 408, 425, 429): sending it again cannot help."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET: refuse it, so it is reported instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, content_type: str, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body`` to ``url``; return when the endpoint answered 2xx.

    Raises:
        Retryable: a connection error, a timeout, or a status in `RETRYABLE_STATUS`.
        Permanent: any other non-2xx status.
    """
    request = urllib.request.Request(  # noqa: S310 - check_url allowed http(s) only
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "User-Agent": f"meterline/{__version__}",
            **headers,
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            detail = exc.read(500).decode("utf-8", "replace")
        message = scrub(f"{redact(url)} answered {exc.code} {exc.reason}: {detail}", url)
        if exc.code in RETRYABLE_STATUS:
            raise Retryable(message) from exc
        raise Permanent(message) from exc
    except (OSError, ValueError) as exc:  # URLError, timeouts, resets; ValueError: a malformed response
        raise Retryable(scrub(f"{redact(url)}: {exc}", url)) from exc
