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
from dataclasses import replace
from typing import Any

from celery import signature

from app.errors import ConfigurationError, TerminalError
from app.registry import WORKFLOWS, name_of
from app.settings import get_settings
from app.sync.plan import RunPlan
from app.sync.states import RunState
from app.workflows.base import Workflow
from app.workflows.etl import ETLWorkflow
from broker.canvases import steps_canvas
from broker.celery_app import celery_app
from broker.guard import OverlapGuard
from broker.status import TERMINAL, RunStatus, now_iso, redis_client

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
        """Block until the run finishes and return its final status: at once when it does
        (its finish is announced), and its status is read every ``poll`` seconds meanwhile.

        Raises:
            RunNotFinishedError: ``timeout`` seconds passed first.
            RunFailedRemotelyError: the run failed or was cancelled (unless told not to raise).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._store.finish_notices(self.id) as sleep:
            while True:
                status = self.status()
                if on_progress:
                    on_progress(status)
                if status["state"] in TERMINAL:
                    if raise_on_failure and not RunState(status["state"]).landed:
                        raise RunFailedRemotelyError(status)
                    return status
                if deadline is not None and time.monotonic() > deadline:
                    raise RunNotFinishedError(
                        f"run {self.id} still {status['state']} after {timeout} s")
                left = poll if deadline is None else deadline - time.monotonic()
                sleep(max(0.0, min(poll, left)))  # woken at once when the run finishes

    def cancel(self) -> None:
        """Ask the run to stop: no further batch loads, and the run ends cancelled. A generic
        workflow ends cancelled at once (the step running now finishes, nothing after it runs)."""
        self._store.request_cancel(self.id)
        status = self.status()
        if status["state"] == "queued" or (status["state"] == "running"
                                           and "extractor" not in (status.get("spec") or {})):
            if self._store.set_state(self.id, RunState.CANCELLED):
                guards = self._store.guards(self.id)
                if guards:
                    overlap_guard().release(guards, self.id)


def enqueue(
    workflow: Workflow,
    *,
    run_id: str | None = None,
    overlap: str = "skip",
    trigger: str = "manual",
    **run_options: Any,
) -> RunHandle:
    """Queue a run of ``workflow`` on the workers and return its handle.

    The run plan carries the extractor's and warehouse's configuration (base id, API URL,
    warehouse URL without its password, schema…) and the options, never a secret: each worker
    takes the secrets of the run's connection from its own environment.

    Args:
        workflow: an ETLWorkflow, or any registered Workflow with @step methods.
        run_id: the run's id (a new one by default).
        overlap: while another run writes the same tables (into the same warehouse and
            schema), ``skip`` records this run as skipped (the default), ``queue`` makes it
            start when that run ends, ``allow`` runs it anyway.
        trigger: who asked for the run (``manual``, ``schedule:<name>``), shown in the status.
        **run_options: for an ETLWorkflow, ``drop_tables``, ``tables`` (names or ids),
            ``incremental``, ``hard_deletes``, ``deletes_every``, ``computed_every`` (see
            ``ETLWorkflow.run``).

    Raises:
        ConfigurationError: an unknown option, or an extractor or warehouse argument that
            cannot be sent to workers (an explicit token, an unregistered class).
    """
    if overlap not in OVERLAP_MODES:
        raise ConfigurationError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
    run_id = run_id or uuid.uuid4().hex
    store = RunStatus()
    handle = RunHandle(run_id, store)
    if isinstance(workflow, ETLWorkflow):
        return send_plan(workflow.plan(run_id=run_id, trigger=trigger, overlap=overlap,
                                       **run_options), store)
    else:
        if run_options:
            raise ConfigurationError(f"{workflow.name()} takes no run options, not {sorted(run_options)}")
        name = name_of(WORKFLOWS, type(workflow))
        store.create_run(run_id, name, {}, trigger=trigger, spec={"workflow": name})
        guards = [f"steps:{name}"]
        if overlap != "allow":
            holder = overlap_guard().acquire(guards, run_id)
            if holder is not None:
                store.set_state(run_id, RunState.SKIPPED, reason=f"run {holder} of {name} is still going")
                return handle
        store.set_guards(run_id, guards)
        steps_canvas(run_id, type(workflow)).apply_async()
    # A queued run without sent_at was never sent: its producer stopped in between.
    store.update_run(run_id, sent_at=now_iso())
    return handle


def overlap_guard() -> OverlapGuard:
    """The overlap guard on the broker's Redis."""
    return OverlapGuard(redis_client(), get_settings().conveyor_guard_ttl_seconds)


def retry_run(run_id: str) -> RunHandle:
    """A new run of the same plan for the tables of ``run_id`` that did not succeed.

    Raises:
        TerminalError: the run is unknown, still going, or every table succeeded.
    """
    status = RunHandle(run_id).status()
    if status["state"] not in TERMINAL or status["state"] == "skipped":
        raise TerminalError(f"run {run_id} is {status['state']}: only a finished run can be retried")
    spec = status.get("spec") or {}
    if "extractor" not in spec:
        raise TerminalError(f"run {run_id} is not an ETL run: enqueue its workflow again instead")
    unfinished = [t["table"]["table_id"] for t in status["tables"] if t["state"] != "succeeded"]
    if not unfinished and status["tables"]:
        raise TerminalError(f"every table of run {run_id} succeeded: nothing to retry")
    previous = RunPlan.from_json(spec)
    options = previous.options
    if unfinished:
        options = replace(options, tables=tuple(unfinished))
    plan = replace(previous, run_id=uuid.uuid4().hex, options=options, trigger=f"retry:{run_id}",
                   overlap="allow")
    return send_plan(plan, RunStatus())


def send_plan(plan: RunPlan, store: RunStatus) -> RunHandle:
    """Record an ETL run as queued and send its plan to the extract workers."""
    store.create_run(plan.run_id, plan.workflow, plan.options.to_user(), trigger=plan.trigger,
                     spec=plan.to_json())
    signature("conveyor.plan_run", args=(plan.to_json(),), app=celery_app).apply_async(
        task_id=f"{plan.run_id}-plan")
    # A queued run without sent_at was never sent: its producer stopped in between.
    store.update_run(plan.run_id, sent_at=now_iso())
    return RunHandle(plan.run_id, store)
