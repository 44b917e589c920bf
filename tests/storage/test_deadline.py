"""Deadlines cut a connection whose operation overruns, and only such a connection."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from meterline import ConfigurationError
from meterline._storage import check_bound, deadline


def test_an_overrunning_wait_is_cut_at_its_deadline() -> None:
    """A recv() that no answer will end returns once its deadline passes, marked as cut."""
    client, server = socket.socketpair()
    with client, server:
        start = time.monotonic()
        with deadline(client.fileno(), 0.2) as bound:
            received = client.recv(1)  # the peer never sends: only the cut ends this wait
        elapsed = time.monotonic() - start
    assert received == b""
    assert bound is not None
    assert bound.cut
    assert 0.15 < elapsed < 2.0


def test_an_operation_done_in_time_is_left_alone() -> None:
    """A connection whose operation ended before its deadline is never cut, even later."""
    client, server = socket.socketpair()
    with client, server:
        with deadline(client.fileno(), 0.1) as bound:
            server.sendall(b"x")
            assert client.recv(1) == b"x"
        time.sleep(0.3)  # past the deadline: the watchdog must not touch the socket now
        server.sendall(b"y")
        assert client.recv(1) == b"y"
        assert bound is not None
        assert not bound.cut


def test_many_threads_each_get_their_own_deadline() -> None:
    """Deadlines of concurrent operations are independent: only the overrunning ones are cut."""
    results: dict[int, bool] = {}

    def run(index: int) -> None:
        client, server = socket.socketpair()
        with client, server:
            with deadline(client.fileno(), 0.2 if index % 2 else 5.0) as bound:
                if index % 2 == 0:
                    server.sendall(b"x")
                client.recv(1)
            assert bound is not None
            results[index] = bound.cut

    threads = [threading.Thread(target=run, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {index: bool(index % 2) for index in range(8)}


def test_none_is_no_bound() -> None:
    """``None`` bounds nothing and yields no deadline."""
    client, server = socket.socketpair()
    with client, server, deadline(client.fileno(), None) as bound:
        assert bound is None


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_bounds_are_refused(value: object) -> None:
    """A bound must be a positive, finite number of seconds, or None."""
    with pytest.raises(ConfigurationError, match="timeout="):
        check_bound(value)


def test_good_bounds_are_floats() -> None:
    """Numbers of seconds are taken as floats; None stays None."""
    assert check_bound(2) == 2.0
    assert check_bound(0.5) == 0.5
    assert check_bound(None) is None
