"""Run-level tasks: finish an ETL run, run generic workflow steps, beat ticks and the sweep."""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task

from app.contracts import TableTarget
from app.errors import ConveyorError
from app.registry import workflow_class
from app.sync import rules
from app.sync.plan import RunPlan
from app.sync.states import RunState
from broker.celery_app import celery_app
from workers.context import build_extractor, build_warehouse, overlap_guard, status_store
from workers.handoff import SyncTask, send

log = logging.getLogger(__name__)

RESULT_IN_STATUS_MAX = 64 * 1024


@celery_app.task(name="conveyor.finish_run", base=SyncTask, bind=True)
def finish_run(self: SyncTask, run_id: str) -> dict[str, Any]:
    """Decide the run's outcome once, drop leftover staging tables, write the run history,
    release the run's guards and wake the runs waiting for them."""
    status = status_store()
    run = status.get(run_id, steps=False)
    if run is None or run["state"] in {s.value for s in RunState if s.is_final}:
        return {"run_id": run_id, "state": run["state"] if run else "unknown"}
    plan = RunPlan.from_json(run["spec"])
    errors = [f"{t['table']['name']}: {t['error']}" for t in run["tables"] if t.get("error")]
    warehouse = None
    try:
        warehouse = build_warehouse(plan.warehouse)
        for table in run["tables"]:
            if table["state"] != "succeeded" and table.get("target"):
                warehouse.abort_table(TableTarget.from_json(json.loads(table["target"])))
    except ConveyorError as exc:  # a leftover staging table must not keep the run open
        errors.append(f"staging table not dropped: {exc}")
    rejected = sum(len(t["rejected"]) for t in run["tables"])
    state = rules.outcome((t["state"] for t in run["tables"]), rejected,
                          cancelled=status.is_cancelled(run_id))
    if warehouse is None and state.landed:
        state = RunState.FAILED
    if state.landed:
        state = _after_run(plan, errors) or state
    status.set_state(run_id, state, error="; ".join(errors) if errors else None)
    self.record(run_id, None, "succeeded")
    release(run_id)
    final = status.get(run_id, steps=False) or {"run_id": run_id}
    try:
        if warehouse is not None:
            warehouse.record_run(history_row(final))
    except ConveyorError as exc:
        log.error("run %s finished but its history row was not written: %s", run_id, exc)
    return {"run_id": run_id, "state": state.value}


def _after_run(plan: RunPlan, errors: list[str]) -> RunState | None:
    try:
        workflow = workflow_class(plan.workflow)(build_extractor(plan.extractor),  # type: ignore[call-arg]
                                                 build_warehouse(plan.warehouse))
        workflow.call_hook("after_run")
    except Exception as exc:  # a user's hook: its failure fails the run, whatever it raised
        errors.append(f"after_run: {type(exc).__name__}: {exc}")
        return RunState.FAILED
    return None


def release(run_id: str) -> None:
    """Release the run's overlap guards and send the runs that waited for them."""
    status = status_store()
    guards = status.guards(run_id)
    if guards:
        overlap_guard().release(guards, run_id)
    for waiting in overlap_guard().take_waiters(run_id):
        spec = (status.get(waiting, steps=False) or {}).get("spec")
        if spec:
            send("conveyor.plan_run", spec)


def history_row(report: dict[str, Any]) -> dict[str, Any]:
    """A run's status as its row in the warehouse's ``_conveyor_runs``."""
    return {
        "run_id": report["run_id"],
        "workflow": report.get("workflow", "etl"),
        "state": report.get("state"),
        "options": report.get("options", {}),
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "error": report.get("error"),
        "tables": [{k: v for k, v in t.items() if k != "target"} for t in report.get("tables", [])],
    }


class ConveyorCancelled(ConveyorError):
    """The run was cancelled; the chain stops here."""


@celery_app.task(name="conveyor.run_step", bind=True, max_retries=5)
def run_step(self: Task, previous: Any, run_id: str, workflow: str, step: str) -> Any:
    """One @step of a registered workflow, fed the previous step's JSON result. The first step
    fires the workflow's ``before_run`` hook on this worker."""
    status = status_store()
    host, queue = self.request.hostname, (self.request.delivery_info or {}).get("routing_key")
    if status.is_cancelled(run_id) or status.run_state(run_id) in {s.value for s in RunState if s.is_final}:
        _end_cancelled(run_id)
        raise ConveyorCancelled(run_id)
    status.set_state(run_id, RunState.RUNNING)
    try:
        instance = workflow_class(workflow)()
        if instance.steps()[0].name == step:  # type: ignore[attr-defined]
            instance.call_hook("before_run")
        result = instance.run_step(step, previous)  # type: ignore[attr-defined]
    except Exception as exc:
        status.record_step(run_id, step, table_id=None, batch_no=None, hostname=host, queue=queue,
                           state="failed", error=f"{type(exc).__name__}: {exc}")
        status.set_state(run_id, RunState.FAILED, error=f"step {step}: {type(exc).__name__}: {exc}")
        release(run_id)
        raise
    status.record_step(run_id, step, table_id=None, batch_no=None, hostname=host, queue=queue,
                       state="succeeded")
    if status.is_cancelled(run_id):  # cancelled while this step ran: the chain stops here
        _end_cancelled(run_id)
        raise ConveyorCancelled(run_id)
    return result


def _end_cancelled(run_id: str) -> None:
    status_store().set_state(run_id, RunState.CANCELLED)
    release(run_id)


@celery_app.task(name="conveyor.finish_steps", bind=True)
def finish_steps(self: Task, previous: Any, run_id: str, workflow: str) -> Any:
    """The end of a generic workflow's chain: ``after_run`` fires, then the run succeeded with
    the last step's result."""
    store = status_store()
    try:
        workflow_class(workflow)().call_hook("after_run")
    except Exception as exc:
        store.set_state(run_id, RunState.FAILED, error=f"after_run: {type(exc).__name__}: {exc}")
        release(run_id)
        raise
    encoded = json.dumps(previous, default=str)
    # The last step's result is kept with the status when small; a big one stays a task result.
    store.update_run(run_id, result=encoded if len(encoded) <= RESULT_IN_STATUS_MAX else "")
    store.set_state(run_id, RunState.SUCCEEDED)
    release(run_id)
    return previous


@celery_app.task(name="conveyor.scheduled_run")
def scheduled_run(name: str) -> str:
    """A beat tick sent as a plain task (when beat runs without Conveyor's scheduler)."""
    from broker.scheduling import fire

    return str(fire(name).id)


@celery_app.task(name="conveyor.watchdog")
def watchdog() -> dict[str, list[str]]:
    """Recover runs that stopped moving and fail those that cannot be (beat runs this, and
    every worker's recovery timer)."""
    from broker.recovery import sweep

    return sweep()
