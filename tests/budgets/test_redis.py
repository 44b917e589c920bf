"""The Redis budget store passes the conformance suite against a real server, one script call per step."""

from __future__ import annotations

import multiprocessing
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from meterline.exceptions import BudgetStoreError, ConfigurationError
from tests.budgets.conformance import HOSTILE, NOW, StoreConformance, check_a_frozen_store_gives_up, line, vec
from tests.budgets.stores import delete_prefix
from tests.ledger.services import require_redis
from tests.storage.freezer import frozen_relay

redis = pytest.importorskip("redis")

from meterline.budgets._redis import RedisBudgetStore  # noqa: E402 - after the skip


@pytest.fixture
def fresh() -> Iterator[tuple[str, str]]:
    """The test server's URL and a new prefix, whose keys are deleted afterwards."""
    url = require_redis()
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    delete_prefix(url, prefix)


class TestRedis(StoreConformance):
    """The conformance suite on Redis, one fresh prefix per test."""

    @pytest.fixture
    def store(self, fresh: tuple[str, str]) -> Iterator[RedisBudgetStore]:
        """A fresh store under a new prefix."""
        store = RedisBudgetStore(*fresh)
        yield store
        store.close()


class CountingSends:
    """Counts the commands redis-py sends (each a round trip), by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        original = redis.connection.AbstractConnection.send_command

        def send_command(connection: object, *args: object, **options: object) -> None:
            self.sent.append(str(args[0]).upper())
            original(connection, *args, **options)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_command", send_command)


def test_one_round_trip_per_reserve_settle_release(
    fresh: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reserve, settle and release over three lines are one EVALSHA each, as the server also counts."""
    url, prefix = fresh
    store = RedisBudgetStore(url, prefix)
    lines = [
        line("org", ("o",), cost=10**9),
        line("user", ("u",), cost=10**6),
        line("session", ("s",), tokens=10),
    ]
    admin = redis.Redis.from_url(url)

    def evalshas() -> int:
        return int(admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    before = evalshas()
    sends = CountingSends(monkeypatch)
    assert store.reserve("r1", lines, [vec(5, cost=300)] * 3, NOW, 30) is None
    assert sends.sent == ["EVALSHA"]
    store.settle("r1", lines, [vec(4, cost=250)] * 3, NOW)
    assert sends.sent == ["EVALSHA", "EVALSHA"]
    assert store.reserve("r2", lines, [vec(1, cost=1)] * 3, NOW, 30) is None
    store.release("r2")
    assert sends.sent == ["EVALSHA"] * 4
    monkeypatch.undo()
    assert evalshas() - before == 4
    assert store.read(lines, NOW) == [(vec(4, cost=250), vec(0))] * 3
    admin.close()
    store.close()


def test_flushed_scripts_fall_back_to_eval(fresh: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """After SCRIPT FLUSH a call still works: NOSCRIPT, then one EVAL that caches it again."""
    url, prefix = fresh
    store = RedisBudgetStore(url, prefix)
    admin = redis.Redis.from_url(url)
    admin.script_flush()
    sends = CountingSends(monkeypatch)
    assert store.reserve("r1", [line(tokens=10)], [vec(3)], NOW, 30) is None
    assert sends.sent == ["EVALSHA", "EVAL"]
    assert store.reserve("r2", [line(tokens=10)], [vec(3)], NOW, 30) is None
    assert sends.sent == ["EVALSHA", "EVAL", "EVALSHA"]
    store.settle("r1", [line(tokens=10)], [vec(2)], NOW)
    monkeypatch.undo()
    assert store.read([line()], NOW) == [(vec(2), vec(3))]
    admin.close()
    store.close()


def test_all_keys_share_one_hash_tag(fresh: tuple[str, str]) -> None:
    """Every key the store writes, hostile names included, hashes to the slot of its prefix tag."""
    url, prefix = fresh
    store = RedisBudgetStore(url, prefix)
    for name in HOSTILE:
        hostile = line(name, (name, "}{"), tokens=10, bucket=60)
        store.reserve(name, [hostile, line(tokens=10)], [vec(1), vec(1)], NOW, 30)
        store.settle(name if name != HOSTILE[0] else None, [hostile], [vec(1)], NOW)
    store.claim_alert("b", ("u1",), 0, 800)
    store.define("b", "{}")
    admin = redis.Redis.from_url(url)
    keys = list(admin.scan_iter(match=f"{{{prefix}}}:*", count=1000))
    assert len(keys) > 20
    from redis.crc import key_slot

    slot = key_slot(f"{{{prefix}}}".encode())
    assert {key_slot(key) for key in keys} == {slot}
    admin.close()
    store.close()


def test_expired_holds_are_deleted(fresh: tuple[str, str]) -> None:
    """A hold whose lease passed is subtracted and its keys deleted when the counter is next touched."""
    url, prefix = fresh
    store = RedisBudgetStore(url, prefix)
    lines = [line(tokens=100)]
    store.reserve("r1", lines, [vec(60)], NOW, 5)
    store.reserve("r2", lines, [vec(30)], NOW, 50)
    assert store.read(lines, NOW + 6) == [(vec(0), vec(30))]
    admin = redis.Redis.from_url(url)
    holds = admin.hkeys(f'{{{prefix}}}:h:"b"["u1"]')
    assert holds == [b"r2"]
    store.release("r2")
    assert list(admin.scan_iter(match=f"{{{prefix}}}:h*")) == []
    admin.close()
    store.close()


def test_bucket_ttl_follows_expires_at(fresh: tuple[str, str]) -> None:
    """A bucket with ``expires_at`` gets that expiry on the server; one without stays."""
    url, prefix = fresh
    store = RedisBudgetStore(url, prefix)
    soon = int(time.time()) + 100
    windowed = line("day", ("u",), bucket=86_400)
    windowed = type(windowed)(windowed.budget, windowed.key, 86_400, 86_400, windowed.limits, soon + 0.5)
    store.settle(None, [windowed, line("forever", ("u",))], [vec(1), vec(1)], NOW)
    admin = redis.Redis.from_url(url)
    assert admin.expiretime(f'{{{prefix}}}:u:"day"["u"]:86400') == soon + 1
    assert admin.expiretime(f'{{{prefix}}}:ub:"day"["u"]') == soon + 1
    assert admin.ttl(f'{{{prefix}}}:u:"forever"["u"]:0') == -1
    admin.close()
    store.close()


def test_amounts_past_64_bits_are_refused(fresh: tuple[str, str]) -> None:
    """An amount the server cannot count exactly raises BudgetStoreError and books nothing."""
    store = RedisBudgetStore(*fresh)
    with pytest.raises(BudgetStoreError, match="2\\*\\*63"):
        store.settle(None, [line(), line("c")], [vec(1), vec(2**63)], NOW)
    assert store.read([line()], NOW) == [(vec(0), vec(0))]
    store.close()


def test_near_2_63_is_exact(fresh: tuple[str, str]) -> None:
    """Sums and limits near 2**63, far past a double's 2**53, are compared and returned exactly."""
    store = RedisBudgetStore(*fresh)
    big = 2**62
    lines = [line(cost=2**63 - 1)]
    store.settle(None, lines, [vec(cost=big)], NOW)
    assert store.reserve("r1", lines, [vec(cost=big - 2)], NOW, 30) is None
    refusal = store.reserve("r2", lines, [vec(cost=2)], NOW, 30)
    assert refusal is not None
    assert (refusal.used, refusal.reserved) == (big, big - 2)
    assert store.reserve("r3", lines, [vec(cost=1)], NOW, 30) is None
    assert store.read(lines, NOW) == [(vec(cost=big), vec(cost=big - 1))]
    store.close()


@pytest.mark.parametrize("prefix", ["", "a}b", "a{b", "x y", "é", "a" * 101])
def test_bad_prefix_is_a_configuration_error(prefix: str) -> None:
    """A prefix that could break the hash tag is refused, naming it."""
    with pytest.raises(ConfigurationError, match="prefix="):
        RedisBudgetStore("redis://127.0.0.1:1/0", prefix)


def test_bad_url_is_a_configuration_error() -> None:
    """A URL that is not redis://, rediss:// or unix:// is refused, naming it."""
    with pytest.raises(ConfigurationError, match="url='http://x'"):
        RedisBudgetStore("http://x")


def test_closed_port_fails_fast() -> None:
    """A server that is not there raises BudgetStoreError within seconds, the password hidden."""
    started = time.monotonic()
    with pytest.raises(BudgetStoreError) as caught:
        RedisBudgetStore("redis://:secret@127.0.0.1:1/0")
    assert time.monotonic() - started < 5
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value.__cause__, redis.RedisError)


def _child(store: RedisBudgetStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        store.settle(None, [line()], [vec(2)], NOW)
        queue.put(store.read([line()], NOW)[0][0])
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_fork_safe(fresh: tuple[str, str]) -> None:
    """A forked child opens its own connections; the parent's keep working afterwards."""
    store = RedisBudgetStore(*fresh)
    store.settle(None, [line()], [vec(1)], NOW)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(target=_child, args=(store, queue))
    child.start()
    assert queue.get(timeout=30) == vec(3)
    child.join(30)
    assert child.exitcode == 0
    store.settle(None, [line()], [vec(4)], NOW)
    assert store.read([line()], NOW) == [(vec(7), vec(0))]
    store.close()


def test_a_frozen_server_is_given_up_on_within_the_timeout(fresh: tuple[str, str]) -> None:
    """A Redis that stops answering (frozen, not down) fails each operation within ``timeout``."""
    url, prefix = fresh
    with frozen_relay(url, 6379) as relay:
        store = RedisBudgetStore(relay.url(url), prefix, timeout=1.0)
        try:
            check_a_frozen_store_gives_up(store, relay, bound=1.0 + 1.5)
        finally:
            store.close()


def test_closed_store_raises(fresh: tuple[str, str]) -> None:
    """A closed store refuses calls (redis-py would connect again); closing twice is fine."""
    store = RedisBudgetStore(*fresh)
    store.close()
    store.close()
    with pytest.raises(BudgetStoreError, match="closed"):
        store.read([line()], NOW)
    with pytest.raises(BudgetStoreError, match="closed"):
        store.release("r")
