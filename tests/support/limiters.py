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


def span_after_a_first_request(limiter: Any, cold: bool) -> float:
    """Three requests to one base in a row, the first ``cold`` (on a newly opened connection)
    or not, through ``limiter`` at 2 req/s with no margin (slots 0.5 s apart, at most 2 in a
    1 s window). Returns the seconds between the first and the third admissions: 1 s when the
    first is warm; 1 s plus the limiter's cold pad (below 0.5 s) when it is cold, since the
    server may count it that much late."""
    limiter.acquire("base", "fp", cold=cold)
    first = time.monotonic()
    for _ in range(2):
        limiter.acquire("base", "fp")
    return time.monotonic() - first
