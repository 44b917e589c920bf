"""Background delivery: one batcher and one spool, for the ledger writer and the billing sink.

- `Batcher`: a bounded queue delivered in batches from a daemon thread, with back-off and
  retry, the spool for what fails, fork safety and a flush at exit. `LedgerWriter`
  (`meterline.ledger`) and `BillingSink` (`meterline.exporters`) are batchers.
- `DeliveryStats`: the counters of any batcher (`meterline.exporters.SinkStats` is this).
- `Spool`: the fsynced, append-only local file of events a destination could not take,
  replayable exactly once (``meterline ledger replay`` replays a ledger's by hand).

Not public API: other packages import these names from here, never from the modules.
"""

from __future__ import annotations as _annotations

from meterline._delivery._batcher import Batcher, check_seconds, check_size
from meterline._delivery._spool import (
    SPOOL_DIR_ENV,
    Spool,
    SpoolWriteError,
    default_spool_dir,
    iter_spooled,
    spool_dir_usable,
)
from meterline._delivery._stats import DeliveryStats, Outcome

__all__ = [
    "SPOOL_DIR_ENV",
    "Batcher",
    "DeliveryStats",
    "Outcome",
    "Spool",
    "SpoolWriteError",
    "check_seconds",
    "check_size",
    "default_spool_dir",
    "iter_spooled",
    "spool_dir_usable",
]
