"""Celery settings: JSON only, late acks, reject on worker loss, prefetch 1, bounded time."""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from broker import policies
from broker.queues import LOAD, QUEUES
from broker.routing import TASK_ROUTES


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings`` (broker URLs come from the environment)."""
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
        "result_backend": settings.celery_result_backend or settings.celery_broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": dict(transport),
        "broker_connection_retry_on_startup": True,
        # Pickle lets anyone who can write to the broker run code in the workers.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
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
        "redbeat_redis_url": settings.celery_broker_url,
        "redbeat_redis_options": {"retry_period": 60},
        "redbeat_key_prefix": "conveyor:beat",
        "redbeat_lock_timeout": 25,
        "enable_utc": True,
        "timezone": "UTC",
    }
