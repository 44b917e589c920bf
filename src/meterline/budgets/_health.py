"""Whether a budget store is up: after a failure, calls stop going to it until a probe says so.

A store that failed once (down, frozen, locked past its ``timeout``) would make every call wait
that ``timeout`` again. So after a failure the engine takes it as down: calls are not sent to
it and follow their budgets' ``on_store_error`` at once, and a background thread tries the
store after `STORE_REST` seconds, then twice as long each time it still fails (up to
`STORE_REST_MAX`), until it works. No caller waits on a store that is down; what the calls
meanwhile used can be charged from the ledger later (`Meter.rebuild_budgets`).
"""

from __future__ import annotations as _annotations

import os
import threading
import time
import weakref
from typing import Final

from meterline._guard import logger
from meterline.budgets._store import BudgetStore
from meterline.exceptions import BudgetStoreError

__all__ = ["STORE_REST", "STORE_REST_MAX", "StoreHealth"]

STORE_REST: Final = 1.0
"""Seconds before a budget store that failed is first tried again, by a background probe."""
STORE_REST_MAX: Final = 30.0
"""The longest wait between two probes of a store that is still down, in seconds."""
_PROBE_RID: Final = "meterline-probe"
"""The reservation a probe releases: a write (SQLite's lock, a PostgreSQL or Redis round trip)
that changes nothing, since no reservation has this id."""


class StoreHealth:
    """Whether one store is taken as down, and the probe that brings it back."""

    __slots__ = ("__weakref__", "_down", "_lock", "_pid", "store")

    def __init__(self, store: BudgetStore) -> None:
        self.store = store
        self._down = False
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """Whether calls should not be sent to the store (a forked child starts afresh)."""
        if not self._down:
            return False
        if self._pid != os.getpid():  # the probe thread stayed in the parent
            self._down = False
            return False
        return True

    def went_down(self) -> None:
        """The store failed: stop sending it calls, and start probing it in the background."""
        with self._lock:
            if self._down and self._pid == os.getpid():
                return
            self._down = True
            self._pid = os.getpid()
        probe = threading.Thread(target=_probe, args=(weakref.ref(self),), name="meterline-budget-probe")
        probe.daemon = True
        probe.start()

    def answers(self) -> bool:
        """Try the store once (a write that changes nothing); if it works, it is up again."""
        try:
            self.store.release(_PROBE_RID)
        except Exception:  # noqa: BLE001 - still down, or closed
            return False
        self._down = False
        logger.warning("meterline: the budget store %s works again", self.store.url)
        return True

    def error(self) -> BudgetStoreError:
        """The error of a call not sent to the store because it is down."""
        return BudgetStoreError(
            f"the budget store {self.store.url} failed a moment ago; calls are not sent to it until"
            " a background probe finds it working"
        )


def _probe(ref: weakref.ref[StoreHealth]) -> None:
    """Try the store after `STORE_REST`, doubling up to `STORE_REST_MAX`, until it works.

    It holds the health weakly: once the meter (and its engine) is gone, the probe ends.
    """
    wait = STORE_REST
    while True:
        time.sleep(wait)
        health = ref()
        if health is None:
            return
        if health.answers():
            return
        del health  # not kept alive by the probe while it sleeps
        wait = min(wait * 2, STORE_REST_MAX)
