"""What a task needs from its process: extractors and warehouses built from a run's
configuration (secrets from this worker's environment), the status store, the barrier and the
overlap guards — one of each per process."""

from __future__ import annotations

import json
from functools import lru_cache

from app.errors import TerminalError
from app.extractors.base import TabularExtractor
from app.settings import get_settings
from app.sync.components import build_extractor as build_configured_extractor
from app.sync.components import build_warehouse as build_configured_warehouse
from app.sync.plan import ComponentConfig
from app.warehouses import Warehouse
from broker import ratelimit
from broker.barrier import Barrier
from broker.guard import OverlapGuard
from broker.ratelimit import RedisRateLimiter
from broker.status import RunStatus, redis_client


@lru_cache(maxsize=1)
def status_store() -> RunStatus:
    """This process's status store."""
    return RunStatus()


@lru_cache(maxsize=1)
def barrier() -> Barrier:
    """This process's handle on the fan-in counters."""
    return Barrier(redis_client())


@lru_cache(maxsize=1)
def shared_rate_limiter() -> RedisRateLimiter:
    """The rate limiter every extract worker (and in-process run) shares through Redis."""
    return ratelimit.shared_rate_limiter(redis_client())


@lru_cache(maxsize=1)
def overlap_guard() -> OverlapGuard:
    """This process's handle on the overlap guards."""
    return OverlapGuard(redis_client(), get_settings().conveyor_guard_ttl_seconds)


def build_extractor(config: ComponentConfig) -> TabularExtractor:
    """A fresh extractor (its metadata is per run), sharing the cross-worker rate limit."""
    return build_configured_extractor(config, shared_rate_limiter())


def build_warehouse(config: ComponentConfig) -> Warehouse:
    """This process's warehouse for ``config`` (one engine and pool per process and warehouse,
    reused by every task)."""
    return _cached_warehouse(json.dumps(config.to_json(), sort_keys=True))


@lru_cache(maxsize=8)
def _cached_warehouse(config_json: str) -> Warehouse:
    return build_configured_warehouse(ComponentConfig.from_json(json.loads(config_json)))


def keep_alive(run_id: str) -> None:
    """Renew the run's overlap guards: the run is still making progress.

    Raises:
        TerminalError: the guards expired (the run was quiet too long) and another run took
            one of them: this run must not write those tables any more.
    """
    guards = status_store().guards(run_id)
    if not guards or overlap_guard().renew(guards, run_id) == len(guards):
        return
    holder = overlap_guard().acquire(guards, run_id)
    if holder is not None:
        raise TerminalError(f"run {holder} took over these tables while this run was stalled")
