"""The ledger writer: takes events off the record path and commits them to a backend.

A `LedgerWriter` is a `Batcher` (`meterline._delivery`: the queue, the thread, back-off and
retry, the spool, fork and exit) whose destination is a `LedgerBackend`. What is its own:

``batch`` durability (the default): `LedgerWriter.submit` appends the event to a bounded
in-memory queue and returns (a ``deque.append`` and two length checks); the batcher's thread
commits the queue in batches of ``batch_size`` events, as soon as that many wait or
``flush_interval`` seconds have passed. The events a SIGKILL can lose are those submitted
since the last returned `flush` and not yet committed: at most ``max_queue`` events plus one
batch in flight, and in steady state about ``flush_interval`` seconds' worth.

``sync`` durability: `submit` writes the event itself, in the caller's thread, serialised
with the thread's writes, and returns only once it is committed (or, if the backend fails,
fsynced to the spool). Writing in the caller's thread costs no thread hand-off, and a
failure is still contained: nothing is raised into the caller. The thread only replays the
spool once the backend is back. A ledger the meter opens from a URL is opened durable: the
SQLite WAL is fsynced at each commit (``synchronous=FULL``), and a PostgreSQL session sets
``synchronous_commit = on``.

What each mode promises once `submit` (``Meter.record``) has returned:

- ``sync``: the event survives a process crash, an OS crash and a power loss: its commit (or,
  with the store down, its spool line) was fsynced.
- ``batch``: a process crash loses the events submitted since the last returned `flush` and
  not yet committed (at most ``max_queue`` plus one batch; about ``flush_interval`` seconds'
  worth in steady state). An OS crash or a power loss may also lose, on SQLite, the commits
  since the WAL was last synced (``synchronous=NORMAL`` syncs at checkpoints); PostgreSQL
  keeps what it committed unless its ``synchronous_commit`` is off.

Failures. When ``backend.write`` raises (anything), the batch goes to the `Spool` and the
backend is left alone for a back-off (doubling from 50 ms to 30 s); then the spool is
replayed into it. Nothing is ever dropped without being logged and counted in
``DeliveryStats.lost``, which only grows when the spool fails too (a full disk).

Back-pressure. When ``max_queue`` events wait (the ledger is slower than the calls),
``when_full="spool"`` (the default) sends the event on to the spool without making
`record()` wait for the disk: it joins an overflow buffer of as many events again, which a
spooling thread appends to the spool a batch at a time (one ``fsync`` each), and the
delivery thread replays the spool into the ledger once it has caught up: every event
reaches the ledger once (ids are idempotency keys). Only a caller that finds the overflow
buffer full too (the disk is slower than the calls) writes its event to the spool itself.
Waiting is a choice: ``when_full="block"`` makes `submit` wait for room, at most
``block_timeout`` seconds, then spools the event. Both are counted (``overflowed``,
``blocked``).

Fork and exit: as every batcher. The backend must itself be usable in a forked child (the
built-in ones reopen their connection per process); the exit hook closes every writer
still open, at most `EXIT_TIMEOUT` seconds each.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

from meterline._delivery import Batcher, Outcome, Spool, check_seconds, default_spool_dir
from meterline._events import UsageEvent
from meterline._guard import logger
from meterline._storage import is_value_error
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import LedgerBackend
from meterline.ledger._dead_letters import DEAD_LETTERS_NAME, DeadLetters
from meterline.ledger._open import LazyLedger, is_postgres, open_ledger

__all__ = ["Durability", "LedgerWriter", "WhenFull", "ledger_writer"]

Durability = Literal["batch", "sync"]
"""``batch``: committed in the background; ``sync``: committed before `LedgerWriter.submit` returns."""
WhenFull = Literal["block", "spool"]
"""What `LedgerWriter.submit` does when ``max_queue`` events wait: wait for room, or spool."""

RETRY_MIN: Final = 0.05
"""First back-off after a failure, in seconds (doubles at each failure)."""
RETRY_MAX: Final = 30.0
"""Longest back-off between retries of a failing backend, in seconds."""
EXIT_TIMEOUT: Final = 10.0
"""How long the exit hook waits for each writer to commit what is queued, in seconds."""
BATCH: Final = 1000
POSTGRES_BATCH: Final = 5000
"""A writer's default batch size: most ledgers', PostgreSQL's (see `LedgerWriter`'s ``batch_size``)."""


class LedgerWriter(Batcher):
    """Commits submitted events to a ledger backend, in the background or synchronously.

    Args:
        backend: Where events go. The writer never closes it (its owner does).
        durability: ``"batch"`` (default) or ``"sync"``; see the module docstring.
        batch_size: Most events per ``backend.write`` call; a batch is written as soon as
            this many wait. By default 5,000 for PostgreSQL (each batch is a few round trips
            and statements, whatever its size: the writer stores 19 to 22 % more product-shaped
            events a second than in batches of 1,000) and 1,000 otherwise (a SQLite write
            holds the file's write lock, every process's, for the whole batch).
        flush_interval: Longest time, in seconds, an event waits in the queue.
        max_queue: Events that may wait before ``when_full`` applies.
        spool: Where failed and overflowing batches go; by default the ledger's own spool
            (`default_spool_dir` of ``backend.url``), created only when first needed.
        when_full: ``"spool"`` (default: never wait for the ledger) or ``"block"`` (wait for
            room, at most ``block_timeout`` seconds).
        block_timeout: Longest a blocked `submit` waits for room before spooling the event,
            in seconds.

    Raises:
        ConfigurationError: on an invalid option.
    """

    def __init__(
        self,
        backend: LedgerBackend,
        *,
        durability: Durability = "batch",
        batch_size: int | None = None,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        spool: Spool | None = None,
        when_full: WhenFull = "spool",
        block_timeout: float = 10.0,
    ) -> None:
        if durability not in ("batch", "sync"):
            raise ConfigurationError(f"durability={durability!r}: expected 'batch' or 'sync'")
        if when_full not in ("block", "spool"):
            raise ConfigurationError(f"when_full={when_full!r}: expected 'block' or 'spool'")
        self.backend = backend
        self.durability: Durability = durability
        self._when_full: WhenFull = when_full
        self._block_timeout = check_seconds("block_timeout", block_timeout)
        super().__init__(
            name="ledger writer",
            destination=f"the ledger {backend.url}",
            spool=spool if spool is not None else Spool(default_spool_dir(backend.url)),
            batch_size=batch_size if batch_size is not None else default_batch_size(backend.url),
            flush_interval=flush_interval,
            max_queue=max_queue,
            retry_min=RETRY_MIN,
            retry_max=RETRY_MAX,
            exit_timeout=EXIT_TIMEOUT,
        )
        self.dead_letters = DeadLetters(self.spool.directory / DEAD_LETTERS_NAME)
        """Events the ledger refused while it worked, with the reason (see `DeadLetters`)."""

    def __repr__(self) -> str:
        return f"<meterline.ledger.LedgerWriter {self.durability} {self.backend.url!r}>"

    # `submit` (the batcher's) is the record path: ``batch`` durability never leaves its fast
    # path once the thread runs. Everything below runs off it.

    def _submit_slow(self, event: UsageEvent) -> None:
        if self.durability == "batch":
            super()._submit_slow(event)
            return
        if self._thread is None and not self._closed:
            self._start(fast=False)  # its thread replays the spool once the backend is back
        self._send_now(event)

    def _full(self, event: UsageEvent) -> None:
        """The queue is full: wait for room (``block``, bounded by ``block_timeout``) or spool the event."""
        if self._when_full == "block" and self._wait_for_room(event, self._block_timeout):
            return
        self._spill(event)

    def _after_close(self, event: UsageEvent) -> None:
        """After `close`, an event is written synchronously: never dropped."""
        self._send_now(event)

    def _deliver(self, batch: Sequence[UsageEvent]) -> Outcome:
        """Commit ``batch`` (the backend skips ids it already has); isolate an event it refuses.

        When the batch fails, it is written again event by event: if the ledger takes some and
        refuses others, or refuses one while it answers (`_answers`), the refused events go to
        the dead letters with the reason and the rest are stored, so one event the ledger
        cannot keep never holds back the others (nor every later replay of the spool). When it
        takes none and does not answer, it is down: the whole batch is spooled, as before.
        """
        backend = self.backend
        try:
            backend.write(batch)
            return Outcome(len(batch))
        except LedgerError as exc:
            if not self._values_at_fault(exc):
                raise
        stored = 0
        refused: list[tuple[UsageEvent, str]] = []
        for event in batch:
            try:
                backend.write([event])
                stored += 1
            except LedgerError as exc:
                if not self._values_at_fault(exc):
                    raise  # it went down meanwhile: spool it all (what was stored is skipped on replay)
                refused.append((event, str(exc)))
        if refused:
            self._dead_letter(refused)
        return Outcome(stored, rejected=len(refused))

    def _values_at_fault(self, exc: LedgerError) -> bool:
        """Whether the ledger refused a write for its values: a value error, while it answers.

        A full disk, a lost connection or a timeout is the ledger's condition: the batch waits
        in the spool for it. Only an error that says the values were at fault (`is_value_error`)
        from a ledger that still answers a read sets events aside as dead letters.
        """
        return is_value_error(exc) and self._answers()

    def _answers(self) -> bool:
        """Whether the ledger answers a read: if so, a write it refused was the events' fault."""
        try:
            self.backend.stats()
        except Exception:  # noqa: BLE001 - any failure means: not answering
            return False
        return True

    def _dead_letter(self, refused: Sequence[tuple[UsageEvent, str]]) -> None:
        ids = ", ".join(event.id for event, _ in refused[:5])
        try:
            self.dead_letters.add(refused)
        except OSError as exc:
            logger.error(
                "meterline: the ledger %s refused %d events and the dead letters %s cannot keep them"
                " (%s): they are LOST (ids %s…): %s",
                self.backend.url,
                len(refused),
                self.dead_letters.path,
                exc,
                ids,
                refused[0][1],
            )
            return
        logger.error(
            "meterline: the ledger %s refused %d events it cannot store (ids %s…): %s; they are kept in %s"
            " (meterline ledger dead-letters)",
            self.backend.url,
            len(refused),
            ids,
            refused[0][1],
            self.dead_letters.path,
        )


def default_batch_size(url: str) -> int:
    """A `LedgerWriter`'s batch size for the ledger at ``url`` when none is given (see its ``batch_size``)."""
    return POSTGRES_BATCH if is_postgres(url) else BATCH


def ledger_writer(
    ledger: LedgerBackend | str | Path, durability: Literal["batch", "sync"]
) -> tuple[LedgerBackend, LedgerWriter, bool]:
    """A meter's ledger and the writer that feeds it: ``(backend, writer, whether the meter opened it)``.

    A URL or path is opened here; when the store is down (or refuses) the meter records all
    the same: a `LazyLedger` keeps trying, and the writer spools every event until a write
    works, then replays the spool into it.
    """
    owned = isinstance(ledger, (str, Path))
    backend: LedgerBackend
    if isinstance(ledger, (str, Path)):
        try:
            backend = open_ledger(ledger, durable=durability == "sync")
        except LedgerError as exc:
            logger.warning(
                "meterline: the ledger cannot be opened yet (%s); events are spooled meanwhile", exc
            )
            backend = LazyLedger(str(ledger), durable=durability == "sync")
    else:
        backend = ledger
    writer = LedgerWriter(backend, durability=durability, spool=Spool(default_spool_dir(backend.url)))
    return backend, writer, owned
