"""Client-side rate limiting per Airtable base (and per token), shared by every extractor in this process.

The safety margin is measured, not guessed: ``bench/pacing.py`` hammers one base of the
sandbox (a rolling one-second window counted on arrival, like Airtable; 300 ms latency; 30 s
penalty) from 4 processes through the Redis limiter, 20-25 s per margin, on a 2-core machine
shared with other test suites (load average 8-17). Accepted rate as % of 5 req/s, and 429s:

    margin  0.98: 97.8 % (0 × 429), 58.3 % (3 × 429)
    margin 0.985: 98.3 % (0 × 429), 94.7 % (0 × 429)
    margin  0.99: 98.7 % (0 × 429), 30.8 % (2 × 429)
    before (main, 0.9, no admission step): 28.4 % (4 × 429)

0.985 is the smallest margin that reached 98 %, with 15 ms of slack for arrival jitter.
Method and every figure: docs/performance.md.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from typing import Protocol

# Requests go out at this share of the allowed rate. A server counting a rolling one-second
# window on arrival refuses a request when the one sent `limit` requests earlier arrived less
# than a second before it; pacing at 1/(margin·rate) leaves (1/margin − 1) s of slack for
# arrival jitter between those two (20 ms at 0.98, 10 ms at 0.99). Every refusal costs
# Airtable's 30 s penalty, so the slack is chosen from bench/pacing.py's measurements.
PACING_MARGIN = 0.985

# Airtable allows 50 requests/s per personal access token, whichever bases they go to.
TOKEN_REQUESTS_PER_SECOND = 50.0

# Domain separation for token fingerprints: a fingerprint names a token in Redis keys and
# logs without the token ever being stored, and cannot be reversed into it.
_FINGERPRINT_CONTEXT = b"conveyor/rate-limit/token/v1"


def token_rate(requests_per_second: float, token_requests_per_second: float) -> float:
    """The per-token rate to enforce: never tighter than the per-base one, because a base
    limit raised past the token's means a server without Airtable's limits (a sandbox)."""
    if requests_per_second <= 0 or token_requests_per_second <= 0:
        return 0.0
    return max(token_requests_per_second, requests_per_second)


def pacing_interval(requests_per_second: float, margin: float = PACING_MARGIN) -> float:
    """Seconds between two requests to one base for ``requests_per_second`` (0: unlimited)."""
    return 1.0 / (requests_per_second * margin) if requests_per_second > 0 else 0.0


def token_fingerprint(token: str, api_url: str = "", key: bytes | None = None) -> str:
    """A keyed, irreversible name for ``token`` at ``api_url``, safe to store in Redis.

    Args:
        token: The API token; it never leaves this function.
        api_url: The API it is used with (the same token on two hosts is two budgets).
        key: HMAC key; a deployment secret when set, else Conveyor's fixed context key.

    Returns:
        32 hex characters (128 bits of HMAC-SHA256).
    """
    mac = hmac.new(key or _FINGERPRINT_CONTEXT, digestmod=hashlib.sha256)
    mac.update(api_url.encode("utf-8") + b"\0" + token.encode("utf-8"))
    return mac.hexdigest()[:32]


class RateLimiter(Protocol):
    """Spaces requests to one key (a base) and one token, and honours penalties after a 429."""

    def acquire(self, key: str, token: str | None = None) -> float:
        """Block until a request to ``key`` (sent with ``token``, a fingerprint) may go out.

        Returns:
            The seconds waited.
        """

    def penalize(self, key: str, seconds: float) -> None:
        """Hold back every request to ``key`` for ``seconds`` (the server said 429)."""


class LocalRateLimiter:
    """Evenly spaced requests per key and per token within one process.

    Spacing requests at 1/(margin·rate) rather than bursting up to the limit keeps us inside a
    sliding-window limit on the server, whichever way it counts the window; and a request
    that overslept its slot is still held until the rolling window (``limit`` requests per
    1/margin s, on the times requests really left) has room, as ``broker.ratelimit`` does.
    """

    def __init__(self, requests_per_second: float,
                 token_requests_per_second: float = TOKEN_REQUESTS_PER_SECOND,
                 margin: float = PACING_MARGIN) -> None:
        self._interval = pacing_interval(requests_per_second, margin)
        token_rps = token_rate(requests_per_second, token_requests_per_second)
        self._token_interval = pacing_interval(token_rps, margin)
        self._limits = (max(int(requests_per_second), 1), max(int(token_rps), 1))
        self._window = 1.0 / margin
        self._next_slot: dict[str, float] = {}
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, token: str | None = None) -> float:
        if not self._interval:
            return 0.0
        token_key = f"token:{token}" if token else None
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(key, now))
            if token_key:
                # The token's schedule advances from its own last slot: from the base's, one
                # base with slots booked ahead would push every other base behind them.
                token_slot = max(now, self._next_slot.get(token_key, now))
                slot = max(slot, token_slot)
                self._next_slot[token_key] = token_slot + self._token_interval
            self._next_slot[key] = slot + self._interval
        waited = max(slot - now, 0.0)
        if waited:
            time.sleep(waited)
        while (wait := self._admit(key, token_key)) > 0:
            time.sleep(wait)
            waited += wait
        return waited

    def _admit(self, key: str, token_key: str | None) -> float:
        """0.0 after recording a request to ``key`` now, else the seconds until there is room."""
        logs = [(key, self._limits[0])] + ([(token_key, self._limits[1])] if token_key else [])
        with self._lock:
            now = time.monotonic()
            for name, limit in logs:
                sent = self._sent.setdefault(name, deque(maxlen=limit))
                if len(sent) == limit and now - sent[0] < self._window:
                    return sent[0] + self._window - now
            for name, _ in logs:
                self._sent[name].append(now)
            return 0.0

    def penalize(self, key: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._next_slot[key] = max(self._next_slot.get(key, 0.0), until)


_shared: dict[tuple[float, float], LocalRateLimiter] = {}
_shared_lock = threading.Lock()


def shared_local_limiter(requests_per_second: float,
                         token_requests_per_second: float = TOKEN_REQUESTS_PER_SECOND,
                         ) -> LocalRateLimiter:
    """The process-wide limiter for a rate, so extractors of one base share one budget."""
    with _shared_lock:
        rates = (requests_per_second, token_requests_per_second)
        limiter = _shared.get(rates)
        if limiter is None:
            limiter = _shared[rates] = LocalRateLimiter(*rates)
        return limiter
