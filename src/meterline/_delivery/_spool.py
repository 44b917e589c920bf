"""The failure spool: an append-only, fsynced local file of events a destination could not take.

When a destination (a ledger backend, a billing endpoint) is unreachable or a delivery
fails, the `Batcher` appends the batch here and replays it once the destination is back
(the ledger writer and the billing sink do so automatically; ``meterline ledger replay``
does it by hand). Replaying is idempotent: the destination skips ids it has.

Layout of a spool directory (0700; every file 0600)::

    seg-<time_ns>-<pid>-<n>.jsonl   segments: one event a line, a JSON array (`_spool_line`)
    replay.lock                     held (``fcntl.flock``) by whoever is replaying

Concurrency. A process appends to one *active* segment and holds an exclusive ``flock`` on
it for as long as it is open; a segment is created under a temporary name, locked, then
renamed into place, so no replayer ever sees an unlocked segment that is still being
written. A replayer takes ``replay.lock`` (so two processes never replay at once) and then
each segment's lock without waiting: a segment still locked is some live process's active
segment and is left for a later replay. A crashed process's locks die with it, so its
segments (a torn last line included) are replayed by the next one. A segment is deleted
only after every one of its events is committed.
"""

from __future__ import annotations as _annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, Protocol

from meterline._delivery._spool_line import SharedDimensions, read_line, spool_lines
from meterline._events import UsageEvent

__all__ = ["SPOOL_DIR_ENV", "Spool", "SpoolWriteError", "default_spool_dir", "spool_dir_usable"]

_log: Final = logging.getLogger("meterline")

SEGMENT_PREFIX: Final = "seg-"
SEGMENT_SUFFIX: Final = ".jsonl"
LOCK_NAME: Final = "replay.lock"
DEFAULT_SEGMENT_BYTES: Final = 16 * 1024 * 1024
"""A segment is sealed (and a new one started) once it is this large."""
REPLAY_BATCH: Final = 1000
"""Events per ``backend.write`` call when replaying."""


class Writable(Protocol):
    """What a replay needs of a backend: `meterline.ledger.LedgerBackend.write`."""

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store ``events`` in one transaction, each exactly once; return how many were new."""
        ...


_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700


SPOOL_DIR_ENV: Final = "METERLINE_SPOOL_DIR"
"""The environment variable naming the directory every spool lives under (one subdirectory each)."""


def default_spool_dir(url: str) -> Path:
    """Where the spool of the destination at ``url`` lives by default: the first of these.

    1. ``$METERLINE_SPOOL_DIR/<hash>``, when that variable is set (used as given);
    2. a spool this destination already has under ``$XDG_DATA_HOME/meterline/spool/<hash>``
       (``~/.local/share/…``), where meterline 0.x kept every spool (so it is still replayed);
    3. for a SQLite ledger, ``<ledger file>.spool/`` beside the file (the ledger's directory is
       writable by whoever writes the ledger);
    4. ``$XDG_DATA_HOME/meterline/spool/<hash>`` (``~/.local/share/…``), if it can be made;
    5. ``<temp dir>/meterline-<uid>/spool/<hash>`` (``/tmp/…``), for a service user without a
       home directory: made 0700, and only if no other user made it first.

    ``<hash>`` is the first 16 hex digits of the SHA-256 of ``url``, so each destination has
    its own spool and the URL (which may hold a password) is never written to disk. Nothing is
    created here (a spool's directory is made when it is first needed); `spool_dir_usable`
    tells whether the result can be.
    """
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    configured = os.environ.get(SPOOL_DIR_ENV)
    if configured:
        return Path(configured) / digest
    home = _data_home()
    legacy = None if home is None else home / "meterline" / "spool" / digest
    if legacy is not None and legacy.is_dir():
        return legacy
    if url.startswith("sqlite:///"):
        ledger = Path(url[len("sqlite:///") :])
        return ledger.with_name(ledger.name + ".spool")
    if legacy is not None and spool_dir_usable(legacy):
        return legacy
    return Path(tempfile.gettempdir()) / f"meterline-{os.getuid()}" / "spool" / digest


def _data_home() -> Path | None:
    """``$XDG_DATA_HOME``, else ``~/.local/share``; ``None`` when there is no home directory."""
    configured = os.environ.get("XDG_DATA_HOME")
    if configured:
        return Path(configured)
    home = os.path.expanduser("~")
    return None if home == "~" or not home else Path(home) / ".local" / "share"


def spool_dir_usable(directory: Path) -> bool:
    """Whether a spool can live in ``directory``: it is, or can be made, a writable directory.

    Checked without creating anything: the nearest part of the path that exists must be a
    directory this process may write to (a path under a regular file, or under a read-only
    directory, never can be).
    """
    path = directory.absolute()
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


class SpoolWriteError(OSError):
    """`Spool.append` failed: the first ``kept`` events of the batch are in the spool, the rest not."""

    def __init__(self, kept: int, cause: OSError) -> None:
        super().__init__(cause.errno, f"{cause.strerror or cause}; {kept} of the events stayed in the spool")
        self.kept = kept
        """How many of the batch's first events were written whole (and will be replayed)."""


class Spool:
    """An append-only, fsynced spool of events, replayable into a backend exactly once.

    Thread-safe, and safe for several processes sharing one directory (see the module
    docstring). The directory is created (0700) on the first `append`, so a spool that is
    never needed leaves nothing behind.

    Args:
        directory: The spool's directory (see `default_spool_dir`).
        segment_bytes: Size at which the active segment is sealed and a new one begun.
    """

    def __init__(self, directory: str | Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None  # the active segment, flock'ed by this process
        self._size = 0
        self._created = 0
        self._torn = 0
        _SPOOLS.add(self)

    def __repr__(self) -> str:
        return f"<meterline Spool {str(self.directory)!r}>"

    # -- writing --------------------------------------------------------------------------

    def append(self, events: Sequence[UsageEvent]) -> None:
        """Write ``events`` to the active segment and ``fsync`` it before returning: all or none.

        Raises:
            SpoolWriteError: the events could not be written durably (disk full,
                permissions…). What was written of them is cut off again, so none of them is
                in the spool (``kept == 0``); only if even that fails, its ``kept`` first
                events stayed, whole, and will be replayed. The segment is then sealed, so a
                partial line never precedes later ones.
        """
        if not events:
            return
        data = spool_lines(events)
        with self._lock:
            fd = self._fd if self._fd is not None else self._new_segment()
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                kept = self._cut(fd, data[: len(data) - len(view)])
                self._seal()
                raise SpoolWriteError(kept, exc) from exc
            except BaseException:
                self._seal()
                raise
            self._size += len(data)
            if self._size >= self._segment_bytes:
                self._seal()

    def _cut(self, fd: int, written: bytes) -> int:
        """Take back a failed append's bytes (lock held); returns how many of its events stayed."""
        try:
            os.ftruncate(fd, self._size)
            os.fsync(fd)
        except OSError:
            return written.count(b"\n")  # complete lines stay, to be replayed; a torn one is skipped
        return 0

    def _new_segment(self) -> int:
        """Create, lock and publish a new active segment; fsync the directory (lock held)."""
        directory = self.directory
        if not directory.is_dir():
            for missing in reversed([directory, *directory.parents]):
                if not missing.is_dir():  # every directory it makes is private, not just the last
                    missing.mkdir(mode=_DIR_MODE, exist_ok=True)
            os.chmod(directory, _DIR_MODE)
        self._created += 1
        name = f"{SEGMENT_PREFIX}{time.time_ns():020d}-{os.getpid()}-{self._created:06d}{SEGMENT_SUFFIX}"
        staging = directory / f".{name}.tmp"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.fchmod(fd, _FILE_MODE)  # whatever the umask
            fcntl.flock(fd, fcntl.LOCK_EX)  # before it is visible to replayers
            os.rename(staging, directory / name)
            _fsync_dir(directory)
        except BaseException:
            os.close(fd)
            staging.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._size = 0
        return fd

    def _seal(self) -> None:
        """Close the active segment (lock held): it becomes replayable; the next append starts another."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # releases the flock

    def close(self) -> None:
        """Seal the active segment. The spool stays usable (a later append starts a new segment)."""
        with self._lock:
            self._seal()

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's open segment (and its flock): never append to it.
        # Closing the child's descriptor leaves the parent's lock in place.
        self._lock = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    # -- reading --------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [
            self.directory / name
            for name in sorted(names)
            if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)
        ]

    def pending(self) -> int:
        """How many events wait in the spool (complete lines of every segment)."""
        total = 0
        for path in self.segments():
            try:
                with open(path, "rb") as file:
                    while chunk := file.read(1 << 20):
                        total += chunk.count(b"\n")
            except FileNotFoundError:
                continue  # replayed meanwhile
        return total

    def __len__(self) -> int:
        return self.pending()

    def replay(self, backend: Writable, *, batch_size: int = REPLAY_BATCH) -> int:
        """Write every spooled event to ``backend``, oldest segment first; delete what committed.

        Events go in batches of ``batch_size``; the backend skips ids it already has, so a
        replay interrupted at any point can simply be run again. A segment is deleted only
        after all its events are committed. The active segment of this process is sealed
        first; a segment another live process is writing is left for a later replay. Waits
        for any other replayer of this directory to finish first.

        Returns:
            The number of events written to the backend (stored now or already there).

        Raises:
            Exception: whatever ``backend.write`` raised (`meterline.LedgerError` for the
                built-in backends); the segments not yet committed stay in the spool.
        """
        if not self.directory.is_dir():
            return 0
        with self._lock:
            self._seal()
        replayed = 0
        lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            for path in self.segments():
                replayed += self._replay_segment(path, backend, batch_size)
        finally:
            os.close(lock_fd)  # releases the replay lock
        return replayed

    def _replay_segment(self, path: Path, backend: Writable, batch_size: int) -> int:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return 0  # a live process's active segment
                raise
            if not path.exists():
                return 0  # replayed by someone else between the listing and the lock
            with os.fdopen(os.dup(fd), "rb") as file:
                data = file.read()
            written = 0
            batch: list[UsageEvent] = []
            for event in self._parse(path, data):
                batch.append(event)
                if len(batch) >= batch_size:
                    backend.write(batch)
                    written += len(batch)
                    batch = []
            if batch:
                backend.write(batch)
                written += len(batch)
            path.unlink()
            _fsync_dir(self.directory)
            return written
        finally:
            os.close(fd)

    def _parse(self, path: Path, data: bytes) -> Iterator[UsageEvent]:
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the segment ends with a complete line
        if tail:
            self._torn += 1
            _log.warning(
                "meterline spool: skipped a torn last line (%d bytes) in %s: the process writing it "
                "stopped mid-write, before the events were acknowledged",
                len(tail),
                path,
            )
        shared: SharedDimensions = {}
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                event = read_line(line, shared)  # as strictly as record(): a line changed on disk is refused
            except Exception:  # noqa: BLE001 - a corrupt line must not block the rest of the spool
                self._torn += 1
                _log.exception("meterline spool: skipped unreadable line %d of %s", number, path)
                continue
            yield event

    @property
    def torn_lines(self) -> int:
        """Torn last lines (and unreadable lines) skipped by this object's replays."""
        return self._torn


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_spooled(spool: Spool) -> Iterable[UsageEvent]:
    """Every complete event in ``spool``'s segments, oldest first (for inspection and tests)."""
    for path in spool.segments():
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        yield from spool._parse(path, data)


_SPOOLS: Final[weakref.WeakSet[Spool]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for spool in list(_SPOOLS):
        spool._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
