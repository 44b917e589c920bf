"""Reading ahead: a generator's items made on a thread of their own while the caller uses the last one."""

from __future__ import annotations as _annotations

import contextlib
import queue
import threading
from collections.abc import Generator
from typing import Any, Final, TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")
_AHEAD: Final = 2
"""Items read ahead of the caller: what the reader holds besides the caller's."""


def prefetched(items: Generator[T, None, None]) -> Generator[T, None, None]:
    """``items``, read on a thread of their own at most `_AHEAD` items ahead of the caller.

    ADBC's drivers step SQLite, and read PostgreSQL's answer, without the GIL, and Arrow's
    kernels run without it too: while the caller converts one batch, the next is read on the
    other core. JSON lines of 1M product-shaped events from SQLite: 177,000 -> 253,000
    events/s (`bench/bench_parquet.py`'s ledger).
    An error of the reader is raised in the caller; a caller that stops early stops the
    reader (it closes ``items``, and so the connection) before this generator returns.
    """
    queue_: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                queue_.put((kind, value), timeout=0.05)
                return True
        return False

    def read() -> None:
        with contextlib.closing(items) as source:
            try:
                for item in source:
                    if not put("item", item):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                put("error", exc)
                return
        put("end", None)

    reader = threading.Thread(target=read, name="meterline-ledger-read", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = queue_.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        reader.join()
