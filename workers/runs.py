"""Run-level tasks: finish an ETL run (the chord callback) and run generic workflow steps."""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task

from app.contracts import TableTarget
from app.errors import ConveyorError
from app.registry import workflow_class
from app.sync.outcome import outcome
from broker.celery_app import celery_app
from broker.runs_read import rejected_count
from workers.context import build_warehouse, overlap_guard, status_store
from workers.steps import where

log = logging.getLogger(__name__)

RESULT_IN_STATUS_MAX = 64 * 1024


@celery_app.task(name="conveyor.finish_run", bind=True, max_retries=5)
def finish_run(
    self: Task, results: list[dict[str, Any]], run_id: str, warehouse: str | None,
    guard: str | None = None,
) -> dict[str, Any]:
    """Decide the run's outcome once, drop leftover staging tables, write the run history,
    and let the next run of this workflow start."""
    status = status_store()
    host, queue = where(self)
    errors: list[str] = []
    try:
        store = build_warehouse(warehouse)
    except ConveyorError as exc:  # e.g. an unregistered warehouse: the run still ends, failed
        store, errors = None, [str(exc)]
    for result in results:
        if store is not None and result.get("state") != "ok" and "target" in result:
            try:
                store.abort_table(TableTarget.from_json(result["target"]))
            except ConveyorError as exc:  # a leftover staging table must not keep the run open
                errors.append(f"staging table not dropped: {exc}")
    states = {r.get("state", "ok") for r in results}
    state = outcome(failed=bool(states - {"ok"}) or store is None, cancelled=status.is_cancelled(run_id),
                    rejected=rejected_count(status.get(run_id, steps=False))).value
    errors += [r["error"] for r in results if r.get("error")]
    status.set_state(run_id, state, error="; ".join(errors) if errors else None)
    status.record_step(run_id, "finish_run", table_id=None, batch_no=None, hostname=host,
                       queue=queue, state="succeeded")
    if guard:
        overlap_guard().release(guard, run_id)
    report = status.get(run_id) or {"run_id": run_id}
    try:
        if store is not None:
            store.record_run(_history_row(report))
    except ConveyorError as exc:
        log.error("run %s finished but its history row was not written: %s", run_id, exc)
    return {"run_id": run_id, "state": state}


def _history_row(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": report["run_id"],
        "workflow": report.get("workflow", "etl"),
        "state": report.get("state"),
        "options": report.get("options", {}),
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "error": report.get("error"),
        "tables": report.get("tables", []),
    }


@celery_app.task(name="conveyor.run_step", bind=True, max_retries=5)
def run_step(self: Task, previous: Any, run_id: str, workflow: str, step: str) -> Any:
    """One @step of a registered workflow, fed the previous step's JSON result."""
    status = status_store()
    host, queue = where(self)
    if status.is_cancelled(run_id):
        raise ConveyorCancelled(run_id)
    status.set_state(run_id, "running")
    try:
        result = workflow_class(workflow)().run_step(step, previous)
    except Exception as exc:
        status.record_step(run_id, step, table_id=None, batch_no=None, hostname=host, queue=queue,
                           state="failed", error=f"{type(exc).__name__}: {exc}")
        status.set_state(run_id, "failed", error=f"step {step}: {type(exc).__name__}: {exc}")
        overlap_guard().release(f"steps:{workflow}", run_id)
        raise
    status.record_step(run_id, step, table_id=None, batch_no=None, hostname=host, queue=queue,
                       state="succeeded")
    return result


class ConveyorCancelled(ConveyorError):
    """The run was cancelled; the chain stops here."""


@celery_app.task(name="conveyor.finish_steps", bind=True)
def finish_steps(self: Task, previous: Any, run_id: str, guard: str | None = None) -> Any:
    """The end of a generic workflow's chain: the run succeeded with the last step's result."""
    store = status_store()
    encoded = json.dumps(previous, default=str)
    # The last step's result is kept with the status when small; a big one stays a task result.
    store.update_run(run_id, result=encoded if len(encoded) <= RESULT_IN_STATUS_MAX else "")
    store.set_state(run_id, "succeeded")
    if guard:
        overlap_guard().release(guard, run_id)
    return previous


@celery_app.task(name="conveyor.scheduled_run")
def scheduled_run(name: str) -> str:
    """A beat tick sent as a plain task (when beat runs without Conveyor's scheduler)."""
    from broker.scheduling import fire

    return str(fire(name).id)


@celery_app.task(name="conveyor.watchdog")
def watchdog() -> list[str]:
    """Fail runs that stalled (beat runs this every WATCHDOG_EVERY_SECONDS)."""
    from broker.watchdog import sweep

    return sweep(status_store(), overlap_guard())
