"""The wrapper that turns a table step function into a Celery task with Conveyor's policies.

A step never breaks its chain: a terminal error (or retries used up) becomes a "failed"
payload that later steps pass along, so the chord callback always runs and the other tables
still land.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from app.errors import ConveyorError, TransientError
from broker import policies
from broker.celery_app import celery_app
from workers.context import keep_alive, status_store
from workers.payload import ended, is_ok, run_id_of, table_of

log = logging.getLogger(__name__)

StepFunction = Callable[[Task, dict[str, Any]], dict[str, Any]]


def backoff(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: exponential, capped, fully jittered."""
    return int(get_exponential_backoff_interval(
        factor=policies.RETRY_BACKOFF, retries=retries,
        maximum=policies.RETRY_BACKOFF_MAX, full_jitter=policies.RETRY_JITTER,
    ))


def where(task: Task) -> tuple[str | None, str | None]:
    """The worker host name and the queue this task was delivered from."""
    info = task.request.delivery_info or {}
    return task.request.hostname, info.get("routing_key")


def table_step(name: str) -> Callable[[StepFunction], Task]:
    """Make ``fn(task, payload) -> payload`` the task ``conveyor.<name>``."""

    def wrap(fn: StepFunction) -> Task:
        @celery_app.task(name=f"conveyor.{name}", bind=True, max_retries=policies.MAX_RETRIES)
        def task(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
            if not is_ok(payload):
                return payload
            status = status_store()
            run_id, table = run_id_of(payload), table_of(payload)
            host, queue = where(self)
            if status.is_cancelled(run_id):
                status.update_table(run_id, table.table_id, state="cancelled")
                return ended(payload, "cancelled")
            keep_alive(payload["ctx"])
            status.update_table(run_id, table.table_id, state="running")
            try:
                result = fn(self, payload)
            except Retry:
                raise
            except TransientError as exc:
                # Counted in the payload: polls and continuations also re-send the task.
                attempts = int(payload.get("attempts", 0))
                if attempts < policies.MAX_RETRIES:
                    status.record_step(run_id, name, table_id=table.table_id, batch_no=None,
                                       hostname=host, queue=queue, state="retrying", error=str(exc))
                    raise self.retry(args=({**payload, "attempts": attempts + 1},), exc=exc,
                                     countdown=backoff(attempts),
                                     max_retries=policies.UNBOUNDED) from None
                result = ended(payload, "failed", f"{exc} (gave up after {attempts} retries)")
            except ConveyorError as exc:
                result = ended(payload, "failed", str(exc))
            except SoftTimeLimitExceeded:
                result = ended(payload, "failed", f"{name} ran past its time limit")
            except Exception as exc:
                # A bug must fail its table visibly, not break the chord and hang the run.
                log.exception("step %s crashed", name)
                result = ended(payload, "failed", f"internal error in {name}: {type(exc).__name__}: {exc}")
            result.pop("attempts", None)  # each step has its own retry budget
            state = result.get("state", "ok")
            status.record_step(run_id, name, table_id=table.table_id, batch_no=None, hostname=host,
                               queue=queue, state="succeeded" if state == "ok" else state,
                               error=result.get("error"))
            if state != "ok":
                log.error("table %s %s in %s: %s", table.name, state, name, result.get("error"))
                status.update_table(run_id, table.table_id, state=state, error=result.get("error"))
            return result

        return task

    return wrap
