"""The Redis rate limiter spaces requests across clients and honours penalties."""

import threading
import time

from broker.ratelimit import RateStats, RedisRateLimiter
from broker.status import redis_client
from tests.support.limiters import wait_of_a_base_behind_another_bases_queue


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


def test_one_token_shares_its_budget_across_bases(redis_url):
    limiter = RedisRateLimiter(redis_client(redis_url), requests_per_second=10,
                               token_requests_per_second=20, margin=1.0)
    started = time.monotonic()
    for i in range(21):
        limiter.acquire(f"base-{i % 3}", "tokenfingerprint")
    # 21 requests at 20/s per token over 3 bases (7 each at 10/s: 0.6 s): 20 intervals of 50 ms
    assert time.monotonic() - started >= 0.95
    started = time.monotonic()
    for i in range(6):
        limiter.acquire(f"base-{i % 3}", f"other-token-{i}")
    assert time.monotonic() - started < 0.8  # other tokens are not held back (0.95 s if they were)


def test_a_base_does_not_wait_behind_another_bases_queued_slots(redis_url):
    limiter = RedisRateLimiter(redis_client(redis_url), requests_per_second=2,
                               token_requests_per_second=50, margin=1.0)
    assert wait_of_a_base_behind_another_bases_queue(limiter) < 0.3  # 1.4 s if behind A's queue


def test_after_a_429_every_client_waits_the_penalty_once_then_resumes_spaced(redis_url):
    clients = [RedisRateLimiter(redis_client(redis_url), requests_per_second=2, margin=1.0)
               for _ in range(3)]
    clients[0].acquire("base")
    clients[0].penalize("base", 0.5)
    clients[1].penalize("base", 0.5)  # a second 429 in flight does not double the wait
    started = time.monotonic()
    sent: list[float] = []
    lock = threading.Lock()

    def send(limiter: RedisRateLimiter) -> None:
        for _ in range(2):
            limiter.acquire("base")
            with lock:
                sent.append(time.monotonic() - started)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.sort()
    assert 0.45 <= sent[0] < 1.0  # nobody went during the penalty, nobody waited it twice
    # spaced 0.5 s apart after the penalty (five gaps: 2.5 s), not a burst when it ends
    assert sent[-1] - sent[0] >= 2.0


def test_stats_and_penalty_remaining_for_the_operator_view(redis_url):
    limiter = RedisRateLimiter(redis_client(redis_url), requests_per_second=100)
    assert limiter.stats("base") == RateStats(0, 0, 0, 0.0)
    for _ in range(3):
        limiter.acquire("base", "fp")
    limiter.penalize("base", 30)
    limiter.penalize("base", 30)
    stats = limiter.stats("base")
    assert (stats.requests, stats.rate_limited, stats.penalties) == (3, 2, 1)
    assert 29 < stats.penalty_remaining <= 30
    assert 29 < limiter.penalty_remaining("base") <= 30
    assert limiter.penalty_remaining("other") == 0.0


def test_the_window_holds_even_when_a_client_oversleeps_its_slot(redis_url):
    client = redis_client(redis_url)
    limiter = RedisRateLimiter(client, requests_per_second=5, margin=1.0)
    admitted = []
    for _ in range(5):
        limiter.acquire("base")
        admitted.append(time.monotonic())
    # Someone else's reservations pile up, then a late admission must still respect the window.
    client.delete("conveyor:rate:next:base")
    limiter.acquire("base")
    assert time.monotonic() - admitted[0] >= 0.99


def test_tokens_never_reach_redis_in_clear(redis_url):
    from app.extractors import AirtableExtractor
    from sandbox import SandboxConfig, build_base, run_sandbox

    token = "patSECRETtoken.0123456789abcdef"
    client = redis_client(redis_url)
    with run_sandbox([build_base("appRATE0000000001", {"T": 30}, hostile=False)],
                     SandboxConfig(token=token, requests_per_second=None)) as sandbox:
        extractor = AirtableExtractor(api_key=token, base_id="appRATE0000000001",
                                      api_url=sandbox.url,
                                      rate_limiter=RedisRateLimiter(client, 100))
        table = extractor.find_table("T")
        assert sum(len(p.records) for p in extractor.iter_pages(table)) == 30
    keys = client.keys("*")
    assert any(":log:token:" in key for key in keys)
    for key in keys:
        dump = client.dump(key) or b""
        assert token not in key and token.encode() not in dump
