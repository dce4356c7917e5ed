"""What a running sandbox holds, as the request handler sees it: bases, knobs, counters, limiter."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

from sandbox import errors
from sandbox.base import SandboxBase
from sandbox.clock import CLOCK
from sandbox.config import RateLimiter, SandboxConfig, SandboxStats
from sandbox.listing import Iterators
from sandbox.webhooks import Webhooks


class Failures:
    """Seeded coin flips for ``failure_rate``, so a failing run can be replayed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self, rate: float) -> int | None:
        with self._lock:
            if rate <= 0 or self._rng.random() >= rate:
                return None
            return self._rng.choice(sorted(errors.SERVER_ERRORS))

    def jitter(self, most: float) -> float:
        """A seeded delay in [0, most) seconds."""
        with self._lock:
            return self._rng.uniform(0.0, most)


class SandboxState:
    """The served bases and everything requests share; ``server.Sandbox`` adds the socket."""

    def __init__(self, bases: Iterable[SandboxBase], config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.bases: dict[str, SandboxBase] = {b.id: b for b in bases}
        self.stats = SandboxStats()
        # Both read self.config per call, so replacing the whole config object works too.
        self.limiter = RateLimiter(lambda: self.config)
        self.iterators = Iterators(lambda: self.config)
        self.failures = Failures(self.config.seed)
        # The process-wide sandbox clock: ``sandbox.clock.advance(days=8)`` to time-travel.
        self.clock = CLOCK
        self.webhooks = Webhooks(self.config.seed)
        for base in self.bases.values():
            self.webhooks.attach(base)
