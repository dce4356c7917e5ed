"""What a task needs from its process: extractors, warehouses and the status store.

Everything secret (tokens, passwords, URLs) comes from this worker's environment; a message
only names registered classes.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

from app.extractors.base import TabularExtractor
from app.registry import extractor_class, warehouse_class
from app.settings import get_settings
from app.warehouses import Warehouse, warehouse_for_url
from broker.guard import OverlapGuard
from broker.ratelimit import RedisRateLimiter
from broker.ratestats import CountingRateLimiter
from broker.status import RunStatus, redis_client


@lru_cache(maxsize=1)
def status_store() -> RunStatus:
    """This process's status store."""
    return RunStatus()


@lru_cache(maxsize=1)
def shared_rate_limiter() -> CountingRateLimiter:
    """The rate limiter every extract worker shares through Redis."""
    limiter = RedisRateLimiter(redis_client(), get_settings().airtable_requests_per_second)
    return CountingRateLimiter(limiter, redis_client())


def build_extractor(name: str, options: dict[str, Any]) -> TabularExtractor:
    """A fresh extractor (metadata is per run), sharing the cross-worker rate limit."""
    cls = extractor_class(name)
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if options.get("tables") and "tables" in params:
        kwargs["tables"] = list(options["tables"])
    if "rate_limiter" in params:
        kwargs["rate_limiter"] = shared_rate_limiter()
    return cls(**kwargs)


@lru_cache(maxsize=8)
def build_warehouse(name: str | None) -> Warehouse:
    """This process's warehouse (one engine and pool per process, reused by every task)."""
    if name is None:
        return warehouse_for_url()
    return warehouse_class(name)()


@lru_cache(maxsize=1)
def overlap_guard() -> OverlapGuard:
    """This process's handle on the overlap guards."""
    return OverlapGuard(redis_client(), get_settings().conveyor_guard_ttl_seconds)


def keep_alive(ctx: dict[str, Any]) -> None:
    """Renew the run's overlap guard: the run is still making progress."""
    if ctx.get("guard"):
        overlap_guard().renew(ctx["guard"], ctx["run_id"])
