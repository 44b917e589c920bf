"""The batcher: batches, back-off and the spool, flush and close, the stats, fork and exit."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from meterline import ConfigurationError, Meter, Usage, UsageEvent
from meterline._delivery import Batcher, Outcome, Spool, check_seconds, check_size

SRC = Path(__file__).resolve().parents[2] / "src"


class ListBatcher(Batcher):
    """A batcher whose destination is a list of ids; it fails ``failures`` times, or waits at ``gate``."""

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.ids: list[str] = []
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.failures = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.refused: list[str] = []
        settings: dict[str, Any] = {
            "batch_size": 10,
            "flush_interval": 60.0,
            "max_queue": 1000,
            "retry_min": 0.01,
            "retry_max": 1.0,
            "exit_timeout": 5.0,
        }
        settings.update(options)
        super().__init__(
            name="test batcher", destination="the test list", spool=Spool(tmp_path / "spool"), **settings
        )

    def _deliver(self, batch: Sequence[UsageEvent]) -> Outcome:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the list is down")
        self.batches.append(len(batch))
        self.threads.add(threading.current_thread().name)
        self.ids.extend(event.id for event in batch)
        return Outcome(len(batch))

    def _full(self, event: UsageEvent) -> None:
        self._drop(event)
        self.refused.append(event.id)

    def _after_close(self, event: UsageEvent) -> None:
        self._drop(event)
        self.refused.append(event.id)


def make_events(count: int) -> list[UsageEvent]:
    """``count`` priced events from a fresh meter."""
    meter = Meter()
    return [
        meter.record(Usage(input_tokens=10 + index, output_tokens=5), model="gpt-4o", provider="openai")
        for index in range(count)
    ]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_the_thread_delivers_in_batches_of_at_most_batch_size(tmp_path: Path) -> None:
    """Submitted events reach the destination in order, from the batcher's own thread, batch_size at most."""
    batcher = ListBatcher(tmp_path, batch_size=7)
    events = make_events(50)
    for event in events:
        batcher.submit(event)
    assert batcher.flush(10)
    assert batcher.ids == [event.id for event in events]
    assert max(batcher.batches) <= 7
    assert batcher.threads == {"meterline-test-batcher"}
    stats = batcher.stats()
    assert (stats.submitted, stats.delivered, stats.queued, stats.spooled) == (50, 50, 0, 0)
    assert batcher.close()


def test_flush_interval_delivers_a_partial_batch(tmp_path: Path) -> None:
    """Fewer than batch_size events are delivered once flush_interval has passed, without a flush."""
    batcher = ListBatcher(tmp_path, batch_size=100, flush_interval=0.02)
    for event in make_events(3):
        batcher.submit(event)
    assert wait_until(lambda: len(batcher.ids) == 3)
    batcher.close()


def test_a_failure_spools_backs_off_and_replays(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A failed delivery is spooled, logged by the guard and retried from the spool; none lost or doubled."""
    batcher = ListBatcher(tmp_path, flush_interval=0.01)
    batcher.failures = 1
    events = make_events(25)
    with caplog.at_level(logging.WARNING, logger="meterline"):
        for event in events:
            batcher.submit(event)
        assert wait_until(lambda: len(batcher.ids) == 25 and batcher.spool.pending() == 0)
    assert sorted(batcher.ids) == sorted(event.id for event in events)
    stats = batcher.stats()
    assert stats.failures == 1
    assert stats.spooled >= 10
    assert stats.replayed == stats.spooled
    assert stats.committed == stats.delivered - stats.replayed == 25 - stats.spooled
    assert not stats.backend_down
    failed = [record for record in caplog.records if record.levelname == "ERROR"]
    assert "the test list failed for delivering 10 events (ConnectionError('the list is down'))" in (
        failed[0].getMessage()
    )
    assert "events are spooled" in failed[0].getMessage()
    assert "the test list works again" in caplog.text
    batcher.close()


def test_the_back_off_doubles_up_to_retry_max(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each failed retry doubles the wait before the next, from retry_min up to retry_max seconds."""
    batcher = ListBatcher(tmp_path, flush_interval=0.01, retry_min=0.01, retry_max=0.04)
    batcher.failures = 5
    with caplog.at_level(logging.ERROR, logger="meterline"):
        batcher.submit(make_events(1)[0])
        assert wait_until(lambda: len(batcher.ids) == 1)
    waits = re.findall(r"next try in ([0-9.]+) s", caplog.text)
    assert waits == ["0.01", "0.02", "0.04", "0.04", "0.04"]
    assert batcher.stats().failures == 5
    batcher.close()


def test_a_failing_spool_counts_and_logs_the_loss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the destination and the spool both fail: counted as lost, logged, and flush() says False."""
    (tmp_path / "spool").write_text("a file where the spool's directory should be")
    batcher = ListBatcher(tmp_path)
    batcher.failures = 1
    events = make_events(4)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        for event in events:
            batcher.submit(event)
        assert not batcher.flush(10)
    assert batcher.flush(10)  # each loss is reported once
    stats = batcher.stats()
    assert (stats.dropped, stats.lost, stats.spooled, stats.delivered) == (4, 4, 0, 0)
    assert "4 events that the test list failed to take: they are LOST" in caplog.text
    assert events[0].id in caplog.text
    batcher.close()


def test_a_failing_replay_of_the_spool_is_not_blamed_on_the_destination(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool that cannot be read is logged through the guard; the destination is not marked down."""
    batcher = ListBatcher(tmp_path, flush_interval=0.01)

    def unreadable(*args: object, **kwargs: object) -> int:
        raise PermissionError("the spool is unreadable")

    monkeypatch.setattr(batcher.spool, "replay", unreadable)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        batcher.submit(make_events(1)[0])
        assert wait_until(lambda: "replaying it into the test list" in caplog.text)
    stats = batcher.stats()
    assert (stats.failures, stats.backend_down, stats.delivered) == (0, False, 1)
    batcher.close()


def test_flush_waits_for_the_queue_and_flush_through_spool_for_the_spool(tmp_path: Path) -> None:
    """Flush returns once events are spooled; through_spool it retries at once and waits for the spool."""
    batcher = ListBatcher(tmp_path, retry_min=3600.0, retry_max=3600.0)
    batcher.failures = 1
    events = make_events(5)
    for event in events:
        batcher.submit(event)
    assert batcher.flush(10)
    assert batcher.spool.pending() == 5
    assert batcher.stats().backend_down
    assert batcher._flush(10, through_spool=True)
    assert batcher.spool.pending() == 0
    assert sorted(batcher.ids) == sorted(event.id for event in events)
    batcher.close()


def test_flush_and_close_time_out_and_close_spools_what_is_left(tmp_path: Path) -> None:
    """With the destination stuck, flush(timeout) returns False and close(timeout) spools the queue."""
    batcher = ListBatcher(tmp_path, batch_size=2)
    batcher.gate = threading.Event()
    events = make_events(6)
    for event in events:
        batcher.submit(event)
    assert batcher.entered.wait(5)
    assert not batcher.flush(0.05)
    assert not batcher.close(0.05)
    assert batcher.spool.pending() == 4  # the batch in flight stays with the destination
    batcher.gate.set()
    assert batcher._thread is not None
    batcher._thread.join(10)
    assert batcher.ids[:2] == [event.id for event in events[:2]]  # then, maybe, the spool's replay
    assert batcher.stats().queued == 0


def test_a_full_queue_and_a_closed_batcher_hand_the_event_to_the_subclass(tmp_path: Path) -> None:
    """Past max_queue submit calls _full, after close _after_close; both count in submitted."""
    batcher = ListBatcher(tmp_path, batch_size=100, max_queue=3)
    events = make_events(6)
    for event in events[:5]:
        batcher.submit(event)
    assert batcher.refused == [events[3].id, events[4].id]
    assert batcher.close(10)
    batcher.submit(events[5])
    assert batcher.refused == [events[3].id, events[4].id, events[5].id]
    stats = batcher.stats()
    assert (stats.submitted, stats.delivered, stats.dropped) == (6, 3, 3)


def test_a_bug_in_the_thread_is_logged_and_the_thread_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error on the thread is logged through the guard and the next batch is delivered."""

    class Buggy(ListBatcher):
        def _deliver(self, batch: Sequence[UsageEvent]) -> Outcome:
            if not self.batches:
                self.batches.append(0)
                return None  # type: ignore[return-value]  # the bug: no Outcome
            return super()._deliver(batch)

    batcher = Buggy(tmp_path, batch_size=1)
    events = make_events(2)
    with caplog.at_level(logging.ERROR, logger="meterline"):
        batcher.submit(events[0])
        assert batcher.flush(10)
        batcher.submit(events[1])
        assert batcher.flush(10)
    assert batcher.ids == [events[1].id]
    assert batcher._thread is not None
    assert batcher._thread.is_alive()
    assert "the delivery thread failed for the test list" in caplog.text
    assert batcher._guard.errors == 1
    batcher.close()


def test_a_batcher_is_a_context_manager(tmp_path: Path) -> None:
    """Leaving a with block closes the batcher, which delivers what is queued and stops the thread."""
    with ListBatcher(tmp_path) as batcher:
        for event in make_events(3):
            batcher.submit(event)
    assert len(batcher.ids) == 3
    assert batcher._thread is not None
    assert not batcher._thread.is_alive()


def test_a_forked_child_starts_empty_with_its_own_thread(tmp_path: Path) -> None:
    """After fork the child's queue and counters are empty and it delivers only its own events."""
    batcher = ListBatcher(tmp_path)
    parent_events, child_events = make_events(4), make_events(2)
    for event in parent_events:
        batcher.submit(event)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            before = batcher.stats()
            for event in child_events:
                batcher.submit(event)
            ok = batcher.flush(10)
            report = {"ok": ok, "queued": before.queued, "submitted": before.submitted, "ids": batcher.ids}
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    assert os.waitpid(pid, 0)[1] == 0
    assert report == {"ok": True, "queued": 0, "submitted": 0, "ids": [event.id for event in child_events]}
    assert batcher.flush(10)
    assert batcher.ids == [event.id for event in parent_events]
    batcher.close()


EXIT_SCRIPT = """
import sys
from meterline import Meter, Usage
from meterline._delivery import Batcher, Outcome, Spool

class Printer(Batcher):
    def _deliver(self, batch):
        print(*(event.id for event in batch), flush=True)
        return Outcome(len(batch))
    def _full(self, event):
        raise AssertionError
    def _after_close(self, event):
        raise AssertionError

batcher = Printer(name="printer", destination="stdout", spool=Spool(sys.argv[1]), batch_size=1000,
                  flush_interval=3600, max_queue=10_000, retry_min=1, retry_max=1, exit_timeout=10)
meter = Meter()
for _ in range(30):
    batcher.submit(meter.record(Usage(input_tokens=3, output_tokens=1), model="gpt-4o", provider="openai"))
print("submitted", flush=True)
"""


def test_the_exit_hook_closes_every_open_batcher(tmp_path: Path) -> None:
    """A process that exits without flush() or close() still delivers what it submitted."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("METERLINE_LEDGER", None)
    child = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "spool")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = child.stdout.splitlines()
    assert lines[0] == "submitted"
    assert len(" ".join(lines[1:]).split()) == 30


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_size, 0),
        (check_size, 1.0),
        (check_size, True),
        (check_seconds, 0),
        (check_seconds, float("nan")),
        (check_seconds, float("inf")),
        (check_seconds, True),
        (check_seconds, "1"),
    ],
)
def test_sizes_and_intervals_are_checked(check: Callable[[str, object], object], value: object) -> None:
    """A size must be a positive int, an interval a positive finite number; the error names both."""
    with pytest.raises(ConfigurationError, match=re.escape(f"size={value!r}")):
        check("size", value)
