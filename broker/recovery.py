"""The recovery sweep: a run never needs a person to finish.

Every step of a table records, before it is sent, the step that resumes the table, and every
batch is kept until it is loaded (``broker.barrier``). When a running run shows no sign of
life for RECOVER_AFTER_SECONDS — a message lost between the broker and a killed worker, or in
a Redis restart — the sweep sends each unfinished table's resume step and its unloaded batch
copies again (every step is idempotent), and a run whose tables all ended gets its
``finish_run`` again. A run that stays quiet for STALLED_RUN_SECONDS despite that is failed
with the reason, and ``conveyor retry RUN_ID`` re-runs its unfinished tables.

Workers run the sweep every RECOVERY_SWEEP_SECONDS (a timer in each worker; a Redis lock lets
one of them do it), and beat's watchdog entry runs it too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps

from app.settings import get_settings
from app.sync.plan import Listing, TableSync
from app.sync.states import RunState
from broker import policies
from broker.barrier import Barrier
from broker.celery_app import celery_app
from broker.guard import OverlapGuard
from broker.status import TERMINAL, RunStatus, redis_client

log = logging.getLogger(__name__)


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    return (now - datetime.fromisoformat(stamp)).total_seconds()


def verdict(run: dict[str, Any], now: datetime, stalled_after: float) -> str | None:
    """Why ``run`` should be failed now, or None if it is fine."""
    state = run.get("state")
    if state == "queued" and not run.get("sent_at"):
        age = _age(run.get("created_at"), now)
        if age is not None and age > policies.UNSENT_RUN_SECONDS:
            return "never sent: the process enqueueing it stopped first; retry it"
    if state == "running":
        quiet = _age(run.get("last_seen_at") or run.get("started_at"), now)
        if quiet is not None and quiet > stalled_after:
            return (f"no progress for {quiet:.0f} s despite recovery (no live workers?); "
                    f"`conveyor retry {run['run_id']}` re-runs the tables that did not finish")
    return None


def sweep(*, stalled_after: float | None = None, recover_after: float | None = None,
          limit: int = 500) -> dict[str, list[str]]:
    """Recover quiet runs and fail stalled ones among the newest ``limit``.

    Returns:
        ``{"recovered": [run ids], "failed": [run ids]}``.
    """
    client = redis_client()
    store, barrier = RunStatus(client), Barrier(client)
    guard = OverlapGuard(client, 1)
    stalled_after = policies.STALLED_RUN_SECONDS if stalled_after is None else stalled_after
    recover_after = policies.RECOVER_AFTER_SECONDS if recover_after is None else recover_after
    now = datetime.now(UTC)
    done: dict[str, list[str]] = {"recovered": [], "failed": []}
    for run in store.recent(limit):
        reason = verdict(run, now, stalled_after)
        if reason and store.set_state(run["run_id"], RunState.FAILED, error=reason):
            guard.release(store.guards(run["run_id"]), run["run_id"])
            done["failed"].append(run["run_id"])
            continue
        if _recover(run, now, recover_after, store, barrier):
            done["recovered"].append(run["run_id"])
    return done


def _recover(run: dict[str, Any], now: datetime, recover_after: float, store: RunStatus,
             barrier: Barrier) -> bool:
    run_id, spec = run["run_id"], run.get("spec") or {}
    if "extractor" not in spec or spec.get("driver") == "in-process":
        return False  # generic workflows and in-process runs have nothing to re-send
    if run["state"] == "queued" and run.get("sent_at") and not run.get("planned_at"):
        if (_age(run.get("sent_at"), now) or 0) > recover_after and _holder_gone(run, store):
            log.warning("run %s: its plan_run went missing; sending it again", run_id)
            _send("conveyor.plan_run", spec)
            store.update_run(run_id, sent_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
            return True
        return False
    if run["state"] != "running":
        return False
    quiet = _age(run.get("last_seen_at") or run.get("started_at"), now)
    if quiet is None or quiet < recover_after:
        return False
    guards = store.guards(run_id)
    holder = OverlapGuard(store.r, get_settings().conveyor_guard_ttl_seconds).acquire(guards, run_id)
    if holder is not None:  # its guards expired while it was quiet, and another run took them
        store.set_state(run_id, RunState.FAILED,
                        error=f"stalled, and run {holder} took over its tables meanwhile")
        return False
    unfinished = [t for t in run["tables"] if t["state"] not in ("succeeded", "failed", "cancelled")]
    if not unfinished:
        log.warning("run %s: every table ended but the run did not; finishing it", run_id)
        _send("conveyor.finish_run", run_id)
        store.update_run(run_id, last_seen_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
        return True
    resent = sum(_recover_table(run_id, table["table"]["table_id"], barrier) for table in unfinished)
    if not resent:  # nothing left to send again is no sign of life: let the stall verdict fail it
        return False
    store.update_run(run_id, last_seen_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
    return True


def _recover_table(run_id: str, table_id: str, barrier: Barrier) -> int:
    """Send the table's resume steps and unloaded batch copies again; returns how many."""
    state = barrier.state(run_id, table_id)
    pending = barrier.pending(run_id, table_id)
    resumes = state.get("resumes") or []  # one per listing: a partitioned table has several
    for message in pending.values():
        _send("conveyor.load_batch", *message)
    for resume in resumes:
        args = resume["args"]
        if resume["task"] == "conveyor.extract_table":
            sync = TableSync.from_json(args[0])
            args = [sync.with_(listing=_resumed(sync)).to_json(), *args[1:]]
        _send(resume["task"], *args)
    if not pending and not resumes:
        log.info("run %s table %s quiet, with nothing to send again", run_id, table_id)
        return 0
    count = barrier.count_recovery(run_id, table_id, len(pending))
    log.warning("run %s table %s quiet: sent again %s and %d unloaded batches (recovery %d)",
                run_id, table_id, ", ".join(r["task"] for r in resumes) or "no step",
                len(pending), count)
    return len(pending) + len(resumes)


def _resumed(sync: TableSync) -> Listing:
    return replace(sync.listing, resumed=True)


def _holder_gone(run: dict[str, Any], store: RunStatus) -> bool:
    """A run waiting its turn is sent again only once the run it waited for has finished."""
    reason = run.get("reason") or ""
    if not reason.startswith("waiting for run "):
        return True
    holder = reason.removeprefix("waiting for run ").split(",")[0]
    return store.run_state(holder) in TERMINAL | {None}


def _send(task: str, *args: Any) -> None:
    celery_app.send_task(task, args=args)


class RecoverySweep(bootsteps.StartStopStep):  # Celery is untyped: Any to mypy
    """Every worker runs the sweep on a timer; a Redis lock lets one of them do it each time."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        self.tref = worker.timer.call_repeatedly(policies.RECOVERY_SWEEP_SECONDS, _locked_sweep,
                                                 priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()


def _locked_sweep() -> None:
    try:
        client = redis_client()
        ttl = max(int(policies.RECOVERY_SWEEP_SECONDS) - 1, 1)
        if client.set("conveyor:sweep:lock", "1", nx=True, ex=ttl):
            sweep()
    except Exception:  # the timer must survive a Redis outage; the next tick tries again
        log.exception("recovery sweep failed")
