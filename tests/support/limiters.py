"""Behaviour both rate limiters (in-process and Redis) must share, driven the same way."""

from __future__ import annotations

import threading
import time
from typing import Any


def wait_of_a_base_behind_another_bases_queue(limiter: Any) -> float:
    """Four threads of base A book slots 0, 0.5, 1.0 and 1.5 s ahead (2 req/s); then base B,
    on the same token (50/s, far from binding), asks for a slot. Returns how long B waited:
    it should go at once, not after base A's last booked slot (1.4 s)."""
    queued = [threading.Thread(target=limiter.acquire, args=("base-a", "fp")) for _ in range(4)]
    for thread in queued:
        thread.start()
    time.sleep(0.1)
    waited: float = limiter.acquire("base-b", "fp")
    for thread in queued:
        thread.join()
    return waited
