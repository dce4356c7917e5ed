"""Client-side rate limiting per Airtable base, shared by every extractor in this process."""

from __future__ import annotations

import threading
import time
from typing import Protocol

# Requests go out at 90% of the allowed rate: a server counting a strict sliding one-second
# window refuses a client paced exactly at the limit as soon as scheduling jitter bunches two
# requests, and every refusal costs Airtable's 30 s penalty.
PACING_MARGIN = 0.9


def pacing_interval(requests_per_second: float) -> float:
    """Seconds between two requests to one base for ``requests_per_second`` (0: unlimited)."""
    return 1.0 / (requests_per_second * PACING_MARGIN) if requests_per_second > 0 else 0.0


class RateLimiter(Protocol):
    """Spaces requests to one key (a base) and honours penalties after a 429."""

    def acquire(self, key: str) -> float:
        """Block until a request to ``key`` may go out; return the seconds waited."""

    def penalize(self, key: str, seconds: float) -> None:
        """Hold back every request to ``key`` for ``seconds`` (the server said 429)."""


class LocalRateLimiter:
    """Evenly spaced requests per key within one process.

    Spacing requests at 1/rate rather than bursting up to the limit keeps us inside a
    sliding-window limit on the server, whichever way it counts the window.
    """

    def __init__(self, requests_per_second: float) -> None:
        self._interval = pacing_interval(requests_per_second)
        self._next_slot: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + self._interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def penalize(self, key: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._next_slot[key] = max(self._next_slot.get(key, 0.0), until)


_shared: dict[float, LocalRateLimiter] = {}
_shared_lock = threading.Lock()


def shared_local_limiter(requests_per_second: float) -> LocalRateLimiter:
    """The process-wide limiter for a rate, so extractors of one base share one budget."""
    with _shared_lock:
        limiter = _shared.get(requests_per_second)
        if limiter is None:
            limiter = _shared[requests_per_second] = LocalRateLimiter(requests_per_second)
        return limiter
