"""What the shared Airtable rate limiter knows, read for progress displays and metrics.

Every read of the limiter's Redis keys goes through this module. broker/ratelimit.py keeps,
per base, the end of a running 429 penalty in ``conveyor:rate:penalty:<base>`` (Redis-clock
microseconds) and counters (``requests``, ``rate_limited``, ``penalties``) in
``conveyor:rate:stats:<base>``; these are scanned so every base shows, whoever configured it.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

RATE_PREFIX = "conveyor:rate:penalty:"
STATS_PREFIX = "conveyor:rate:stats:"
#: Less than this left of a penalty is not worth showing.
PENALTY_THRESHOLD_SECONDS = 0.5


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
    """Requests and 429s per base, as counted by the shared rate limiter."""
    counters = []
    for key in client.scan_iter(match=f"{STATS_PREFIX}*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        fields = client.hgetall(name)
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in fields.items()}
        counters.append(BaseCounters(name[len(STATS_PREFIX):], values.get("requests", 0),
                                     values.get("rate_limited", 0)))
    return sorted(counters, key=lambda c: c.base)
