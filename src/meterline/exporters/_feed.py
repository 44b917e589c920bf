"""The billing feed from a ledger: ``meterline export --format cloudevents|stripe --to URL --cursor FILE``.

Events are read in the ledger's order (by id, which is by time to the millisecond), rendered,
and delivered in batches. With ``--cursor FILE`` the file records what was delivered, and is
rewritten (atomically, fsynced) only *after* a batch was delivered: acknowledged by the
endpoint with ``--to``, or written and flushed to stdout without. So a crash never skips an
event, and re-sends at most the batch in flight, with the same ids (CloudEvents ``id``,
Stripe ``identifier``), which the receiver deduplicates.

Late events. An event reaches the ledger a little after it was recorded (the writer
batches), and much later when it was spooled while the ledger was down; its id is then
older than events already delivered. The cursor therefore keeps the ids delivered within
the last ``lateness`` (default 10 minutes, by event time) and each run re-reads that window,
sending what it has not sent yet. An event that reaches the ledger more than ``lateness``
after the newest delivered event is not picked up by the cursor: after a long ledger outage,
run the export once with a ``--since`` before the outage and no cursor (receivers
deduplicate what they already have), or raise ``--lateness``.
"""

from __future__ import annotations as _annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from meterline._events import UsageEvent
from meterline.exceptions import ConfigurationError, DeliveryError, ExportError
from meterline.exporters._billing import BillingFormat
from meterline.exporters._http import Permanent, Retryable, post

__all__ = ["Cursor", "FeedResult", "feed", "http_sender", "lines_sender"]

CURSOR_VERSION: Final = 1
DEFAULT_LATENESS_S: Final = 600
"""How long after the newest delivered event a late event is still picked up, in seconds."""
_EVENT_ID: Final = re.compile(r"[0-9a-f]{32}")
_MAX_PENDING: Final = 10_000
"""Events without documents (nothing to bill) after which the cursor is advanced anyway."""


def _millis(event_id: str) -> int:
    """The millisecond time an event id starts with (the first 48 bits of its UUIDv7)."""
    return int(event_id[:12], 16)


def _floor(millis: int) -> str:
    """A string that sorts before every id of ``millis`` and later, and after every earlier one."""
    return f"{max(millis, 0):012x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    """What a feed has delivered: the newest event id and the ids delivered just before it."""

    format: str
    """The format the cursor was made for (a cursor of one format cannot resume another)."""
    last_id: str | None = None
    """The newest event id delivered."""
    recent: frozenset[str] = field(default_factory=frozenset)
    """Ids delivered within ``lateness_s`` before ``last_id`` (re-read, never re-sent)."""
    lateness_s: int = DEFAULT_LATENESS_S
    """The window re-read at each run for late events, in seconds."""
    delivered: int = 0
    """Events handled through this cursor, over all runs."""

    @classmethod
    def load(cls, path: str | Path, *, format: str, lateness_s: int = DEFAULT_LATENESS_S) -> Cursor:
        """The cursor stored at ``path``, or a fresh one when the file does not exist.

        Raises:
            ConfigurationError: the file is not a cursor, or is a cursor of another format.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(format=format, lateness_s=lateness_s)
        except OSError as exc:
            raise ConfigurationError(f"cursor {str(path)!r}: cannot be read ({exc})") from exc
        try:
            data = json.loads(text)
            last_id = data["last_id"]
            recent = frozenset(data["recent"])
            if (
                data["version"] != CURSOR_VERSION
                or not (last_id is None or (type(last_id) is str and _EVENT_ID.fullmatch(last_id)))
                or not all(type(i) is str and _EVENT_ID.fullmatch(i) for i in recent)
                or type(data["delivered"]) is not int
            ):
                raise ValueError("unexpected field values")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"cursor {str(path)!r}: expected a meterline export cursor "
                f"(JSON, version {CURSOR_VERSION}): {exc}"
            ) from exc
        if data.get("format") != format:
            raise ConfigurationError(
                f"cursor {str(path)!r} was made by --format {data.get('format')!r}, not {format!r}: "
                "use one cursor file per feed"
            )
        return cls(
            format=format, last_id=last_id, recent=recent, lateness_s=lateness_s, delivered=data["delivered"]
        )

    def start_after(self) -> str | None:
        """The ``after_id`` to read the ledger from: ``lateness_s`` before the newest delivered event."""
        if self.last_id is None:
            return None
        return _floor(_millis(self.last_id) - self.lateness_s * 1000)

    def advance(self, ids: Sequence[str]) -> Cursor:
        """The cursor once ``ids`` (a delivered batch) are delivered too."""
        if not ids:
            return self
        last = max(ids) if self.last_id is None else max(self.last_id, *ids)
        floor = _floor(_millis(last) - self.lateness_s * 1000)
        recent = frozenset(i for i in (*self.recent, *ids) if i > floor)
        return replace(self, last_id=last, recent=recent, delivered=self.delivered + len(ids))

    def save(self, path: str | Path) -> None:
        """Write the cursor to ``path`` atomically (a fsynced temporary file renamed over it, mode 0600)."""
        target = Path(path)
        data = {
            "version": CURSOR_VERSION,
            "format": self.format,
            "last_id": self.last_id,
            "delivered": self.delivered,
            "lateness_s": self.lateness_s,
            "recent": sorted(self.recent),
        }
        fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, separators=(",", ":"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedResult:
    """What one run of a feed did."""

    events: int
    """Events handled (delivered, or with nothing to bill, or skipped)."""
    documents: int
    """Documents delivered."""
    skipped: tuple[str, ...]
    """Why each event that could not be expressed was skipped (`ExportError` messages)."""
    cursor: Cursor | None
    """The cursor after the run."""


Sender = Callable[[Sequence[Mapping[str, Any]]], None]
"""Delivers one batch of documents, returning only once it is acknowledged (or raising)."""


def feed(
    events: Iterable[UsageEvent],
    fmt: BillingFormat,
    send: Sender,
    *,
    batch_size: int,
    cursor: Cursor | None = None,
    save: Callable[[Cursor], None] | None = None,
) -> FeedResult:
    """Render ``events`` with ``fmt`` and ``send`` them in batches, advancing ``cursor`` after each.

    Events whose id the cursor lists as delivered are passed over. An event the format
    cannot express is skipped (its reason kept in the result), so one bad event never
    blocks the feed; it still counts as handled.

    Raises:
        DeliveryError: from ``send``; the cursor then stands at the last delivered batch.
    """
    limit = max(1, min(batch_size, fmt.max_batch))
    seen = cursor.recent if cursor is not None else frozenset()
    pending_ids: list[str] = []
    documents: list[Mapping[str, Any]] = []
    skipped: list[str] = []
    handled = sent = 0

    def deliver() -> None:
        nonlocal cursor, handled, sent, documents, pending_ids
        for start in range(0, len(documents), limit):
            send(documents[start : start + limit])
        sent += len(documents)
        handled += len(pending_ids)
        if cursor is not None:
            cursor = cursor.advance(pending_ids)
            if save is not None:
                save(cursor)
        documents, pending_ids = [], []

    for event in events:
        if event.id in seen:
            continue
        try:
            rendered = fmt.render(event)
        except ExportError as exc:
            skipped.append(str(exc))
            rendered = []
        if (documents and len(documents) + len(rendered) > limit) or len(pending_ids) >= _MAX_PENDING:
            deliver()
        documents.extend(rendered)
        pending_ids.append(event.id)
    if pending_ids:
        deliver()
    return FeedResult(events=handled, documents=sent, skipped=tuple(skipped), cursor=cursor)


def http_sender(
    url: str,
    fmt: BillingFormat,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Sender:
    """A `Sender` that POSTs each batch to ``url``, retrying a failing endpoint with the same body.

    Waits 0.5 s before the first retry, doubling up to 30 s.

    Raises:
        DeliveryError: (from the sender) the endpoint refused the batch, or failed ``retries`` more times.
    """
    fixed = dict(headers or {})

    def send(documents: Sequence[Mapping[str, Any]]) -> None:
        body = fmt.body(documents)
        wait = 0.5
        for attempt in range(retries + 1):
            try:
                post(url, body, fmt.content_type, fixed, timeout)
            except Permanent as exc:
                raise DeliveryError(
                    f"the endpoint refused a batch of {len(documents)} documents: {exc}"
                ) from exc
            except Retryable as exc:
                if attempt == retries:
                    raise DeliveryError(
                        f"delivery failed {retries + 1} times, the last: {exc}; "
                        "run the export again to resume"
                    ) from exc
                sleep(wait)
                wait = min(wait * 2, 30.0)
            else:
                return

    return send


def lines_sender(write: Callable[[str], object], flush: Callable[[], object]) -> Sender:
    """A `Sender` that writes each document as one JSON line, and flushes after each batch."""

    def send(documents: Sequence[Mapping[str, Any]]) -> None:
        write(
            "".join(
                json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n" for document in documents
            )
        )
        flush()

    return send
