"""The Redis budget store (extra ``redis``): processes on many hosts share one Redis.

Every reserve, settle and release is ONE Lua script call (``EVALSHA``, or ``EVAL`` when the
server does not have the script cached): one round trip, atomic on the server, because Redis
runs a script to the end before any other command.

Keys. Every key starts with the hash tag ``{prefix}``, so all of a store's keys live in one
Redis Cluster slot, which is what lets one script touch a reservation's several counters (on
a cluster, one store's budgets are served by one shard; use several prefixes to spread
them). A counter's id is its budget name and key tuple as JSON (``"daily"["u1","s1"]``),
which no other name and key can spell, whatever characters they hold. For a counter
``C`` of prefix ``p``:

* ``{p}:u:C:<bucket>``: a hash of the bucket's six sums (fields ``0`` to ``5``), expiring at
  `Line.expires_at` when set; ``{p}:ub:C``: a sorted set of its buckets (for rolling windows).
* ``{p}:h:C``: the live holds, reservation id → amounts; ``{p}:he:C``: their expiry times (a
  sorted set); ``{p}:ht:C``: the holds' sums, kept exact by ``HINCRBY``. Expired holds are
  deleted (and subtracted) whenever a script touches the counter.
* ``{p}:r:<rid>``: the counters a reservation holds; ``{p}:k:<budget>``: a budget's keys;
  ``{p}:alerts`` and ``{p}:defs``: claimed alerts and definitions.
* ``{p}:unit``: ``pico``, the unit the cost sums are in (pico-dollars, meterline's one money
  unit). A store written by an earlier development build, which counted nano-dollars, has
  definitions but no unit: it is refused rather than misread.

Exactness. Lua numbers are doubles, exact only up to 2**53. Sums are kept by ``HINCRBY`` (64-bit
integers on the server) and the scripts compare them as two exact halves (``high * 10**8 +
low``), so every amount below 2**63 is checked and returned exactly.
"""

from __future__ import annotations as _annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from meterline._extras import require
from meterline._storage import redact, scrub
from meterline.budgets._sqlite import decode_key, encode, matches
from meterline.budgets._store import COUNTER_MAX, METRICS, Line, Refusal, Vector
from meterline.exceptions import BudgetStoreError, ConfigurationError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBudgetStore"]

_PREFIX: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_HOLD_SLACK_MS: Final = 60_000
"""How much longer than its lease a hold's keys live on the server (clocks differ)."""
_INT64: Final = 2**63
_UNIT: Final = "pico"
"""The unit of the stored cost sums."""
_CLAIM_UNIT: Final = """
local unit = redis.call('GET', KEYS[1] .. ':unit')
if unit then return unit end
if redis.call('EXISTS', KEYS[1] .. ':defs') == 1 then return '' end
redis.call('SET', KEYS[1] .. ':unit', ARGV[1])
return ARGV[1]
"""
"""Marks a new store with the unit, and returns the unit of a store already in use ('' if unmarked)."""
_HALF: Final = 10**8
"""The scripts' numbers are ``high * _HALF + low``."""

_COMMON: Final = """
local P = KEYS[1]
local FIELDS = {'0', '1', '2', '3', '4', '5'}
local MAX, MAXH, MAXL = '9223372036854775807', 92233720368, 54775807  -- COUNTER_MAX, and halves

-- A non-negative decimal string as two exact doubles: s = h * 1e8 + l.
local function split(s)
  if not s or s == '' or string.sub(s, 1, 1) == '-' then return 0, 0 end
  local n = #s
  if n <= 8 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 8)), tonumber(string.sub(s, n - 7))
end

local function add(h, l, h2, l2)
  h, l = h + h2, l + l2
  if l >= 1e8 then return h + 1, l - 1e8 end
  return h, l
end

-- Take a reservation's hold off counter cid.
local function unhold(cid, rid)
  local hk = P .. ':h:' .. cid
  local held = redis.call('HGET', hk, rid)
  if not held then return end
  local tk = P .. ':ht:' .. cid
  local m = 0
  for amount in string.gmatch(held, '%d+') do
    if amount ~= '0' then redis.call('HINCRBY', tk, FIELDS[m + 1], '-' .. amount) end
    m = m + 1
  end
  redis.call('HDEL', hk, rid)
  local ek = P .. ':he:' .. cid
  redis.call('ZREM', ek, rid)
  if redis.call('EXISTS', ek) == 0 then redis.call('DEL', hk, tk) end
end

-- Delete the holds of counter cid whose lease ended at or before now.
local function clean(cid, now)
  local gone = redis.call('ZRANGEBYSCORE', P .. ':he:' .. cid, '-inf', now)
  for _, rid in ipairs(gone) do unhold(cid, rid) end
end

-- Used (buckets first..last) and reserved of counter cid, as 12 + 12 exact halves.
local function state(cid, first, last, out)
  local buckets
  if first == last then buckets = {last}
  else buckets = redis.call('ZRANGEBYSCORE', P .. ':ub:' .. cid, first, last) end
  local used = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
  for _, bucket in ipairs(buckets) do
    local sums = redis.call('HMGET', P .. ':u:' .. cid .. ':' .. bucket, unpack(FIELDS))
    for m = 1, 6 do
      used[2 * m - 1], used[2 * m] = add(used[2 * m - 1], used[2 * m], split(sums[m]))
    end
  end
  local held = redis.call('HMGET', P .. ':ht:' .. cid, unpack(FIELDS))
  for m = 1, 12 do out[#out + 1] = used[m] end
  for m = 1, 6 do
    local h, l = split(held[m])
    out[#out + 1] = h
    out[#out + 1] = l
  end
  return out
end

-- Delete the holds of a reservation, on every counter it holds.
local function drop(ridkey, rid)
  for _, cid in ipairs(redis.call('SMEMBERS', ridkey)) do unhold(cid, rid) end
  redis.call('DEL', ridkey)
end

-- Let key live at least ms more milliseconds.
local function keep(key, ms)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < ms) then redis.call('PEXPIRE', key, ms) end
end
"""

# ARGV: rid, rid's key, now, expires, ttl (ms), lines, then per line: counter id, first, last,
# budget's key set, key, 6 amounts, 6 limits (COUNTER_MAX for none).
_RESERVE: Final = (
    _COMMON
    + """
local rid, ridkey, now, expires = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, n = tonumber(ARGV[5]), tonumber(ARGV[6])
local per = 17
for j = 0, n - 1 do
  local a = 7 + j * per
  local cid = ARGV[a]
  clean(cid, now)
  local s = state(cid, ARGV[a + 1], ARGV[a + 2], {})
  for m = 1, 6 do  -- every metric has a limit: its own, else what a counter holds
    local h, l = add(s[2 * m - 1], s[2 * m], s[11 + 2 * m], s[12 + 2 * m])
    h, l = add(h, l, split(ARGV[a + 4 + m]))
    local lh, ll = split(ARGV[a + 10 + m])
    if h > lh or (h == lh and l > ll) then
      return {j, m - 1, s[2 * m - 1], s[2 * m], s[11 + 2 * m], s[12 + 2 * m]}
    end
  end
end
for j = 0, n - 1 do
  local a = 7 + j * per
  local cid = ARGV[a]
  local hk, ek, tk = P .. ':h:' .. cid, P .. ':he:' .. cid, P .. ':ht:' .. cid
  redis.call('HSET', hk, rid, table.concat({ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8],
    ARGV[a + 9], ARGV[a + 10]}, ' '))
  redis.call('ZADD', ek, expires, rid)
  for m = 1, 6 do
    local amount = ARGV[a + 4 + m]
    if amount ~= '0' then redis.call('HINCRBY', tk, FIELDS[m], amount) end
  end
  keep(hk, ttl)
  keep(ek, ttl)
  if redis.call('EXISTS', tk) == 1 then keep(tk, ttl) end
  redis.call('SADD', ridkey, cid)
  redis.call('SADD', ARGV[a + 3], ARGV[a + 4])
end
keep(ridkey, ttl)
return {}
"""
)

# ARGV: rid ('' for none), rid's key, lines, then per line: counter id, first, last, the
# bucket's expiry ('' for none, else whole seconds since the epoch), budget's key set, key,
# 6 amounts.
_SETTLE: Final = (
    _COMMON
    + """
local rid, ridkey, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
if rid ~= '' then drop(ridkey, rid) end
local per = 12
local out = {}
for j = 0, n - 1 do
  local a = 4 + j * per
  local cid, last, expires = ARGV[a], ARGV[a + 2], ARGV[a + 3]
  local bk, zk = P .. ':u:' .. cid .. ':' .. last, P .. ':ub:' .. cid
  local sums = redis.call('HMGET', bk, unpack(FIELDS))
  for m = 1, 6 do
    local amount = ARGV[a + 5 + m]
    local h, l = split(sums[m])
    h, l = add(h, l, split(amount))
    if h > MAXH or (h == MAXH and l > MAXL) then  -- saturate: the counter stops at 2**63 - 1
      redis.call('HSET', bk, FIELDS[m], MAX)
    elseif amount ~= '0' then
      redis.call('HINCRBY', bk, FIELDS[m], amount)
    end
  end
  local fresh = redis.call('EXISTS', zk) == 0
  redis.call('ZADD', zk, last, last)
  if expires == '' then
    redis.call('PERSIST', zk)
  else
    redis.call('EXPIREAT', bk, expires)
    local ttl = redis.call('TTL', zk)
    local left = tonumber(expires) - tonumber(redis.call('TIME')[1])
    if fresh or (ttl >= 0 and ttl < left) then redis.call('EXPIREAT', zk, expires) end
  end
  redis.call('SADD', ARGV[a + 4], ARGV[a + 5])
  local s = state(cid, ARGV[a + 1], last, {})
  for m = 1, 12 do out[#out + 1] = s[m] end
end
return out
"""
)

_RELEASE: Final = _COMMON + "\ndrop(ARGV[2], ARGV[1])\nreturn {}\n"

# ARGV: now, then counter id, first, last of each line.
_READ: Final = (
    _COMMON
    + """
local now = ARGV[1]
local out = {}
for a = 2, #ARGV, 3 do
  clean(ARGV[a], now)
  state(ARGV[a], ARGV[a + 1], ARGV[a + 2], out)
end
return out
"""
)

# ARGV: budget's key set, budget's JSON. The keys with usage or holds; the others are dropped.
_KEYS: Final = (
    _COMMON
    + """
local live = {}
for _, key in ipairs(redis.call('SMEMBERS', ARGV[1])) do
  local cid = ARGV[2] .. key
  if redis.call('EXISTS', P .. ':ub:' .. cid) == 1 or redis.call('EXISTS', P .. ':he:' .. cid) == 1 then
    live[#live + 1] = key
  else
    redis.call('SREM', ARGV[1], key)
  end
end
return live
"""
)

# ARGV: budget's key set, budget's JSON, then the keys to delete.
_FORGET: Final = (
    _COMMON
    + """
local count = 0
for a = 3, #ARGV do
  local cid = ARGV[2] .. ARGV[a]
  local zk = P .. ':ub:' .. cid
  for _, bucket in ipairs(redis.call('ZRANGE', zk, 0, -1)) do
    redis.call('DEL', P .. ':u:' .. cid .. ':' .. bucket)
  end
  local gone = redis.call('DEL', zk, P .. ':h:' .. cid, P .. ':he:' .. cid, P .. ':ht:' .. cid)
  if redis.call('SREM', ARGV[1], ARGV[a]) == 1 or gone > 0 then count = count + 1 end
end
return count
"""
)


class _Script:
    """A Lua script, sent as ``EVALSHA`` (one round trip), or ``EVAL`` when not cached."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


_SCRIPTS: Final = {
    name: _Script(source)
    for name, source in (
        ("reserve", _RESERVE),
        ("settle", _SETTLE),
        ("release", _RELEASE),
        ("read", _READ),
        ("keys", _KEYS),
        ("forget", _FORGET),
    )
}


class RedisBudgetStore:
    """Budget counters in Redis: one script call per reserve, settle and release.

    Thread-safe and fork-safe through redis-py's connection pool (a forked child opens its
    own connections). Commands are never retried: a script whose reply was lost may have
    run, and running a settle twice would charge twice.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
            ``unix:///path/to/socket``.
        prefix: What every key starts with, inside the hash tag: ``{prefix}:…``. Letters,
            digits and ``_.:-``, at most 100 characters.
        timeout: Seconds to wait to connect, and for each reply.

    Raises:
        ConfigurationError: when the URL or the prefix is not usable.
        BudgetStoreError: when the server cannot be reached.
        MissingExtraError: when redis-py is not installed (extra ``redis``).
    """

    url: str
    """Where the store is, without the password."""

    def __init__(self, url: str, prefix: str = "meterline", *, timeout: float = 5.0) -> None:
        if type(url) is not str or url.split("://", 1)[0].lower() not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"url={url!r}: expected redis://host[:port][/db], rediss://… or unix://…"
            )
        if type(prefix) is not str or not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"prefix={prefix!r}: expected 1 to 100 letters, digits or '_.:-' (it goes in a hash tag)"
            )
        seconds: object = timeout
        if type(seconds) not in (int, float) or not seconds > 0:  # type: ignore[operator]
            raise ConfigurationError(f"timeout={timeout!r}: expected a positive number of seconds")
        redis_module = require("redis", "redis")
        from redis.backoff import NoBackoff  # noqa: PLC0415 - the redis extra, loaded when used
        from redis.retry import Retry  # noqa: PLC0415 - the redis extra, loaded when used

        self.url = redact(url)
        self._secrets = url  # what scrub() removes from the driver's messages
        self.prefix = prefix
        """The prefix inside every key's hash tag."""
        self._tag = f"{{{prefix}}}"
        self._error: type[Exception] = redis_module.RedisError
        self._noscript: type[Exception] = redis_module.exceptions.NoScriptError
        self._closed = False
        try:
            self._client: redis.Redis = redis_module.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
            )
        except ValueError as exc:
            message = scrub(f"url={self.url!r}: {exc}", self._secrets)
            raise ConfigurationError(message) from exc
        try:
            for script in _SCRIPTS.values():  # cached now, so that calls are one EVALSHA each
                self._client.execute_command("SCRIPT", "LOAD", script.source)
            unit = self._client.execute_command("EVAL", _CLAIM_UNIT, 1, self._tag, _UNIT)
        except self._error as exc:
            self._client.close()
            raise BudgetStoreError(
                scrub(f"cannot reach the Redis budget store at {self.url}: {exc}", self._secrets)
            ) from exc
        if unit != _UNIT.encode():
            self._client.close()
            found = repr(unit) if unit else "nano-dollars (an earlier development build)"
            raise BudgetStoreError(
                f"the Redis budget store at {self.url} (prefix {prefix!r}) counts cost in {found}, "
                "not pico-dollars; clear its keys or use another prefix"
            )

    def __repr__(self) -> str:
        return f"RedisBudgetStore({self.url!r}, prefix={self.prefix!r})"

    def _call(self, what: str, name: str, args: Sequence[str | int | float | bytes]) -> Any:
        """Run script ``name``: one ``EVALSHA``, or one ``EVAL`` if the server lost the script."""
        script = _SCRIPTS[name]
        try:
            try:
                return self._live().execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", script.sha, 1, self._tag, *args
                )
            except self._noscript:  # flushed or restarted: EVAL sends it (and caches it again)
                return self._live().execute_command(  # type: ignore[no-untyped-call]
                    "EVAL", script.source, 1, self._tag, *args
                )
        except self._error as exc:
            raise BudgetStoreError(
                scrub(f"{what} failed on the Redis budget store at {self.url}: {exc}", self._secrets)
            ) from exc

    def _key(self, kind: str, name: str) -> str:
        return f"{self._tag}:{kind}:{name}"

    # -- BudgetStore --------------------------------------------------------------------

    def reserve(
        self, rid: str, lines: Sequence[Line], amounts: Sequence[Vector], now: float, lease: float
    ) -> Refusal | None:
        """Hold ``amounts`` on ``lines`` until ``now + lease``, all or nothing, in one script call."""
        ttl = math.ceil(lease * 1000) + _HOLD_SLACK_MS
        args: list[str | int | float] = [
            rid,
            self._key("r", encode(rid)),
            repr(now),
            repr(now + lease),
            ttl,
            len(lines),
        ]
        for line, amount in zip(lines, amounts, strict=True):
            budget = encode(line.budget)
            args += (budget + encode(line.key), line.first_bucket, line.bucket, self._key("k", budget))
            args.append(encode(line.key))
            args += _exact(amount)
            # A metric without a limit is limited by what a counter holds (COUNTER_MAX).
            args += (COUNTER_MAX if limit is None else _exact1(limit) for limit in line.limits)
        found = self._call("reserve", "reserve", args)
        if not found:
            return None
        index, metric, used_high, used_low, held_high, held_low = (int(value) for value in found)
        limit = lines[index].limits[metric]
        return Refusal(
            index,
            metric,
            COUNTER_MAX if limit is None else limit,
            used_high * _HALF + used_low,
            held_high * _HALF + held_low,
            amounts[index][metric],
        )

    def settle(
        self, rid: str | None, lines: Sequence[Line], amounts: Sequence[Vector], now: float
    ) -> list[Vector]:
        """Delete the holds of ``rid`` and add ``amounts`` to ``lines``, in one script call."""
        args: list[str | int | float] = [
            "" if rid is None else rid,
            "" if rid is None else self._key("r", encode(rid)),
            len(lines),
        ]
        for line, amount in zip(lines, amounts, strict=True):
            budget = encode(line.budget)
            expires = "" if line.expires_at is None else math.ceil(line.expires_at)
            args += (budget + encode(line.key), line.first_bucket, line.bucket, expires)
            args += (self._key("k", budget), encode(line.key), *_exact(amount))
        halves = self._call("settle", "settle", args)
        return [_vectors(halves[12 * index : 12 * index + 12]) for index in range(len(lines))]

    def release(self, rid: str) -> None:
        """Delete the holds of ``rid``, in one script call."""
        self._call("release", "release", [rid, self._key("r", encode(rid))])

    def read(self, lines: Sequence[Line], now: float) -> list[tuple[Vector, Vector]]:
        """``(used, reserved)`` of each line at ``now``, in one script call."""
        args: list[str | int | float] = [repr(now)]
        for line in lines:
            args += (encode(line.budget) + encode(line.key), line.first_bucket, line.bucket)
        halves = self._call("read", "read", args)
        return [
            (
                _vectors(halves[24 * index : 24 * index + 12]),
                _vectors(halves[24 * index + 12 : 24 * index + 24]),
            )
            for index in range(len(lines))
        ]

    def keys(self, budget: str) -> list[tuple[str, ...]]:
        """The keys of ``budget``'s counters that have usage or holds, sorted."""
        name = encode(budget)
        found = self._call("keys", "keys", [self._key("k", name), name])
        return sorted(decode_key(key) for key in found)

    def forget(self, budget: str, key: tuple[str | None, ...]) -> int:
        """Delete ``budget``'s counters whose key matches (``None`` matches anything)."""
        name = encode(budget)
        keyset = self._key("k", name)
        found = self._call("forget", "keys", [keyset, name])
        doomed = [text for text in found if matches(decode_key(text), key)]
        if not doomed:
            return 0
        return int(self._call("forget", "forget", [keyset, name, *doomed]))

    def claim_alert(self, budget: str, key: tuple[str, ...], window: int, threshold: int) -> bool:
        """``True`` the first time this (budget, key, window, threshold) is claimed, across hosts."""
        claim = json.dumps([budget, list(key), window, threshold], ensure_ascii=True, separators=(",", ":"))
        try:
            return bool(self._live().sadd(self._key("alerts", ""), claim))
        except self._error as exc:
            raise BudgetStoreError(
                scrub(f"claim_alert failed on the Redis budget store at {self.url}: {exc}", self._secrets)
            ) from exc

    def define(self, budget: str, spec: str) -> None:
        """Store (or replace) a budget's definition."""
        try:
            self._live().hset(self._key("defs", ""), encode(budget), spec)
        except self._error as exc:
            raise BudgetStoreError(
                scrub(f"define failed on the Redis budget store at {self.url}: {exc}", self._secrets)
            ) from exc

    def definitions(self) -> dict[str, str]:
        """Every stored budget definition, by name."""
        try:
            found: dict[bytes, bytes] = self._live().hgetall(self._key("defs", ""))  # type: ignore[assignment]
        except self._error as exc:
            raise BudgetStoreError(
                scrub(f"definitions failed on the Redis budget store at {self.url}: {exc}", self._secrets)
            ) from exc
        return {json.loads(name): spec.decode() for name, spec in found.items()}

    def close(self) -> None:
        """Close the connections. Idempotent; the store refuses calls afterwards."""
        self._closed = True
        self._client.close()

    def _live(self) -> redis.Redis:
        """The client, unless the store was closed (redis-py would silently connect again)."""
        if self._closed:
            raise BudgetStoreError(f"the budget store at {self.url} is closed")
        return self._client


def _exact1(value: int) -> int:
    """``value``, refused unless the server can count it exactly (0 ≤ value < 2**63)."""
    if not 0 <= value < _INT64:
        raise BudgetStoreError(f"{value}: the Redis budget store counts integers from 0 to 2**63 - 1")
    return value


def _exact(amount: Vector) -> tuple[int, ...]:
    return tuple(_exact1(value) for value in amount)


def _vectors(halves: Sequence[int]) -> Vector:
    """Six values from their twelve exact halves."""
    t, i, o, c, r, k = (
        min(COUNTER_MAX, int(halves[2 * m]) * _HALF + int(halves[2 * m + 1])) for m in range(len(METRICS))
    )
    return (t, i, o, c, r, k)
