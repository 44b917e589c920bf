"""`YieldingLock` excludes as a lock does, is released on an error, and waits without blocking on it."""

from __future__ import annotations

import threading
import time

import pytest

from meterline._yielding_lock import YieldingLock


def test_threads_contending_for_it_never_overlap() -> None:
    """Four threads each add 20,000 times under the lock, reading and writing apart: no addition is lost."""
    lock = YieldingLock()
    box = [0]
    inside = [0]
    overlaps = [0]

    def work() -> None:
        for _ in range(20_000):
            with lock:
                inside[0] += 1
                if inside[0] != 1:
                    overlaps[0] += 1
                value = box[0]
                if value % 1000 == 0:
                    time.sleep(0)  # give up the GIL while holding the lock: others must wait
                box[0] = value + 1
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (box[0], overlaps[0]) == (80_000, 0)


def test_an_error_inside_releases_it() -> None:
    """A with-block that raises leaves the lock free for the next holder."""
    lock = YieldingLock()
    with pytest.raises(ValueError, match="inside"), lock:
        raise ValueError("inside")
    assert not lock.locked()
    with lock:
        assert lock.locked()


def test_a_waiter_takes_it_once_the_holder_lets_go() -> None:
    """A thread waits while another holds it (the GIL free meanwhile), then takes it after the release."""
    lock = YieldingLock()
    taken = threading.Event()

    def waiter() -> None:
        with lock:
            taken.set()

    with lock:
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not taken.wait(0.1)  # the main thread runs while the waiter waits: no GIL held
    thread.join(timeout=10)
    assert taken.is_set()
    assert not lock.locked()
