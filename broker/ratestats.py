"""What the shared Airtable rate limiter knows, read for progress displays and metrics.

Every read of the limiter's Redis keys goes through this module, so it can follow the
limiter's own API when that grows one. The limiter (broker/ratelimit.py) keeps, per base, the
next free request slot in ``conveyor:rate:<base>`` as Redis-clock microseconds; a slot far in
the future means a 429 penalty is being waited out. ``CountingRateLimiter`` adds per-base
counts of requests and 429s in ``conveyor:ratestats:<base>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from app.extractors.ratelimit import RateLimiter

RATE_PREFIX = "conveyor:rate:"
STATS_PREFIX = "conveyor:ratestats:"
#: A slot further ahead than this is a penalty, not ordinary pacing of queued requests.
PENALTY_THRESHOLD_SECONDS = 2.0
STATS_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class BaseCounters:
    """Requests sent to one base and how many of them Airtable answered with 429."""

    base: str
    requests: int
    rate_limited: int


def _redis_now_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def penalties(client: redis.Redis) -> dict[str, float]:
    """Seconds of 429 penalty left per base (bases without a penalty are left out)."""
    now = _redis_now_us(client)
    left: dict[str, float] = {}
    for key in client.scan_iter(match=f"{RATE_PREFIX}*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        value = client.get(name)
        try:
            slot = int(value) if value is not None else 0
        except (TypeError, ValueError):
            continue
        seconds = (slot - now) / 1_000_000
        if seconds > PENALTY_THRESHOLD_SECONDS:
            left[name[len(RATE_PREFIX):]] = seconds
    return left


def longest_penalty(client: redis.Redis) -> float | None:
    """The longest 429 penalty any base is waiting out, in seconds (None: none)."""
    return max(penalties(client).values(), default=None)


def base_counters(client: redis.Redis) -> list[BaseCounters]:
    """Requests and 429s per base, as counted by ``CountingRateLimiter``."""
    counters = []
    for key in client.scan_iter(match=f"{STATS_PREFIX}*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        fields = client.hgetall(name)
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in fields.items()}
        counters.append(BaseCounters(name[len(STATS_PREFIX):], values.get("requests", 0),
                                     values.get("rate_limited", 0)))
    return sorted(counters, key=lambda c: c.base)


class CountingRateLimiter:
    """A RateLimiter that counts, per base in Redis, the requests it lets out and the 429s.

    ``acquire`` is called once before every request and ``penalize`` once per 429, so the
    counts are exact whichever worker sent the request.
    """

    def __init__(self, inner: RateLimiter, client: redis.Redis) -> None:
        self.inner = inner
        self.client = client

    def acquire(self, key: str) -> float:
        waited = self.inner.acquire(key)
        self._count(key, "requests")
        return waited

    def penalize(self, key: str, seconds: float) -> None:
        self.inner.penalize(key, seconds)
        self._count(key, "rate_limited")

    def _count(self, key: str, field: str) -> None:
        name = f"{STATS_PREFIX}{key}"
        pipe = self.client.pipeline()
        pipe.hincrby(name, field, 1)
        pipe.expire(name, STATS_TTL_SECONDS)
        pipe.execute()
