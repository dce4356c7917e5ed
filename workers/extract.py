"""Extract-queue tasks: plan a run, fetch a table's schema, page a table into load batches."""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from app.contracts import TableRef
from app.errors import ConfigurationError, ConveyorError, CursorExpiredError, SourceUnavailableError
from app.settings import get_settings
from app.workflows import etl_steps
from broker import policies
from broker.canvases import etl_run_canvas
from broker.celery_app import celery_app
from broker.status import TERMINAL
from workers.context import build_extractor, keep_alive, overlap_guard, status_store
from workers.payload import EPOCH_SIZE, ended, run_id_of, table_of
from workers.steps import table_step, where


@celery_app.task(name="conveyor.plan_run", bind=True, max_retries=5)
def plan_run(self: Task, spec: dict[str, Any]) -> dict[str, Any]:
    """List the run's tables (this needs the source's secrets) and launch one chain per table."""
    run_id = spec["run_id"]
    status = status_store()
    host, queue = where(self)
    if status.is_cancelled(run_id) or status.run_state(run_id) in TERMINAL:
        return {"run_id": run_id, "state": "already finished"}
    guard_key = spec.get("guard")
    if guard_key and spec.get("overlap") in ("skip", "queue"):
        holder = overlap_guard().acquire(guard_key, run_id)
        if holder is not None and spec["overlap"] == "queue":
            status.update_run(run_id, reason=f"waiting for run {holder} of the same workflow")
            raise self.retry(countdown=policies.QUEUED_RUN_POLL_SECONDS,
                             max_retries=policies.UNBOUNDED)
        if holder is not None:
            status.set_state(run_id, "skipped", reason=f"run {holder} of the same workflow is still going")
            return {"run_id": run_id, "state": "skipped"}
    status.set_state(run_id, "running")
    try:
        tables = resolve_tables(spec)
    except ConveyorError as exc:
        status.record_step(run_id, "plan_run", table_id=None, batch_no=None, hostname=host,
                           queue=queue, state="failed", error=str(exc))
        status.set_state(run_id, "failed", error=str(exc))
        if guard_key:
            overlap_guard().release(guard_key, run_id)
        return {"run_id": run_id, "state": "failed", "error": str(exc)}
    if not status.claim_plan(run_id):  # a redelivered plan_run must not launch a second canvas
        return {"run_id": run_id, "state": "already planned"}
    status.set_tables(run_id, tables)
    status.record_step(run_id, "plan_run", table_id=None, batch_no=None, hostname=host,
                       queue=queue, state="succeeded")
    etl_run_canvas(spec, tables).apply_async()
    return {"run_id": run_id, "tables": len(tables)}


def resolve_tables(spec: dict[str, Any]) -> list[TableRef]:
    """The run's tables. A named table the source lacks stays in the list, so its own chain
    fails with a clear error while the other tables still land."""
    options = spec.get("options", {})
    extractor = build_extractor(spec["extractor"], {})
    every = extractor.list_tables()
    wanted = options.get("tables") or []
    if not wanted:
        return every
    chosen = []
    for name in wanted:
        match = next((t for t in every if name in (t.table_id, t.name)), None)
        chosen.append(match or TableRef(source=extractor.source_name, table_id=name, name=name))
    return chosen


def _extractor_for(payload: dict[str, Any]) -> Any:
    return build_extractor(payload["ctx"]["extractor"], {})


@table_step("fetch_schema")
def fetch_schema(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """The table's fields from the source, plus a first page of records as a typing sample."""
    table = table_of(payload)
    extractor = _extractor_for(payload)
    known = {t.table_id for t in extractor.list_tables()}
    if table.table_id not in known:
        raise ConfigurationError(f"unknown table {table.name!r}: the source has no such table")
    schema = etl_steps.fetch_schema(extractor, table)
    first_page = next(extractor.iter_pages(table, None))
    return {**payload, "schema": schema.to_json(), "sample": _bounded(first_page.records)}


def _bounded(records: list[Any]) -> list[Any]:
    """At most one batch's worth of bytes: a sample never makes a message big."""
    budget = get_settings().batch_max_bytes
    kept = []
    for record in records:
        budget -= len(json.dumps(record, default=str))
        if budget < 0:
            break
        kept.append(record)
    return kept


@table_step("extract_table")
def extract_table(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Page the table and send each bounded batch to the load queue as soon as it is fetched.

    After EXTRACT_SLICE_SECONDS the task hands over to a follow-up task (the same task re-sent
    with the listing's cursor), so no task runs long and a killed worker loses little.
    """
    return _extract(task, payload)


@table_step("reextract_table")
def reextract_table(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Extract the table again in a new batch epoch, for a finish_table that lost batches."""
    return _extract(task, payload)


def _extract(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    from workers.load import load_batch

    settings = get_settings()
    status = status_store()
    run_id, table = run_id_of(payload), table_of(payload)
    extractor = _extractor_for(payload)
    progress = dict(payload.get("progress") or {"cursor": None, "next_batch": 0, "epoch": 0,
                                                "fetched": 0, "stalls": 0})
    resume = dict(progress)  # the last point the listing can restart from
    started = time.monotonic()
    try:
        for item in etl_steps.iter_batches(
            extractor, table, run_id, cursor=progress["cursor"],
            first_batch_no=progress["next_batch"],
            max_records=settings.batch_max_records, max_bytes=settings.batch_max_bytes,
        ):
            if status.is_cancelled(run_id):
                return ended(payload, "cancelled")
            keep_alive(payload["ctx"])
            load_batch.apply_async(
                (item.batch.to_json(), payload["target"], payload["ctx"].get("warehouse")))
            status.record_fetched(run_id, table.table_id, item.batch.batch_no, len(item.batch.records))
            progress["next_batch"] = item.batch.batch_no + 1
            progress["fetched"] += len(item.batch.records)
            if item.last:
                break
            if item.cursor:
                resume = {**progress, "cursor": item.cursor, "stalls": 0}
                if time.monotonic() - started > policies.EXTRACT_SLICE_SECONDS:
                    raise task.retry(args=({**payload, "progress": resume},), countdown=0,
                                     max_retries=policies.UNBOUNDED)
    except SoftTimeLimitExceeded:
        # A slow source (429 penalties, retried 5xx) ate the slice: carry on from the last
        # resumable point; batches sent since then are sent again and load as no-ops.
        stalls = resume.get("stalls", 0) + 1
        if stalls > policies.MAX_RETRIES:
            raise SourceUnavailableError(f"extraction made no progress in {stalls} slices") from None
        raise task.retry(args=({**payload, "progress": {**resume, "stalls": stalls}},),
                         countdown=1, max_retries=policies.UNBOUNDED) from None
    except CursorExpiredError:
        epoch = progress["epoch"] + 1
        status.reset_table_counts(run_id, table.table_id)
        restart = {"cursor": None, "next_batch": epoch * EPOCH_SIZE, "epoch": epoch, "fetched": 0,
                   "stalls": 0}
        raise task.retry(args=({**payload, "progress": restart},), countdown=0,
                         max_retries=policies.UNBOUNDED) from None
    first_batch = progress["epoch"] * EPOCH_SIZE
    extraction = {"epoch": progress["epoch"], "first_batch": first_batch,
                  "batches": progress["next_batch"] - first_batch}
    status.update_table(run_id, table.table_id, extraction=json.dumps(extraction))
    return {"ctx": payload["ctx"], "target": payload["target"], "state": "ok", **extraction,
            "fetched": progress["fetched"], "extracted_at": time.time()}
