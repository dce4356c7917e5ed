"""How table steps hand on to each other: the task base class with Conveyor's retry policy,
sending the next step (recorded first as the table's resume point), and ending a table.

A table step never waits: it does its one thing and sends the next step. Real retries are
Celery's (``autoretry_for`` transient errors and soft time limits, exponential backoff with
jitter); anything else that escapes a step fails its table, and the table's end is counted by
the barrier so the last table to end sends ``finish_run``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import EncodeError

from app.contracts import Batch
from app.errors import ConveyorError, TransientError
from app.sync.plan import Listing, TableSync
from app.sync.states import FINAL_RUN_STATES, RunState, TableState
from broker import policies
from broker.celery_app import celery_app
from workers.context import barrier, keep_alive, status_store

log = logging.getLogger(__name__)


class SyncTask(Task):  # Celery is untyped: Task is Any to mypy
    """A step of the sync model: transient errors retried by Celery, anything else fails the
    step's table (or run) through ``on_failure``."""

    abstract = True
    autoretry_for = policies.RETRY_ON
    retry_backoff = policies.RETRY_BACKOFF
    retry_backoff_max = policies.RETRY_BACKOFF_MAX
    retry_jitter = policies.RETRY_JITTER
    max_retries = policies.MAX_RETRIES

    def where(self) -> tuple[str | None, str | None]:
        """The worker host name and the queue this task was delivered from."""
        info = self.request.delivery_info or {}
        return self.request.hostname, info.get("routing_key")

    def record(self, run_id: str, table_id: str | None, state: str, *, batch_no: int | None = None,
               error: str | None = None) -> None:
        host, queue = self.where()
        step = self.name.removeprefix("conveyor.")
        status_store().record_step(run_id, step, table_id=table_id, batch_no=batch_no,
                                   hostname=host, queue=queue, state=state, error=error)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        sync = _sync_in(args)
        if sync is not None:
            self.record(sync.run_id, sync.table.table_id, "retrying", error=str(exc))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        error = str(exc) if isinstance(exc, Exception) and str(exc) else type(exc).__name__
        if isinstance(exc, SoftTimeLimitExceeded):
            error = (f"ran past its {policies.SOFT_TIME_LIMIT} s time limit "
                     f"{self.max_retries + 1} times")
        elif isinstance(exc, TransientError):
            error = f"{error} (gave up after {self.max_retries} retries)"
        elif not _is_ours(exc):
            error = f"internal error in {self.name}: {type(exc).__name__}: {exc}"
        sync = _sync_in(args)
        if sync is None:  # a run-level step (plan_run, finish_run): the run ends failed
            run_id = args[0].get("run_id") if args and isinstance(args[0], dict) else (
                args[0] if args and isinstance(args[0], str) else None)
            if run_id:
                self.record(run_id, None, "failed", error=error)
                status_store().set_state(run_id, RunState.FAILED, error=error)
            return
        self.record(sync.run_id, sync.table.table_id, "failed", error=error)
        end_table(sync, TableState.FAILED, f"{self.name.removeprefix('conveyor.')}: {error}")


def _is_ours(exc: BaseException) -> bool:
    return isinstance(exc, ConveyorError)


def _sync_in(args: Any) -> TableSync | None:
    if args and isinstance(args[0], dict) and "plan" in args[0] and "table" in args[0]:
        return TableSync.from_json(args[0])
    return None


def send(task: str, *args: Any) -> None:
    """Send ``task`` (routed to its queue by name)."""
    try:
        celery_app.send_task(task, args=args)
    except EncodeError as exc:
        # kombu wraps whatever interrupts the message's encoding; the soft time limit must
        # stay itself, so the step's own handling (hand over, or retry) sees it
        if exc.args and isinstance(exc.args[0], SoftTimeLimitExceeded):
            raise exc.args[0] from None
        raise


#: The key that marks a load message's batch as a reference to its kept copy.
KEPT = "kept"


def kept_reference(batch: Batch) -> dict[str, Any]:
    """What a load message carries for a batch whose whole message the barrier keeps
    (``Barrier.keep_copy``): the batch without its records, which the load step reads from
    that copy. The records then cross Redis once, and the load worker's pool parent neither
    decodes them nor pipes them to its child."""
    return {"run_id": batch.run_id, "table": batch.table.to_json(), "batch_no": batch.batch_no,
            "v": batch.v, KEPT: True}


def hand_on(sync: TableSync, task: str, *extra: Any) -> None:
    """Send the table's next step, recorded first as the point the table resumes from."""
    args = [sync.to_json(), *extra]
    barrier().set_resume(sync.run_id, sync.table.table_id, task, args,
                         partition=sync.listing.partition_index)
    keep_alive(sync.run_id)
    send(task, *args)


def finish_step(sync: TableSync) -> dict[str, Any]:
    """The table's finish step, for the barrier to record as the table's resume point in the
    same step that completes the table."""
    return {"task": "conveyor.finish_table", "args": [sync.with_(listing=Listing()).to_json()]}


def send_step(sync: TableSync, step: dict[str, Any]) -> None:
    """Send a step already recorded as the table's resume point."""
    keep_alive(sync.run_id)
    send(step["task"], *step["args"])


def end_table(sync: TableSync, state: TableState, error: str | None = None) -> None:
    """End the table as ``state``; the run's last table to end sends ``finish_run``."""
    run_id, table_id = sync.run_id, sync.table.table_id
    if state is not TableState.SUCCEEDED:
        barrier().close(run_id, table_id, state.value)
    status_store().update_table(run_id, table_id, state=state.value, error=error)
    barrier().set_resume(run_id, table_id, None, [])
    if state is not TableState.SUCCEEDED:
        log.error("table %s %s: %s", sync.table.name, state.value, error)
    count_table_done(run_id, table_id)


def count_table_done(run_id: str, table_id: str) -> None:
    """Count an ended table; the last one sends ``finish_run``."""
    if barrier().table_done(run_id, table_id, status_store().table_count(run_id)):
        send("conveyor.finish_run", run_id)


def cancelled(sync: TableSync) -> bool:
    """True when the table must not go on: the run was cancelled (the table then ends as
    cancelled) or has already finished (a late copy of a step of a run the sweep failed)."""
    status = status_store()
    if status.run_state(sync.run_id) in FINAL:
        return True
    if not status.is_cancelled(sync.run_id):
        return False
    if not barrier().is_closed(sync.run_id, sync.table.table_id):
        end_table(sync, TableState.CANCELLED, "the run was cancelled")
    return True


FINAL = frozenset(state.value for state in FINAL_RUN_STATES)
