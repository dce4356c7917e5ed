"""Client-side pacing: never more requests in any one-second window than the limit allows."""

import time

from app.extractors.ratelimit import LocalRateLimiter


def test_pacing_stays_under_a_strict_sliding_window():
    limiter = LocalRateLimiter(requests_per_second=20)
    sent = []
    for _ in range(30):
        limiter.acquire("base")
        sent.append(time.monotonic())
    for i in range(len(sent) - 20):
        assert sent[i + 20] - sent[i] > 1.0


def test_a_penalty_holds_back_the_next_request():
    limiter = LocalRateLimiter(requests_per_second=1000)
    limiter.penalize("base", 0.3)
    assert limiter.acquire("base") >= 0.25
    assert limiter.acquire("other") == 0
