"""The Redis rate limiter spaces requests across clients and honours penalties."""

import time

from broker.ratelimit import RedisRateLimiter
from broker.status import redis_client


def test_two_clients_share_one_budget(redis_url):
    a = RedisRateLimiter(redis_client(redis_url), requests_per_second=20)
    b = RedisRateLimiter(redis_client(redis_url), requests_per_second=20)
    started = time.monotonic()
    for _ in range(5):
        a.acquire("base")
        b.acquire("base")
    # ten requests at 20/s are spread over at least 9 intervals of 50 ms
    assert time.monotonic() - started >= 0.45


def test_keys_are_independent(redis_url):
    limiter = RedisRateLimiter(redis_client(redis_url), requests_per_second=1)
    limiter.acquire("base-a")
    assert limiter.acquire("base-b") == 0


def test_penalty_holds_back_the_next_request(redis_url):
    limiter = RedisRateLimiter(redis_client(redis_url), requests_per_second=100)
    limiter.penalize("base", 0.3)
    assert limiter.acquire("base") >= 0.25
