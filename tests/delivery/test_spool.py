"""The failure spool: append-only and fsynced, replayed exactly once, safe for concurrent replayers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from meterline import Meter, Usage, UsageEvent
from meterline._delivery import Spool, SpoolWriteError, default_spool_dir, iter_spooled, spool_dir_usable
from meterline.exceptions import LedgerError

SRC = Path(__file__).resolve().parents[2] / "src"


class MemoryLedger:
    """The part of the backend contract a replay uses: ``write`` stores each id once, and can fail."""

    url = "memory://spool-tests"

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.rows: dict[str, UsageEvent] = {}
        self.attempts: Counter[str] = Counter()
        self.calls = 0
        self.fail_after = fail_after
        self._lock = threading.Lock()

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Store the new ids (unless past ``fail_after`` calls); return how many were new."""
        with self._lock:
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise LedgerError("the ledger is down")
            new = 0
            for event in events:
                self.attempts[event.id] += 1
                if event.id not in self.rows:
                    self.rows[event.id] = event
                    new += 1
            return new


def make_events(count: int) -> list[UsageEvent]:
    """``count`` priced events from a fresh meter."""
    meter = Meter()
    return [
        meter.record(Usage(input_tokens=10 + index, output_tokens=5), model="gpt-4o", provider="openai")
        for index in range(count)
    ]


def test_append_then_replay_round_trips(tmp_path: Path) -> None:
    """Appended events are counted as pending, replayed equal to the originals, and their segments deleted."""
    spool = Spool(tmp_path / "spool")
    events = make_events(25)
    spool.append(events[:10])
    spool.append(events[10:])
    spool.append([])
    assert spool.pending() == 25
    assert list(iter_spooled(spool)) == events
    ledger = MemoryLedger()
    assert spool.replay(ledger, batch_size=7) == 25
    assert ledger.rows == {event.id: event for event in events}
    assert max(ledger.attempts.values()) == 1
    assert spool.pending() == 0
    assert spool.segments() == []
    spool.append(events[:1])  # usable after a replay: a new segment
    assert spool.pending() == 1


def test_replayed_events_of_one_scope_share_their_dimensions(tmp_path: Path) -> None:
    """Events read back with equal dimensions share one `Dimensions`, as a meter's scope's do."""
    meter = Meter()
    events = []
    for session in ("s1", "s2"):
        with meter.scope(user="u1", session=session):
            events += [
                meter.record(Usage(input_tokens=9), model="gpt-4o", provider="openai") for _ in range(3)
            ]
    spool = Spool(tmp_path / "spool")
    spool.append(events)
    ledger = MemoryLedger()
    assert spool.replay(ledger) == 6
    replayed = [ledger.rows[event.id] for event in events]
    assert replayed == events
    assert len({id(event.dimensions) for event in replayed}) == 2
    assert {type(event.dimensions).__name__ for event in replayed} == {"Dimensions"}


def test_a_missing_directory_is_an_empty_spool(tmp_path: Path) -> None:
    """A spool never appended to creates nothing, has nothing pending and replays nothing."""
    spool = Spool(tmp_path / "never")
    assert spool.pending() == 0
    assert spool.replay(MemoryLedger()) == 0
    assert not (tmp_path / "never").exists()


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A segment whose writer died mid-line replays its complete lines and warns about the torn one."""
    spool = Spool(tmp_path / "spool")
    events = make_events(5)
    spool.append(events)
    spool.close()
    (segment,) = spool.segments()
    with open(segment, "ab") as file:
        file.write(b'{"id": "0192f0c0d0e0f0a0b0c0d0e0f0a0b0c0", "time_ns": 17')
    ledger = MemoryLedger()
    with caplog.at_level("WARNING", logger="meterline"):
        assert spool.replay(ledger) == 5
    assert set(ledger.rows) == {event.id for event in events}
    assert any("torn last line" in record.getMessage() for record in caplog.records)
    assert spool.torn_lines == 1
    assert spool.segments() == []


def test_replaying_twice_stores_once(tmp_path: Path) -> None:
    """The same events spooled twice, or a segment replayed again, are stored once (the id is the key)."""
    spool = Spool(tmp_path / "spool")
    events = make_events(8)
    spool.append(events)
    spool.append(events)
    spool.close()
    (segment,) = spool.segments()
    copy = segment.read_bytes()
    ledger = MemoryLedger()
    assert spool.replay(ledger) == 16
    segment.write_bytes(copy)  # as if a replay had died after its commit, before the delete
    assert spool.replay(ledger) == 16
    assert len(ledger.rows) == 8
    assert spool.pending() == 0


def test_a_segment_is_deleted_only_after_its_events_commit(tmp_path: Path) -> None:
    """A backend failing mid-replay leaves every uncommitted segment in place, for the next replay."""
    spool = Spool(tmp_path / "spool", segment_bytes=1)  # one segment per append
    events = make_events(12)
    for start in range(0, 12, 3):
        spool.append(events[start : start + 3])
    assert len(spool.segments()) == 4
    failing = MemoryLedger(fail_after=2)
    with pytest.raises(LedgerError):
        spool.replay(failing, batch_size=3)
    assert len(spool.segments()) == 2
    assert spool.pending() == 6
    assert set(failing.rows) == {event.id for event in events[:6]}
    ledger = MemoryLedger()
    assert spool.replay(ledger) == 6
    assert set(ledger.rows) == {event.id for event in events[6:]}
    assert spool.segments() == []


def test_a_segment_still_being_written_is_left_alone(tmp_path: Path) -> None:
    """A replayer skips the segment another live writer holds, and takes it once that writer seals it."""
    writer = Spool(tmp_path / "spool")
    replayer = Spool(tmp_path / "spool")
    events = make_events(4)
    writer.append(events)
    ledger = MemoryLedger()
    assert replayer.replay(ledger) == 0
    assert writer.pending() == 4
    writer.close()
    assert replayer.replay(ledger) == 4
    assert len(ledger.rows) == 4


def test_concurrent_replayers_write_each_event_once(tmp_path: Path) -> None:
    """Four replayers of one spool directory at once hand every event to the backend exactly once."""
    directory = tmp_path / "spool"
    source = Spool(directory, segment_bytes=1)
    events = make_events(200)
    for start in range(0, 200, 10):
        source.append(events[start : start + 10])
    ledger = MemoryLedger()
    counts: list[int] = []
    barrier = threading.Barrier(4)

    def replay() -> None:
        spool = Spool(directory)  # its own descriptors, as another process would have
        barrier.wait()
        counts.append(spool.replay(ledger, batch_size=4))

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 200
    assert len(ledger.rows) == 200
    assert set(ledger.attempts.values()) == {1}


REPLAY_SCRIPT = """
import sys
from meterline._delivery import Spool
from meterline.ledger._sqlite import SQLiteLedger
ledger = SQLiteLedger(sys.argv[2])
print(Spool(sys.argv[1]).replay(ledger, batch_size=5))
ledger.close()
"""


def test_concurrent_replaying_processes_store_each_event_once(tmp_path: Path) -> None:
    """Two processes replaying one spool into one SQLite ledger replay each event once between them."""
    from meterline.ledger._sqlite import SQLiteLedger

    directory = tmp_path / "spool"
    source = Spool(directory, segment_bytes=1)
    events = make_events(120)
    for start in range(0, 120, 6):
        source.append(events[start : start + 6])
    database = tmp_path / "usage.db"
    SQLiteLedger(database).close()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("METERLINE_LEDGER", None)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", REPLAY_SCRIPT, str(directory), str(database)],
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    replayed = [int(child.communicate(timeout=60)[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sum(replayed) == 120
    ledger = SQLiteLedger(database)
    try:
        assert {event.id for event in ledger.events()} == {event.id for event in events}
    finally:
        ledger.close()


def test_files_are_private(tmp_path: Path) -> None:
    """The spool directory is 0700 and its segments and lock file 0600, whatever the umask."""
    old = os.umask(0)
    try:
        spool = Spool(tmp_path / "deep" / "spool")
        spool.append(make_events(1))
        spool.close()
        spool.append(make_events(1))
        with pytest.raises(LedgerError):
            spool.replay(MemoryLedger(fail_after=0))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "deep" / "spool").stat().st_mode) == 0o700
    files = list((tmp_path / "deep" / "spool").iterdir())
    assert {path.name for path in files} >= {"replay.lock"}
    assert len(spool.segments()) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_forked_child_never_appends_to_the_parents_segment(tmp_path: Path) -> None:
    """After fork, the child's appends start a segment of its own; the parent's stays its own."""
    spool = Spool(tmp_path / "spool")
    parent_events, child_events = make_events(3), make_events(2)
    spool.append(parent_events)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            spool.append(child_events)
            spool.close()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    spool.append(parent_events[:1])
    spool.close()
    segments = [[line for line in path.read_text().splitlines() if line] for path in spool.segments()]
    assert sorted(len(lines) for lines in segments) == [2, 4]


def test_default_spool_dir_is_per_destination_and_hides_the_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A server's spool is under the XDG data home, one directory per URL, named by a hash."""
    monkeypatch.delenv("METERLINE_SPOOL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    one = default_spool_dir("postgresql://app:secret@db/usage")
    assert one.parent == tmp_path / "data/meterline/spool"
    assert "secret" not in str(one)
    assert one == default_spool_dir("postgresql://app:secret@db/usage")
    assert one != default_spool_dir("postgresql://app:secret@db/other")


def test_a_sqlite_ledgers_spool_is_beside_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file ledger's spool is the directory beside the file, wherever the home directory is."""
    monkeypatch.delenv("METERLINE_SPOOL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_spool_dir(f"sqlite:///{tmp_path}/usage.db") == tmp_path / "usage.db.spool"


def test_an_existing_spool_in_the_old_place_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A SQLite ledger whose spool an earlier meterline kept in the data home still finds it there."""
    monkeypatch.delenv("METERLINE_SPOOL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path}/usage.db"
    old = tmp_path / "data/meterline/spool" / _digest(url)
    old.mkdir(parents=True)
    assert default_spool_dir(url) == old


def _digest(url: str) -> str:
    """The hash that names a destination's spool directory."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def test_the_configured_directory_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """METERLINE_SPOOL_DIR holds every spool, one subdirectory per destination."""
    monkeypatch.setenv("METERLINE_SPOOL_DIR", str(tmp_path / "spools"))
    assert default_spool_dir("sqlite:///usage.db") == tmp_path / "spools" / _digest("sqlite:///usage.db")


def test_without_a_home_the_spool_is_in_a_private_temp_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A service user whose home cannot hold a directory gets <tmp>/meterline-<uid>/spool/<hash>."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.delenv("METERLINE_SPOOL_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # let gettempdir() read TMPDIR again
    url = "postgresql://db/usage"
    assert default_spool_dir(url) == tmp_path / "tmp" / f"meterline-{os.getuid()}" / "spool" / _digest(url)


def test_a_path_under_a_file_is_not_usable(tmp_path: Path) -> None:
    """A spool directory is usable when it can be made: never under a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert spool_dir_usable(tmp_path / "new" / "spool")
    assert not spool_dir_usable(blocker / "spool")


@contextlib.contextmanager
def _files_at_most(size: int) -> Iterator[None]:
    """Let this process write files up to ``size`` bytes only (as a full disk would), for the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_batch_the_disk_cannot_take_is_taken_back_whole(tmp_path: Path) -> None:
    """A batch cut short by a full disk leaves none of its lines: what the spool holds is exact."""
    spool = Spool(tmp_path / "spool")
    first = make_events(3)
    spool.append(first)
    (segment,) = spool.segments()
    with _files_at_most(segment.stat().st_size + 700), pytest.raises(SpoolWriteError) as info:
        spool.append(make_events(40))
    assert info.value.kept == 0
    assert [event.id for event in iter_spooled(spool)] == [event.id for event in first]
    spool.append(make_events(2))  # a new segment: the spool works again once there is room
    assert spool.pending() == 5


def test_a_line_changed_on_disk_is_refused_as_record_would(tmp_path: Path) -> None:
    """A spooled line edited to a negative cost (or text no store keeps) is skipped, the rest replayed."""
    spool = Spool(tmp_path / "spool")
    events = make_events(3)
    spool.append(events)
    spool.close()
    (segment,) = spool.segments()
    lines = segment.read_text().splitlines()
    forged = json.loads(lines[1])
    forged[8] = -99998999700000000  # the cost, in pico-dollars
    lines[1] = json.dumps(forged)
    segment.write_text("\n".join(lines) + "\n")
    replayed = [event.id for event in iter_spooled(Spool(tmp_path / "spool"))]
    assert replayed == [events[0].id, events[2].id]


def test_a_segment_an_earlier_version_wrote_is_replayed(tmp_path: Path) -> None:
    """A segment of `to_dict` JSON objects (the first format) replays every event, exactly as written."""
    spool = Spool(tmp_path / "spool")
    spool.append(make_events(1))
    spool.close()
    (segment,) = spool.segments()
    events = make_events(4)
    segment.write_text("".join(json.dumps(event.to_dict()) + "\n" for event in events))
    ledger = MemoryLedger()
    assert Spool(tmp_path / "spool").replay(ledger) == 4
    assert [ledger.rows[event.id] for event in events] == events
