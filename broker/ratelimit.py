"""Airtable's per-base rate limit shared by every extract worker, kept in Redis."""

from __future__ import annotations

import time

import redis

from app.extractors.ratelimit import pacing_interval

# Reserves the next free slot for KEYS[1] and returns how many microseconds to wait for it.
# Redis' own clock is the only one every worker agrees on.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', tonumber(ARGV[2]))
return slot - now
"""

_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < until_ then redis.call('SET', KEYS[1], until_, 'PX', tonumber(ARGV[2])) end
return 1
"""


class RedisRateLimiter:
    """Evenly spaced requests per key across processes and hosts (see app.extractors.ratelimit)."""

    def __init__(
        self, client: redis.Redis, requests_per_second: float, prefix: str = "conveyor:rate"
    ) -> None:
        self._interval_us = int(1_000_000 * pacing_interval(requests_per_second))
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._penalize = client.register_script(_PENALIZE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def acquire(self, key: str) -> float:
        wait_us = int(self._acquire(keys=[self._key(key)], args=[self._interval_us, 120_000]))
        wait = wait_us / 1_000_000
        if wait > 0:
            time.sleep(wait)
        return wait

    def penalize(self, key: str, seconds: float) -> None:
        ttl_ms = int(seconds * 1000) + 120_000
        self._penalize(keys=[self._key(key)], args=[int(seconds * 1_000_000), ttl_ms])
