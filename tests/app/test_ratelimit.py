"""Client-side pacing: never more requests in any one-second window than the limit allows."""

import time

from app.extractors.ratelimit import LocalRateLimiter, token_fingerprint, token_rate
from tests.support.limiters import wait_of_a_base_behind_another_bases_queue


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


def test_one_token_is_paced_across_bases():
    limiter = LocalRateLimiter(requests_per_second=10, token_requests_per_second=20, margin=1.0)
    started = time.monotonic()
    for i in range(21):
        limiter.acquire(f"base-{i % 3}", "fp")
    assert time.monotonic() - started >= 0.95


def test_a_base_does_not_wait_behind_another_bases_queued_slots():
    limiter = LocalRateLimiter(requests_per_second=2, token_requests_per_second=50, margin=1.0)
    assert wait_of_a_base_behind_another_bases_queue(limiter) < 0.3  # 1.4 s if behind A's queue


def test_a_raised_base_limit_is_not_capped_by_the_token_limit():
    assert token_rate(10_000, 50) == 10_000
    assert token_rate(5, 50) == 50
    assert token_rate(0, 50) == 0.0


def test_token_fingerprints_are_keyed_and_do_not_contain_the_token():
    token = "patABCDEF.0123456789"
    plain = token_fingerprint(token, "https://api.airtable.com")
    assert token not in plain and len(plain) == 32
    assert plain == token_fingerprint(token, "https://api.airtable.com")
    assert plain != token_fingerprint(token, "http://127.0.0.1:8765")
    assert plain != token_fingerprint(token, "https://api.airtable.com", key=b"deployment secret")
