"""`prefetched` reads a generator on a thread of its own, a bounded number of items ahead, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import pytest

from meterline.ledger._prefetch import _AHEAD, prefetched


def _numbers(count: int, made: list[int], closed: threading.Event) -> Generator[int, None, None]:
    """0 to ``count - 1``, noting each one made and the thread it was made on, then that it was closed."""
    try:
        for number in range(count):
            made.append(number)
            yield number
    finally:
        closed.set()


def test_every_item_comes_in_order_from_another_thread() -> None:
    """The caller gets each item once, in the generator's order; the generator runs on the reader thread."""
    threads: list[str] = []

    def source() -> Generator[int, None, None]:
        for number in range(500):
            threads.append(threading.current_thread().name)
            yield number

    assert list(prefetched(source())) == list(range(500))
    assert set(threads) == {"meterline-ledger-read"}


def test_the_reader_stays_a_bounded_number_of_items_ahead() -> None:
    """While the caller holds an item, the reader makes at most `_AHEAD` more, and one it cannot hand over."""
    made: list[int] = []
    closed = threading.Event()
    items = prefetched(_numbers(100, made, closed))
    taken = [next(items)]
    time.sleep(0.2)  # time enough for an unbounded reader to make all 100
    assert len(made) <= len(taken) + _AHEAD + 1
    taken.extend(items)
    assert taken == list(range(100))
    assert closed.is_set()


def test_an_error_of_the_reader_is_raised_in_the_caller_after_the_items_before_it() -> None:
    """A generator that fails after two items gives those two, then its exception, in the caller."""

    def failing() -> Generator[int, None, None]:
        yield 1
        yield 2
        raise ValueError("the store went away")

    items = prefetched(failing())
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(ValueError, match="the store went away"):
        next(items)


def test_a_caller_that_stops_early_stops_and_closes_the_reader() -> None:
    """Closing the iterator after one item closes the generator and ends the reader before it returns."""
    made: list[int] = []
    closed = threading.Event()
    items = prefetched(_numbers(10_000, made, closed))
    assert next(items) == 0
    items.close()  # as a `for` loop left by `break` does when the iterator is dropped
    assert closed.is_set()
    assert not any(thread.name == "meterline-ledger-read" for thread in threading.enumerate())
    assert len(made) < 10_000
