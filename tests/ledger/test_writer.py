"""The ledger writer: batches, sync commits, failures and the spool, back-pressure, exit, fork, SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from meterline import Meter, Usage, UsageEvent
from meterline._delivery import Spool
from meterline.exceptions import ConfigurationError, LedgerError
from meterline.ledger._backend import LedgerBackend
from meterline.ledger._sqlite import SQLiteLedger
from meterline.ledger._writer import LedgerWriter

SRC = Path(__file__).resolve().parents[2] / "src"


class MemoryLedger:
    """An in-memory backend keyed by id that can be told to fail, or to wait at a gate, on ``write``."""

    url = "memory://writer-tests"

    def __init__(self) -> None:
        self.rows: dict[str, UsageEvent] = {}
        self.new: Counter[str] = Counter()  # ids stored as new: more than 1 would be a double
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.fail = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store the new ids (after the gate, unless told to fail); return how many were new."""
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            raise LedgerError("the ledger is down")
        with self._lock:
            self.batches.append(len(events))
            self.threads.add(threading.current_thread().name)
            new = 0
            for event in events:
                if event.id not in self.rows:
                    self.rows[event.id] = event
                    self.new[event.id] += 1
                    new += 1
            return new

    def close(self) -> None:
        """Nothing to release."""


def make_events(count: int) -> list[UsageEvent]:
    """``count`` priced events from a fresh meter."""
    meter = Meter()
    return [
        meter.record(Usage(input_tokens=10 + index, output_tokens=5), model="gpt-4o", provider="openai")
        for index in range(count)
    ]


def writer_for(backend: MemoryLedger, tmp_path: Path, **options: Any) -> LedgerWriter:
    """A writer for ``backend`` with its spool under ``tmp_path``."""
    return LedgerWriter(cast("LedgerBackend", backend), spool=Spool(tmp_path / "spool"), **options)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_batch_mode_commits_everything_after_flush(tmp_path: Path) -> None:
    """In batch mode, submit returns at once and flush() returns once every event is committed."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, flush_interval=60)
    events = make_events(2500)
    for event in events:
        writer.submit(event)
    assert writer.flush(timeout=10)
    assert ledger.rows == {event.id: event for event in events}
    assert ledger.threads == {"meterline-ledger-writer"}
    stats = writer.stats()
    assert (stats.submitted, stats.committed, stats.spooled, stats.queued) == (2500, 2500, 0, 0)
    writer.close()


def test_batches_are_bounded_by_batch_size(tmp_path: Path) -> None:
    """No backend call gets more than batch_size events."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, batch_size=10, flush_interval=60)
    for event in make_events(95):
        writer.submit(event)
    assert writer.flush(timeout=10)
    assert sum(ledger.batches) == 95
    assert max(ledger.batches) <= 10
    writer.close()


@pytest.mark.parametrize(
    ("url", "size"),
    [("postgresql://meter@db/usage", 5000), ("host=db dbname=usage", 5000), ("sqlite:///usage.db", 1000)],
)
def test_a_writer_batches_as_its_ledger_does_best(tmp_path: Path, url: str, size: int) -> None:
    """Without a batch_size, a PostgreSQL ledger gets batches of 5,000 events, any other of 1,000."""
    ledger = MemoryLedger()
    ledger.url = url
    writer = writer_for(ledger, tmp_path, flush_interval=60)
    for event in make_events(size + 10):
        writer.submit(event)
    assert writer.flush(timeout=10)
    assert sorted(ledger.batches) == [10, size]
    writer.close()


def test_flush_interval_commits_without_flush(tmp_path: Path) -> None:
    """A few events (less than a batch) are committed once flush_interval has passed, with no flush()."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, flush_interval=0.05)
    for event in make_events(5):
        writer.submit(event)
    assert wait_until(lambda: len(ledger.rows) == 5, timeout=5)
    writer.close()


def test_a_full_batch_is_written_before_the_interval(tmp_path: Path) -> None:
    """batch_size waiting events are written at once, long before a (long) flush_interval."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, batch_size=50, flush_interval=60)
    for event in make_events(50):
        writer.submit(event)
    assert wait_until(lambda: len(ledger.rows) == 50, timeout=5)
    writer.close()


def test_sync_mode_commits_before_submit_returns(tmp_path: Path) -> None:
    """In sync mode every event is in the backend when submit returns, written in the caller's thread."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, durability="sync")
    for event in make_events(20):
        writer.submit(event)
        assert event.id in ledger.rows
    assert ledger.threads == {threading.current_thread().name}
    assert writer.flush(timeout=0)
    assert writer.stats().committed == 20
    writer.close()


_FSYNC_SCRIPT = """
import sys
import meterline
mode, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
meter = meterline.Meter(ledger=f"sqlite:///{path}", durability=mode)
usage = meterline.Usage(input_tokens=10, output_tokens=5)
for _ in range(count):
    meter.record(usage, model="gpt-4o-mini", provider="openai")
meter.close()
"""


def _fsyncs(tmp_path: Path, mode: str, count: int) -> int:
    """fsync/fdatasync calls made by a process recording ``count`` events, traced by strace."""
    trace = tmp_path / f"{mode}.strace"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    command = ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
    command += [sys.executable, "-c", _FSYNC_SCRIPT, mode, str(tmp_path / f"{mode}.db"), str(count)]
    subprocess.run(command, check=True, env=env, timeout=120)
    return len(trace.read_text().splitlines())


def test_sync_durability_fsyncs_every_commit(tmp_path: Path) -> None:
    """With durability="sync" each record() is fsynced before it returns; batch mode syncs far less."""
    try:
        subprocess.run(["strace", "-qq", "-o", os.devnull, "true"], check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot trace system calls here (strace: {exc})")
    count = 40
    assert _fsyncs(tmp_path, "sync", count) >= count
    assert _fsyncs(tmp_path, "batch", count) < count // 2


def test_a_durable_sqlite_ledger_syncs_fully(tmp_path: Path) -> None:
    """A durable SQLite ledger runs synchronous=FULL; the default, NORMAL; a non-bool is refused."""
    durable = SQLiteLedger(tmp_path / "d.db", durable=True)
    plain = SQLiteLedger(tmp_path / "p.db")
    try:
        assert durable._conn is not None
        assert plain._conn is not None
        assert durable._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert plain._conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        durable.close()
        plain.close()
    with pytest.raises(ConfigurationError, match="durable=1"):
        SQLiteLedger(tmp_path / "x.db", durable=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_a_failing_backend_spools_counts_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, durability: str
) -> None:
    """When write raises, submit never does: the events are spooled, the failure logged and counted."""
    ledger = MemoryLedger()
    ledger.fail = True
    writer = writer_for(ledger, tmp_path, durability=durability, flush_interval=60)
    events = make_events(30)
    with caplog.at_level("WARNING", logger="meterline"):
        for event in events:
            writer.submit(event)
        assert writer.flush(timeout=10)
    stats = writer.stats()
    assert stats.failures >= 1
    assert stats.spooled == 30
    assert stats.committed == 0
    assert stats.lost == 0
    assert stats.backend_down
    assert writer.spool.pending() == 30
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert errors
    assert "the ledger is down" in errors[0].getMessage()
    writer.close()


def test_a_recovered_backend_gets_the_spool_replayed_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    """Once the backend works again the writer replays the spool by itself; every event is stored once."""
    ledger = MemoryLedger()
    ledger.fail = True
    writer = writer_for(ledger, tmp_path, batch_size=20, flush_interval=0.02)
    events = make_events(300)
    for event in events[:150]:
        writer.submit(event)
    assert writer.flush(timeout=10)
    assert writer.stats().spooled == 150
    ledger.fail = False
    for event in events[150:]:
        writer.submit(event)
    assert wait_until(
        lambda: writer.spool.pending() == 0 and writer.stats().replayed >= writer.stats().spooled
    )
    assert writer.flush(timeout=10)
    assert len(ledger.rows) == 300
    assert set(ledger.new.values()) == {1}
    stats = writer.stats()
    assert stats.spooled >= 150
    assert not stats.backend_down
    assert stats.lost == 0
    writer.close()


def test_a_spool_left_by_an_earlier_run_is_replayed(tmp_path: Path) -> None:
    """A new writer replays what an earlier process left in its spool."""
    events = make_events(7)
    Spool(tmp_path / "spool").append(events)
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, flush_interval=0.02)
    writer.submit(make_events(1)[0])  # starts the thread
    assert wait_until(lambda: len(ledger.rows) == 8)
    writer.close()
    assert writer.spool.pending() == 0


def test_when_full_block_waits_for_room(tmp_path: Path) -> None:
    """With when_full='block' and a full queue, submit waits until the thread takes a batch, then queues."""
    ledger = MemoryLedger()
    ledger.gate = threading.Event()
    writer = writer_for(ledger, tmp_path, batch_size=5, max_queue=10, flush_interval=60, when_full="block")
    events = make_events(16)
    for event in events[:5]:
        writer.submit(event)
    assert ledger.entered.wait(5)  # the thread holds the first batch at the gate
    for event in events[5:15]:
        writer.submit(event)
    assert writer.stats().queued == 10
    blocked = threading.Thread(target=writer.submit, args=(events[15],))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()
    ledger.gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    assert writer.flush(timeout=10)
    assert set(ledger.rows) == {event.id for event in events}
    stats = writer.stats()
    assert stats.blocked == 1
    assert stats.spooled == 0
    writer.close()


def test_when_full_block_is_bounded_by_block_timeout(tmp_path: Path) -> None:
    """A blocked submit waits at most block_timeout, then spools the event: never dropped."""
    ledger = MemoryLedger()
    ledger.gate = threading.Event()
    writer = writer_for(
        ledger, tmp_path, batch_size=2, max_queue=2, flush_interval=60, when_full="block", block_timeout=0.1
    )
    events = make_events(5)
    for event in events[:2]:
        writer.submit(event)
    assert ledger.entered.wait(5)
    for event in events[2:4]:
        writer.submit(event)
    started = time.monotonic()
    writer.submit(events[4])
    assert 0.09 <= time.monotonic() - started < 2
    stats = writer.stats()
    assert (stats.blocked, stats.overflowed) == (1, 1)
    assert wait_until(lambda: writer.stats().spooled == 1)
    ledger.gate.set()
    assert wait_until(lambda: len(ledger.rows) == 5)
    writer.close()


def test_a_full_queue_spools_without_waiting_by_default(tmp_path: Path) -> None:
    """By default, submits past max_queue return at once, go to the spool in the background, are replayed."""
    ledger = MemoryLedger()
    ledger.gate = threading.Event()
    writer = writer_for(ledger, tmp_path, batch_size=5, max_queue=10, flush_interval=0.02)
    events = make_events(40)
    for event in events[:5]:
        writer.submit(event)
    assert ledger.entered.wait(5)
    started = time.monotonic()
    for event in events[5:]:
        writer.submit(event)
    assert time.monotonic() - started < 2
    stats = writer.stats()
    assert (stats.overflowed, stats.blocked) == (25, 0)
    assert wait_until(lambda: writer.stats().spooled == 25)  # by the spooling thread, ledger still stuck
    ledger.gate.set()
    assert wait_until(lambda: len(ledger.rows) == 40 and writer.spool.pending() == 0)
    assert set(ledger.new.values()) == {1}
    assert writer.stats().submitted == 40
    writer.close()


def test_close_flushes_and_is_idempotent(tmp_path: Path) -> None:
    """close() commits what is queued, stops the thread, leaves the backend open, and can be called again."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, flush_interval=60)
    events = make_events(11)
    for event in events[:10]:
        writer.submit(event)
    assert writer.close()
    assert len(ledger.rows) == 10
    assert writer.close()
    writer.submit(events[10])  # after close: written synchronously, never dropped
    assert events[10].id in ledger.rows
    assert writer._thread is not None
    assert not writer._thread.is_alive()


def test_a_writer_is_a_context_manager(tmp_path: Path) -> None:
    """Leaving a with block closes the writer, which flushes it."""
    ledger = MemoryLedger()
    with writer_for(ledger, tmp_path, flush_interval=60) as writer:
        for event in make_events(3):
            writer.submit(event)
    assert len(ledger.rows) == 3


def test_invalid_options_are_refused(tmp_path: Path) -> None:
    """Bad durability, policy, sizes or intervals raise ConfigurationError."""
    for options in (
        {"durability": "eventually"},
        {"when_full": "drop"},
        {"batch_size": 0},
        {"max_queue": -1},
        {"flush_interval": 0},
        {"block_timeout": float("inf")},
    ):
        with pytest.raises(ConfigurationError):
            writer_for(MemoryLedger(), tmp_path, **options)


CHILD_PRELUDE = """
import os, sys
from meterline import Meter, Usage
from meterline._delivery import Spool
from meterline.ledger._sqlite import SQLiteLedger
from meterline.ledger._writer import LedgerWriter
ledger = SQLiteLedger(sys.argv[1])
meter = Meter()
def event():
    return meter.record(Usage(input_tokens=3, output_tokens=1), model="gpt-4o", provider="openai")
"""


def run_child(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """Start a Python child running the prelude and ``script`` (with ``src`` on its path)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("METERLINE_LEDGER", None)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + script, *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        **popen,
    )


def stored_ids(database: Path) -> set[str]:
    """The ids stored in the SQLite ledger at ``database``."""
    ledger = SQLiteLedger(database)
    try:
        return {event.id for event in ledger.events()}
    finally:
        ledger.close()


def test_the_exit_hook_flushes_a_writer_never_closed(tmp_path: Path) -> None:
    """A process that submits and exits without close() or flush() still commits every event."""
    database = tmp_path / "usage.db"
    child = run_child(
        """
writer = LedgerWriter(ledger, flush_interval=3600, spool=Spool(sys.argv[2]))
ids = []
for _ in range(250):
    e = event()
    writer.submit(e)
    ids.append(e.id)
print(" ".join(ids))
""",
        str(database),
        str(tmp_path / "spool"),
    )
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    ids = set(out.split())
    assert len(ids) == 250
    assert stored_ids(database) == ids
    assert Spool(tmp_path / "spool").pending() == 0


def test_a_forked_child_writes_its_own_events_and_never_the_parents(tmp_path: Path) -> None:
    """After fork the child starts empty, with its own thread; the parent writes its queued events once."""
    ledger = MemoryLedger()
    writer = writer_for(ledger, tmp_path, flush_interval=60)
    parent_events, child_events = make_events(5), make_events(3)
    for event in parent_events:
        writer.submit(event)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            assert writer.stats().queued == 0
            for event in child_events:
                writer.submit(event)
            ok = writer.flush(timeout=10)
            os.write(write, json.dumps({"ok": ok, "ids": sorted(ledger.rows)}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    assert os.waitpid(pid, 0)[1] == 0
    assert report == {"ok": True, "ids": sorted(event.id for event in child_events)}
    assert writer.flush(timeout=10)
    assert set(ledger.rows) == {event.id for event in parent_events}
    writer.close()


KILL_SYNC = """
writer = LedgerWriter(ledger, durability="sync", spool=Spool(sys.argv[2]))
while True:
    e = event()
    writer.submit(e)
    print(e.id, flush=True)
"""

KILL_BATCH = """
writer = LedgerWriter(ledger, batch_size=64, flush_interval=0.01, spool=Spool(sys.argv[2]))
pending = []
while True:
    e = event()
    writer.submit(e)
    pending.append(e.id)
    if len(pending) == 97:
        assert writer.flush()
        print("\\n".join(pending), flush=True)
        pending = []
"""


def kill_mid_way(script: str, database: Path, spool: Path, wanted: int) -> list[str]:
    """Run ``script`` until it printed ``wanted`` ids, SIGKILL it, return every complete line it printed."""
    child = run_child(script, str(database), str(spool))
    assert child.stdout is not None
    printed = []
    for line in child.stdout:
        printed.append(line)
        if len(printed) >= wanted:
            break
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    lines = "".join([*printed, rest]).split("\n")
    return [line for line in lines[:-1] if line]  # the last piece may be torn: never acknowledged


@pytest.mark.parametrize(("script", "wanted"), [(KILL_SYNC, 400), (KILL_BATCH, 3000)], ids=["sync", "batch"])
def test_sigkill_never_loses_an_acknowledged_event(tmp_path: Path, script: str, wanted: int) -> None:
    """SIGKILL mid-way: every id printed after a sync submit, or a returned flush, is in the SQLite ledger."""
    database = tmp_path / "usage.db"
    SQLiteLedger(database).close()
    acknowledged = kill_mid_way(script, database, tmp_path / "spool", wanted)
    assert len(acknowledged) >= wanted
    stored = stored_ids(database)
    missing = [event_id for event_id in acknowledged if event_id not in stored]
    assert missing == []
    assert Spool(tmp_path / "spool").pending() == 0


def test_a_spool_without_a_writable_place_is_said_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With no writable place for the spool, the meter warns once at start and says so in its stats."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("METERLINE_SPOOL_DIR", str(blocker / "spools"))
    with caplog.at_level("WARNING", logger="meterline"):
        meter = Meter(ledger=f"sqlite:///{tmp_path}/usage.db")
    try:
        stats = meter.stats().ledger
        assert stats is not None
        assert not stats.spool_usable
        assert [
            record.getMessage() for record in caplog.records if "no writable place" in record.getMessage()
        ]
        assert "METERLINE_SPOOL_DIR" in caplog.text
    finally:
        meter.close()


_NO_HOME_SCRIPT = """
import json
import meterline
meter = meterline.Meter(ledger="postgresql://app@127.0.0.1:1/usage")
usage = meterline.Usage(input_tokens=1, output_tokens=1)
for _ in range(50):
    meter.record(usage, model="gpt-4o", provider="openai")
meter.flush(timeout=10)
stats = meter.stats().ledger
meter.close()
print(json.dumps([stats.spooled, stats.lost, stats.spool_usable]))
"""


def test_a_service_user_without_a_home_keeps_every_event_while_the_ledger_is_down(tmp_path: Path) -> None:
    """No home directory, the server down: every event goes to a private temp spool, none lost."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "tmp").mkdir()
    env = {
        key: value for key, value in os.environ.items() if key not in ("XDG_DATA_HOME", "METERLINE_SPOOL_DIR")
    }
    env |= {"HOME": str(blocker / "home"), "TMPDIR": str(tmp_path / "tmp")}
    env["PYTHONPATH"] = str(Path(__file__).parents[2] / "src")
    script = _NO_HOME_SCRIPT
    pytest.importorskip("psycopg")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    spooled, lost, usable = json.loads(done.stdout.splitlines()[-1])
    assert (spooled, lost, usable) == (50, 0, True)
    spools = list((tmp_path / "tmp" / f"meterline-{os.getuid()}" / "spool").iterdir())
    assert len(spools) == 1
    assert sum(len(path.read_text().splitlines()) for path in spools[0].glob("seg-*.jsonl")) == 50


def test_lost_is_exact_when_the_disk_fills(tmp_path: Path) -> None:
    """Events counted lost are exactly those in neither the ledger nor the spool, even on a full disk."""
    import resource
    import signal

    backend = MemoryLedger()
    backend.fail = True
    writer = writer_for(backend, tmp_path, batch_size=20, flush_interval=60)
    events = make_events(60)
    for event in events[:20]:
        writer.submit(event)
    writer.flush(timeout=10)
    (segment,) = writer.spool.segments()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (segment.stat().st_size + 3000, hard))
    try:  # the next batches of 20 fit only in part
        for event in events[20:]:
            writer.submit(event)
        assert not writer.flush(timeout=10)  # losses are never reported as success
        assert writer.flush(timeout=10)  # and are reported once
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    stats = writer.stats()
    assert stats.lost > 0
    assert stats.lost_by_cause == (("EFBIG", stats.lost),)
    assert stats.spooled + stats.lost == 60
    backend.fail = False
    assert wait_until(lambda: writer.spool.pending() == 0)
    writer.close()
    assert len(backend.rows) == stats.spooled
    assert len(backend.rows) + stats.lost == 60


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, mounted for the test (skips where this process may not mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_a_full_disk_loses_nothing_silently(
    small_disk: Path, durability: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On a filling disk, losses are counted by cause, reported, logged a few times; the rest arrives once."""
    url = f"sqlite:///{small_disk}/usage.db"
    recorded = 15_000
    with caplog.at_level(logging.WARNING, logger="meterline"):
        meter = Meter(url, durability=durability)
        ids = [
            meter.record(Usage(input_tokens=index, output_tokens=1), model="gpt-4o", provider="openai").id
            for index in range(recorded)
        ]
        flushed = meter.flush(timeout=30)
        stats = meter.stats().ledger
        meter.close()
    assert stats is not None
    assert stats.lost > 0, "the disk never filled: make it smaller"
    assert not flushed  # losses are never reported as success
    assert stats.lost_by_cause == (("ENOSPC", stats.lost),)
    assert stats.rejected == 0  # a full disk is the ledger's condition: nothing is dead-lettered
    assert len(caplog.records) < 60, "a full disk is logged a few times, then counted"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    meter = Meter(url)  # opening replays what the spool kept
    assert meter.flush(timeout=30)
    meter.close()
    ledger = SQLiteLedger(small_disk / "usage.db")
    try:
        stored = [event.id for event in ledger.events()]
    finally:
        ledger.close()
    assert len(stored) == len(set(stored)), "an event reached the ledger twice"
    assert set(stored) <= set(ids)
    assert len(stored) + stats.lost == recorded


class GatedLedger:
    """A real SQLite ledger whose writes wait at a gate: a store slower than the calls."""

    def __init__(self, path: Path) -> None:
        self.ledger = SQLiteLedger(str(path))
        self.url = self.ledger.url
        self.gate = threading.Event()

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Wait at the gate, then store ``events`` in SQLite."""
        self.gate.wait()
        return self.ledger.write(events)

    def close(self) -> None:
        """Close the SQLite ledger."""
        self.ledger.close()


def test_record_never_waits_for_a_stuck_ledger_and_loses_nothing(tmp_path: Path) -> None:
    """Two threads record 25x max_queue events while the ledger is stuck; all reach it once, after."""
    gated = GatedLedger(tmp_path / "ledger.db")
    writer = LedgerWriter(
        cast("LedgerBackend", gated), spool=Spool(tmp_path / "spool"), batch_size=50, max_queue=200
    )
    meter = Meter()
    meter.subscribe(writer.submit)
    per_thread = 2_500

    def work(user: str) -> None:
        with meter.scope(user=user):
            for _ in range(per_thread):
                meter.record(Usage(input_tokens=10, output_tokens=2), model="gpt-4o", provider="openai")

    threads = [threading.Thread(target=work, args=(f"u{index}",)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)  # they finished with the ledger stuck
    assert writer.stats().overflowed > 0
    gated.gate.set()
    assert writer.flush(timeout=60)
    assert wait_until(lambda: writer.spool.pending() == 0, timeout=60)
    (row,) = gated.ledger.totals()
    assert row.events == 2 * per_thread  # the ledger skips an id it has: each event stored once
    assert len({event.id for event in gated.ledger.events()}) == 2 * per_thread
    writer.close()
    gated.close()
