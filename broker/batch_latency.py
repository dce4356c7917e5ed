"""Batch load latency, measured around each batch a load worker writes (``timed``), kept as a
histogram in Redis.

Every pool process of every load worker adds to the same Redis hash (atomic HINCRBY), so the
figures are safe with prefork and across hosts; ``conveyor metrics`` exposes them.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterator

import redis

KEY = "conveyor:metrics:load_batch_seconds"
#: Upper bounds (seconds) of the histogram's buckets; +Inf is implied.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_of(seconds: float) -> str:
    """The field of the smallest bucket holding ``seconds`` (``+Inf`` past the last)."""
    at = bisect.bisect_left(BUCKETS, seconds)
    return repr(BUCKETS[at]) if at < len(BUCKETS) else "+Inf"


def observe(client: redis.Redis, seconds: float) -> None:
    pipe = client.pipeline()
    pipe.hincrby(KEY, bucket_of(seconds), 1)
    pipe.hincrby(KEY, "count", 1)
    pipe.hincrbyfloat(KEY, "sum", seconds)
    pipe.execute()


def read(client: redis.Redis) -> tuple[list[tuple[str, int]], float, int]:
    """Cumulative ``(le, count)`` buckets, the sum of seconds and the count of batches."""
    raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in client.hgetall(KEY).items()}
    running = 0
    buckets = []
    for bound in [repr(b) for b in BUCKETS] + ["+Inf"]:
        running += int(raw.get(bound, 0))
        buckets.append((bound, running))
    return buckets, float(raw.get("sum", 0.0)), int(raw.get("count", 0))


@contextlib.contextmanager
def timed() -> Iterator[None]:
    """Time one batch load into the histogram (only when it succeeds); a metric never fails it."""
    started = time.monotonic()
    yield
    from broker.status import redis_client

    try:
        observe(redis_client(), time.monotonic() - started)
    except redis.RedisError:
        pass  # a metric must never fail a load; the next batch is measured again
