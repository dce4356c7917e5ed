"""The producer: enqueue a workflow run and follow it through a RunHandle.

Example:
    >>> handle = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse), drop_tables=True)
    >>> handle.wait(timeout=600)["state"]
    'succeeded'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import signature

from app.errors import TerminalError
from app.registry import EXTRACTORS, WAREHOUSES, WORKFLOWS, name_of
from app.settings import get_settings
from app.sync.states import RunState
from app.workflows.base import Workflow
from app.workflows.etl import ETLWorkflow
from broker.canvases import steps_canvas
from broker.celery_app import celery_app
from broker.guard import OverlapGuard
from broker.status import TERMINAL, RunStatus, now_iso, redis_client

RUN_OPTIONS = ("drop_tables", "tables")
OVERLAP_MODES = ("skip", "queue", "allow")


class RunNotFinishedError(TerminalError):
    """wait() ran out of time before the run finished."""


class RunFailedRemotelyError(TerminalError):
    """The run finished failed or cancelled; ``status`` has the details."""

    def __init__(self, status: dict[str, Any]) -> None:
        failed = [t for t in status.get("tables", []) if t.get("state") in ("failed", "cancelled")]
        detail = "; ".join(f"{t['table']['name']}: {t.get('error') or t['state']}" for t in failed)
        super().__init__(f"run {status['run_id']} {status['state']}"
                         + (f": {detail}" if detail else f": {status.get('error') or ''}"))
        self.status = status


class RunHandle:
    """A queued run: its id, its status, and ways to wait for or cancel it."""

    def __init__(self, run_id: str, store: RunStatus | None = None) -> None:
        self.id = run_id
        self._store = store or RunStatus()

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    def status(self) -> dict[str, Any]:
        """The run's current status (state, per-table counts, steps)."""
        status = self._store.get(self.id)
        if status is None:
            raise TerminalError(f"unknown run {self.id}")
        return status

    def wait(
        self,
        timeout: float | None = None,
        *,
        poll: float = 0.5,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        raise_on_failure: bool = True,
    ) -> dict[str, Any]:
        """Block until the run finishes and return its final status.

        Raises:
            RunNotFinishedError: ``timeout`` seconds passed first.
            RunFailedRemotelyError: the run failed or was cancelled (unless told not to raise).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if on_progress:
                on_progress(status)
            if status["state"] in TERMINAL:
                if raise_on_failure and not RunState(status["state"]).landed:
                    raise RunFailedRemotelyError(status)
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise RunNotFinishedError(f"run {self.id} still {status['state']} after {timeout} s")
            time.sleep(poll)

    def cancel(self) -> None:
        """Ask the run to stop: no further batch loads, and the run ends cancelled."""
        self._store.request_cancel(self.id)
        status = self.status()
        if status["state"] == "queued":
            self._store.set_state(self.id, "cancelled")


def enqueue(
    workflow: Workflow,
    *,
    run_id: str | None = None,
    overlap: str = "skip",
    trigger: str = "manual",
    **run_options: Any,
) -> RunHandle:
    """Queue a run of ``workflow`` on the workers and return its handle.

    The message names registered classes only and carries no secrets: the workers build
    extractors and warehouses from their own environment.

    Args:
        workflow: an ETLWorkflow, or any registered Workflow with @step methods.
        run_id: the run's id (a new one by default).
        overlap: while a run of the same workflow is still going, ``skip`` records this run as
            skipped (the default), ``queue`` makes it wait its turn, ``allow`` runs it anyway.
        trigger: who asked for the run (``manual``, ``schedule:<name>``), shown in the status.
        **run_options: ``drop_tables`` and ``tables`` (names or ids) for an ETLWorkflow.
    """
    unknown = set(run_options) - set(RUN_OPTIONS)
    if unknown:
        raise TerminalError(f"unknown run options {sorted(unknown)}: use {', '.join(RUN_OPTIONS)}")
    if overlap not in OVERLAP_MODES:
        raise TerminalError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
    options = {k: v for k, v in run_options.items() if v is not None}
    spec = run_spec(workflow, options)
    spec.update(run_id=run_id or uuid.uuid4().hex, overlap=overlap, trigger=trigger)
    store = RunStatus()
    store.create_run(spec["run_id"], workflow.name(), options, trigger=trigger, spec=spec)
    handle = RunHandle(spec["run_id"], store)
    if overlap == "skip":
        holder = overlap_guard().acquire(spec["guard"], spec["run_id"])
        if holder is not None:
            store.set_state(spec["run_id"], "skipped",
                            reason=f"run {holder} of the same workflow is still going")
            return handle
    if isinstance(workflow, ETLWorkflow):
        signature("conveyor.plan_run", args=(spec,), app=celery_app).apply_async(
            task_id=f"{spec['run_id']}-plan")
    else:
        steps_canvas(spec, type(workflow)).apply_async()
    # A queued run without sent_at was never sent: its producer stopped in between.
    store.update_run(spec["run_id"], sent_at=now_iso())
    return handle


def run_spec(workflow: Workflow, options: dict[str, Any]) -> dict[str, Any]:
    """What the workers need to run ``workflow``: registry names and options, never secrets.

    ``guard`` names the workflow for the overlap guard: same workflow, source, warehouse and
    tables means the same guard.
    """
    if not isinstance(workflow, ETLWorkflow):
        name = name_of(WORKFLOWS, type(workflow))
        return {"workflow": name, "options": options, "guard": f"steps:{name}"}
    warehouse = workflow.warehouse_class
    extractor = name_of(EXTRACTORS, workflow.extractor_class)
    warehouse_name = name_of(WAREHOUSES, warehouse) if warehouse else None
    tables = ",".join(options.get("tables") or []) or "*"
    return {
        "workflow": workflow.name(),
        "extractor": extractor,
        "warehouse": warehouse_name,
        "options": options,
        "guard": f"etl:{extractor}:{warehouse_name or 'default'}:{tables}",
    }


def overlap_guard() -> OverlapGuard:
    """The overlap guard on the broker's Redis."""
    return OverlapGuard(redis_client(), get_settings().conveyor_guard_ttl_seconds)


def retry_run(run_id: str) -> RunHandle:
    """A new run of the same workflow for the tables of ``run_id`` that did not succeed.

    Raises:
        TerminalError: the run is unknown, still going, or every table succeeded.
    """
    from app.registry import extractor_class, warehouse_class

    status = RunHandle(run_id).status()
    if status["state"] not in TERMINAL or status["state"] == "skipped":
        raise TerminalError(f"run {run_id} is {status['state']}: only a finished run can be retried")
    spec = status.get("spec") or {}
    if "extractor" not in spec:
        raise TerminalError(f"run {run_id} is not an ETL run: enqueue its workflow again instead")
    unfinished = [t["table"]["table_id"] for t in status["tables"] if t["state"] != "succeeded"]
    if not unfinished and status["tables"]:
        raise TerminalError(f"every table of run {run_id} succeeded: nothing to retry")
    warehouse = spec.get("warehouse")
    workflow = ETLWorkflow(extractor_class(spec["extractor"]),
                           warehouse_class(warehouse) if warehouse else None)
    options = dict(spec.get("options") or {})
    if unfinished:
        options["tables"] = unfinished
    return enqueue(workflow, overlap="allow", trigger=f"retry:{run_id}", **options)
