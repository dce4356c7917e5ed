"""Airtable's per-base and per-token rate limits shared by every extract worker, kept in Redis.

A request goes out in two steps, both Lua scripts timed by Redis' clock (the only one every
worker agrees on):

1. ``reserve`` books the next slot of the base (spaced 1/(margin·rate)) and of the token
   (spaced 1/(margin·50)), never before a running penalty ends; the caller sleeps until the
   later of the two. The token's schedule advances from its own last slot, not from the
   base's: a base whose processes have booked slots a second ahead must not push the slots of
   every other base on the token behind its own.
2. ``admit``, just before sending, checks what the slots cannot see: a penalty that began
   while the caller slept (it then waits it out and books a new slot, so after a 429 every
   process waits the penalty once and the requests resume spaced, not all at once), and the
   rolling window itself: at most ``limit`` admissions in any 1/margin seconds, counted on
   the admission times, so a worker that overslept its slot cannot crowd the next one.

The margin (``app.extractors.ratelimit.PACING_MARGIN``) is measured by ``bench/pacing.py``.
Tokens appear only as keyed fingerprints (``token_fingerprint``), never in clear.

For the operator view, per base: ``stats(base_key)`` (requests admitted, 429s received,
penalties started, seconds of penalty left) and ``penalty_remaining(base_key)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from app.extractors.ratelimit import (
    PACING_MARGIN,
    TOKEN_REQUESTS_PER_SECOND,
    pacing_interval,
    token_rate,
)
from app.settings import get_settings

# Keys are kept this long past their last use, so idle bases leave nothing behind.
_IDLE_TTL_MS = 120_000
# Per-base counters outlive the last request by a week, for the operator view.
_STATS_TTL_S = 7 * 24 * 3600

# KEYS: base next-slot, base penalty, token next-slot ('' when no token)
# ARGV: base interval µs, token interval µs, idle ttl ms
# Returns the µs to wait before the booked slot.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local penalty = tonumber(redis.call('GET', KEYS[2]) or '0')
if slot < now then slot = now end
if slot < penalty then slot = penalty end
if KEYS[3] ~= '' then
  local token_slot = tonumber(redis.call('GET', KEYS[3]) or '0')
  if token_slot < now then token_slot = now end
  if slot < token_slot then slot = token_slot end
  redis.call('SET', KEYS[3], token_slot + tonumber(ARGV[2]), 'PX', tonumber(ARGV[3]))
end
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', tonumber(ARGV[3]))
return slot - now
"""

# KEYS: base log, base penalty, base stats, token log ('' when no token)
# ARGV: base limit, base window µs, token limit, token window µs, idle ttl ms, stats ttl s
# Returns {0, 0}: send now; {1, µs}: a penalty runs, wait and reserve again;
# {2, µs}: the rolling window is full, wait and admit again.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local penalty = tonumber(redis.call('GET', KEYS[2]) or '0')
if penalty > now then return {1, penalty - now} end
local function full(log, limit, window)
  if redis.call('LLEN', log) < limit then return 0 end
  local oldest = tonumber(redis.call('LINDEX', log, limit - 1))
  if now - oldest < window then return oldest + window - now end
  return 0
end
local wait = full(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait == 0 and KEYS[4] ~= '' then wait = full(KEYS[4], tonumber(ARGV[3]), tonumber(ARGV[4])) end
if wait > 0 then return {2, wait} end
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
if KEYS[4] ~= '' then
  redis.call('LPUSH', KEYS[4], now)
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[5]))
end
redis.call('HINCRBY', KEYS[3], 'requests', 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
return {0, 0}
"""

# KEYS: base next-slot, base penalty, base stats
# ARGV: penalty µs, idle ttl ms, stats ttl s
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local penalty = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('HINCRBY', KEYS[3], 'rate_limited', 1)
if penalty <= now then redis.call('HINCRBY', KEYS[3], 'penalties', 1) end
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
if penalty < until_ then
  local ttl = math.floor(tonumber(ARGV[1]) / 1000) + tonumber(ARGV[2])
  redis.call('SET', KEYS[2], until_, 'PX', ttl)
  local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
  if slot < until_ then redis.call('SET', KEYS[1], until_, 'PX', ttl) end
end
return 1
"""

# KEYS: base penalty. Returns the µs of penalty left (0: none).
_REMAINING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local penalty = tonumber(redis.call('GET', KEYS[1]) or '0')
if penalty > now then return penalty - now end
return 0
"""


@dataclass(frozen=True)
class RateStats:
    """What the limiter knows about one base, for the operator view."""

    requests: int
    rate_limited: int
    penalties: int
    penalty_remaining: float


class RedisRateLimiter:
    """Spaced requests per base and per token across processes and hosts.

    Args:
        client: The Redis connection (its DB holds the limiter's keys).
        requests_per_second: Per-base limit (Airtable: 5).
        prefix: Key prefix.
        token_requests_per_second: Per-token limit across bases (Airtable: 50).
        margin: Share of the limits to pace at (see ``PACING_MARGIN``).
    """

    def __init__(
        self,
        client: redis.Redis,
        requests_per_second: float,
        prefix: str = "conveyor:rate",
        *,
        token_requests_per_second: float = TOKEN_REQUESTS_PER_SECOND,
        margin: float = PACING_MARGIN,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._base_interval_us = int(1_000_000 * pacing_interval(requests_per_second, margin))
        token_requests_per_second = token_rate(requests_per_second, token_requests_per_second)
        self._token_interval_us = int(
            1_000_000 * pacing_interval(token_requests_per_second, margin))
        self._window_us = int(1_000_000 / margin)
        # A window counted on arrival allows floor(rate) requests per second (one below 1/s).
        self._base_limit = max(int(requests_per_second), 1) if requests_per_second > 0 else 0
        self._token_limit = (max(int(token_requests_per_second), 1)
                             if token_requests_per_second > 0 else 0)
        self._reserve = client.register_script(_RESERVE)
        self._admit = client.register_script(_ADMIT)
        self._penalize = client.register_script(_PENALIZE)
        self._remaining = client.register_script(_REMAINING)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}:{kind}:{key}"

    def acquire(self, key: str, token: str | None = None) -> float:
        """Block until a request to base ``key`` with token fingerprint ``token`` may go out.

        Returns:
            The seconds waited.
        """
        if not self._base_limit:
            stats = self._key("stats", key)
            pipe = self._client.pipeline()
            pipe.hincrby(stats, "requests", 1)
            pipe.expire(stats, _STATS_TTL_S)
            pipe.execute()
            return 0.0
        use_token = bool(token) and self._token_limit > 0
        waited = 0.0
        while True:
            wait_us = int(self._reserve(
                keys=[self._key("next", key), self._key("penalty", key),
                      self._key("next:token", token or "") if use_token else ""],
                args=[self._base_interval_us, self._token_interval_us if use_token else 0,
                      _IDLE_TTL_MS]))
            waited += _sleep_us(wait_us)
            while True:
                verdict: Any = self._admit(
                    keys=[self._key("log", key), self._key("penalty", key),
                          self._key("stats", key),
                          self._key("log:token", token or "") if use_token else ""],
                    args=[self._base_limit, self._window_us, self._token_limit, self._window_us,
                          _IDLE_TTL_MS, _STATS_TTL_S])
                code, wait_us = int(verdict[0]), int(verdict[1])
                if code == 0:
                    return waited
                waited += _sleep_us(wait_us)
                if code == 1:
                    break  # a penalty began while we slept: book a fresh slot after it

    def penalize(self, key: str, seconds: float) -> None:
        """Refuse base ``key`` for ``seconds`` to every process (the server answered 429)."""
        self._penalize(keys=[self._key("next", key), self._key("penalty", key),
                             self._key("stats", key)],
                       args=[int(seconds * 1_000_000), _IDLE_TTL_MS, _STATS_TTL_S])

    def penalty_remaining(self, key: str) -> float:
        """Seconds until base ``key`` may be asked again (0.0: no penalty running)."""
        return int(self._remaining(keys=[self._key("penalty", key)])) / 1_000_000

    def stats(self, key: str) -> RateStats:
        """Requests admitted, 429s received and penalties started for base ``key``."""
        raw: dict[Any, Any] = self._client.hgetall(self._key("stats", key))
        counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        return RateStats(
            requests=counts.get("requests", 0),
            rate_limited=counts.get("rate_limited", 0),
            penalties=counts.get("penalties", 0),
            penalty_remaining=self.penalty_remaining(key),
        )


def _sleep_us(wait_us: int) -> float:
    if wait_us <= 0:
        return 0.0
    seconds = wait_us / 1_000_000
    time.sleep(seconds)
    return seconds


def shared_rate_limiter(client: redis.Redis) -> RedisRateLimiter:
    """The limiter every extract worker and in-process run shares, paced by the settings."""
    settings = get_settings()
    return RedisRateLimiter(client, settings.airtable_requests_per_second,
                            token_requests_per_second=settings.airtable_token_requests_per_second)
