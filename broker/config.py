"""Celery settings: JSON only, late acks, reject on worker loss, prefetch 1, bounded time."""

from __future__ import annotations

import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from app.settings import Settings
from broker import policies, serialization
from broker.queues import LOAD, QUEUES
from broker.routing import TASK_ROUTES

#: ``ssl_cert_reqs`` spellings kombu and Celery accept, as redis-py spells them.
_CERT_REQS = {"CERT_REQUIRED": "required", "CERT_OPTIONAL": "optional", "CERT_NONE": "none"}


def tls_defaults(url: str) -> dict[str, Any] | None:
    """TLS options for a ``rediss://`` URL (None for any other): verify the server.

    The URL's own ``ssl_*`` query parameters (``ssl_ca_certs``, ``ssl_cert_reqs``) refine or
    override these. Without them kombu would skip certificate checks on a bare ``rediss://``
    URL and Celery's result backend would refuse it.
    """
    if urlsplit(url).scheme != "rediss":
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def redis_py_url(url: str) -> str:
    """``url`` as redis-py reads it: ``ssl_cert_reqs=CERT_REQUIRED`` (Celery's spelling)
    becomes ``required``, the only spelling redis-py accepts."""
    return re.sub(
        r"(?<=ssl_cert_reqs=)(CERT_REQUIRED|CERT_OPTIONAL|CERT_NONE)(?=&|#|$)",
        lambda m: _CERT_REQS[m.group(1)], url,
    )


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (broker URLs come from the environment)."""
    backend = settings.celery_result_backend or settings.celery_broker_url
    transport = {
        "visibility_timeout": policies.VISIBILITY_TIMEOUT,
        # kombu restores a dead worker's unacked messages on a ~100 s sweep by default.
        "unacked_restore_throttle": 1,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "health_check_interval": 25,
    }
    return {
        "broker_url": settings.celery_broker_url,
        "result_backend": backend,
        "broker_use_ssl": tls_defaults(settings.celery_broker_url),
        "redis_backend_use_ssl": tls_defaults(backend),
        "broker_transport_options": transport,
        "result_backend_transport_options": dict(transport),
        "broker_connection_retry_on_startup": True,
        # Pickle lets anyone who can write to the broker run code in the workers.
        # JSON only; conveyor-json is plain JSON that leaves record data alone (see
        # broker/serialization.py), "json" stays accepted for Celery's own messages.
        "task_serializer": serialization.NAME,
        "result_serializer": serialization.NAME,
        "accept_content": [serialization.NAME, "json"],
        "result_accept_content": [serialization.NAME, "json"],
        "task_queues": QUEUES,
        "task_default_queue": LOAD,
        "task_default_exchange": "conveyor",
        "task_default_routing_key": LOAD,
        "task_routes": TASK_ROUTES,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": policies.SOFT_TIME_LIMIT,
        "task_time_limit": policies.HARD_TIME_LIMIT,
        "result_expires": policies.RESULT_EXPIRES_SECONDS,
        "result_extended": False,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "imports": [m.strip() for m in (settings.conveyor_imports or "").split(",") if m.strip()],
        # Beat: RedBeat keeps the schedule and a lock in Redis, so a second beat only waits.
        "beat_scheduler": "broker.beat:ConveyorScheduler",
        "beat_max_loop_interval": 5,
        "redbeat_redis_url": redis_py_url(settings.celery_broker_url),
        "redbeat_redis_options": {"retry_period": 60},
        "redbeat_key_prefix": "conveyor:beat",
        "redbeat_lock_timeout": 25,
        "enable_utc": True,
        "timezone": "UTC",
    }
