"""The sandbox's knobs (changeable while it runs), its counters and its per-base rate limiter."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxConfig:
    """How the sandbox behaves. Every field is read per request, so a test may change one mid-run
    (``sandbox.config.failure_rate = 1.0``) and the next request sees it.
    """

    token: str = "sandbox-token"
    # Airtable allows 5 requests per second per base, whoever sends them; 0 or None: unlimited.
    requests_per_second: float | None = 5.0
    # After a 429 the real API refuses the base for 30 s; requests in between are refused too.
    penalty_seconds: float = 30.0
    # How long the API takes to answer a request it counted (a list page: a few hundred ms);
    # it comes after the request is counted against the base's limit, as at Airtable's edge.
    latency_seconds: float = 0.0
    # Extra latency drawn uniformly from [0, latency_jitter_seconds) per request, before the
    # request is counted: the network and scheduling jitter a client cannot see.
    latency_jitter_seconds: float = 0.0
    # Share of requests (after authentication) answered with a random 500, 502 or 503.
    failure_rate: float = 0.0
    seed: int = 1
    # None keeps list offsets valid for the life of the sandbox (the real ones last minutes).
    offset_ttl_seconds: float | None = None
    # Answer an unknown table with the old API-key era 404 TABLE_NOT_FOUND, not today's 403.
    legacy_table_not_found: bool = False
    # False answers every webhooks route 403, as for a token without the webhook:manage scope.
    webhooks_allowed: bool = True


@dataclass(frozen=True)
class LoggedRequest:
    """One answered request: when it was counted (monotonic seconds), route, status, records."""

    arrived: float
    kind: str
    status: int
    records: int
    #: Method, path with query string, and body: what identifies a page request.
    target: str = ""
    #: Bytes of the response body (what the request cost the client to download).
    body_bytes: int = 0
    #: When the handler thread began serving it (monotonic seconds; 0.0 when not given):
    #: ``arrived - received`` is the injected jitter plus how late the stand-in server got to
    #: counting it, a delay of the sandbox, not of the client.
    received: float = 0.0


@dataclass
class SandboxStats:
    """Counters of what the sandbox answered; also readable as ``stats["requests"]``."""

    requests: int = 0
    rate_limited: int = 0
    #: Bytes of every response body served.
    body_bytes: int = 0
    failures_injected: int = 0
    internal_errors: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    # When a list, every answered request is appended to it (see ``keep_log``).
    log: list[LoggedRequest] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getitem__(self, name: str) -> Any:
        if name.startswith("_"):
            raise KeyError(name)
        return getattr(self, name)

    def keep_log(self) -> None:
        """Start keeping a ``LoggedRequest`` per answered request (benches sample rates from it)."""
        with self._lock:
            if self.log is None:
                self.log = []

    def record(self, kind: str, status: int, *, injected: bool = False,
               arrived: float | None = None, records: int = 0, target: str = "",
               body_bytes: int = 0, received: float = 0.0) -> None:
        """Count one answered request of route ``kind`` (``list``, ``meta_tables``, …).

        ``arrived`` is when it was counted against the rate limit (``time.monotonic()``) and
        ``records`` how many records it served; both only feed the log. ``body_bytes`` is the
        size of the response body.
        """
        with self._lock:
            if self.log is not None:
                self.log.append(LoggedRequest(arrived if arrived is not None else time.monotonic(),
                                              kind, status, records, target, body_bytes,
                                              received))
            self.requests += 1
            self.body_bytes += body_bytes
            self.by_kind[kind] += 1
            self.by_status[status] += 1
            self.rate_limited += status == 429
            self.failures_injected += injected
            self.internal_errors += status == 500 and not injected

    def reset(self) -> None:
        """Zero every counter (between phases of a test)."""
        with self._lock:
            self.requests = self.rate_limited = self.failures_injected = self.internal_errors = 0
            self.body_bytes = 0
            self.by_kind.clear()
            self.by_status.clear()
            if self.log is not None:
                self.log = []


class RateLimiter:
    """Airtable's limit: a sliding one-second window per base, then a penalty of refusals."""

    def __init__(self, config: Callable[[], SandboxConfig],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._penalty_until: dict[str, float] = {}

    def allow(self, base_id: str, at: float | None = None) -> bool:
        """Count one request to ``base_id`` that arrived ``at`` (this clock; default now);
        False when it must be answered with a 429.

        Requests may be counted in another order than they arrived (each waits for its own
        thread): one counted after a later arrival still has that later one in its window, so
        of two such requests the sandbox allows no more than Airtable, counting in arrival
        order, would.
        """
        config = self._config()
        limit = config.requests_per_second
        now = self._clock() if at is None else at
        with self._lock:
            if now < self._penalty_until.get(base_id, 0.0):
                return False
            if not limit:
                return True
            # Below one request per second, allow one request per 1/limit seconds instead.
            span, allowed = (1.0, int(limit)) if limit >= 1 else (1.0 / limit, 1)
            window = self._windows.setdefault(base_id, deque())
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= allowed:
                self._penalty_until[base_id] = now + config.penalty_seconds
                window.clear()
                return False
            bisect.insort(window, now)
            return True

    def penalise(self, base_id: str, seconds: float | None = None) -> None:
        """Refuse ``base_id`` from now on for ``seconds`` (default: the configured penalty), as
        when another integration of the base used up its limit."""
        config = self._config()
        with self._lock:
            self._penalty_until[base_id] = self._clock() + (
                config.penalty_seconds if seconds is None else seconds)

    def penalised(self, base_id: str) -> bool:
        """Whether ``base_id`` is serving a penalty right now."""
        with self._lock:
            return self._clock() < self._penalty_until.get(base_id, 0.0)

    def reset(self) -> None:
        """Forget every window and penalty."""
        with self._lock:
            self._windows.clear()
            self._penalty_until.clear()
