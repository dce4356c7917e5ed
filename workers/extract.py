"""Extract-queue tasks (they need the source's secrets): plan a run, read a table's first page,
page the rest of a table into load batches."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from app.errors import ConfigurationError, ConveyorError, CursorExpiredError, SourceError
from app.extractors.base import TabularExtractor
from app.extractors.partitions import CreatedWindow
from app.registry import workflow_class
from app.sync import rules, steps
from app.sync.plan import RunPlan, TableSync
from app.sync.states import RunState, TableState
from app.warehouses import Warehouse
from broker import policies
from broker.celery_app import celery_app
from broker.guard import table_guards
from broker.status import TERMINAL
from workers.context import (
    barrier,
    build_extractor,
    build_warehouse,
    keep_alive,
    overlap_guard,
    status_store,
)
from workers.handoff import (
    SyncTask,
    cancelled,
    end_table,
    finish_step,
    hand_on,
    kept_reference,
    send,
    send_step,
)

log = logging.getLogger(__name__)


@celery_app.task(name="conveyor.plan_run", base=SyncTask, bind=True)
def plan_run(self: SyncTask, plan_json: dict[str, Any]) -> dict[str, Any]:
    """List the run's tables and their fields (one metadata read), take the overlap guards of
    the tables it writes, and start every table."""
    plan = RunPlan.from_json(plan_json)
    run_id, status = plan.run_id, status_store()
    if status.is_cancelled(run_id) or status.run_state(run_id) in TERMINAL:
        return {"run_id": run_id, "state": "already finished"}
    if status.run_field(run_id, "planned_at"):
        return {"run_id": run_id, "state": "already planned"}
    try:
        extractor = build_extractor(plan.extractor)
        warehouse = build_warehouse(plan.warehouse)
        tables = steps.resolve_tables(extractor, plan.options.tables)
        guards = table_guards(warehouse.identity(), extractor.identity(), [t.table_id for t in tables])
    except ConveyorError as exc:
        return _plan_failed(self, run_id, str(exc))
    if plan.overlap != "allow":
        holder = overlap_guard().acquire(guards, run_id)
        if holder is not None:
            return _overlapping(run_id, holder, plan.overlap)
        status.set_guards(run_id, guards)
    try:
        workflow_class(plan.workflow)(extractor, warehouse).call_hook("before_run")  # type: ignore[call-arg]
    except Exception as exc:  # a user's hook: its failure fails the run, whatever it raised
        overlap_guard().release(guards, run_id)
        return _plan_failed(self, run_id, f"before_run: {type(exc).__name__}: {exc}")
    status.set_state(run_id, RunState.RUNNING)
    status.set_tables(run_id, tables)
    if not status.claim_plan(run_id):  # a redelivered plan_run must not start the tables twice
        return {"run_id": run_id, "state": "already planned"}
    self.record(run_id, None, "succeeded")
    if not tables:
        send("conveyor.finish_run", run_id)
    for table in tables:
        sync = TableSync(plan, table)
        try:
            sync = sync.with_(schema=steps.schema_of(extractor, table))
        except ConfigurationError as exc:
            end_table(sync, TableState.FAILED, str(exc))
            continue
        hand_on(sync, "conveyor.start_table")
    return {"run_id": run_id, "tables": len(tables)}


def _plan_failed(task: SyncTask, run_id: str, error: str) -> dict[str, Any]:
    log.error("run %s failed: %s", run_id, error)
    task.record(run_id, None, "failed", error=error)
    status_store().set_state(run_id, RunState.FAILED, error=error)
    return {"run_id": run_id, "state": "failed", "error": error}


def _overlapping(run_id: str, holder: str, overlap: str) -> dict[str, Any]:
    status = status_store()
    if overlap == "queue":
        overlap_guard().wait_behind(holder, run_id)
        status.update_run(run_id, reason=f"waiting for run {holder}, which writes the same tables")
        return {"run_id": run_id, "state": "waiting", "behind": holder}
    status.set_state(run_id, RunState.SKIPPED,
                     reason=f"run {holder} is still going: it writes the same tables")
    return {"run_id": run_id, "state": "skipped"}


@celery_app.task(name="conveyor.start_table", base=SyncTask, bind=True)
def start_table(self: SyncTask, sync_json: dict[str, Any]) -> dict[str, Any]:
    """Read the table's first page: the typing sample and, when it fits one batch, the
    table's first batch (so it is never fetched twice)."""
    sync = TableSync.from_json(sync_json)
    if cancelled(sync):
        return {"state": "cancelled"}
    status_store().update_table(sync.run_id, sync.table.table_id, state=TableState.RUNNING.value)
    extractor = build_extractor(sync.plan.extractor)
    warehouse = build_warehouse(sync.plan.warehouse)
    sync = _partitioned(extractor, warehouse, steps.plan_listing(extractor, warehouse, sync))
    page = steps.first_page(extractor, sync)
    sync = steps.started(sync, page)
    status_store().count_requests(sync.run_id, sync.table.table_id,
                                  page.requests + (sync.change.requests if sync.change else 0))
    status_store().update_table(sync.run_id, sync.table.table_id,
                                mode=str(sync.plan.options.mode_for(sync.table)),
                                change_source=sync.change.source if sync.change else None,
                                resync=sync.change.resync if sync.change else None)
    sample = steps.sample_of(page.records, sync.plan.batch_max_bytes)
    first = list(steps.iter_batches([page], sync, sync.listing.next_batch))
    self.record(sync.run_id, sync.table.table_id, "succeeded")
    if len(first) == 1 and len(sample) == len(page.records):
        batch = first[0]
        status_store().record_fetched(sync.run_id, sync.table.table_id, 0, len(batch.batch.records))
        carried = {"batch": batch.batch.to_json(), "cursor": batch.cursor, "last": batch.last}
        hand_on(sync, "conveyor.create_table", None, carried)
    else:  # records too big for one message: the listing starts over (one request more)
        hand_on(sync, "conveyor.create_table", sample, None)
    return {"state": "ok"}


def _partitioned(extractor: TabularExtractor, warehouse: Warehouse, sync: TableSync) -> TableSync:
    """The table split into creation-time partitions when it is large (the windows recorded
    by a first delivery of this step win over new ones), or as it is."""
    windows = steps.partition_plan(extractor, warehouse, sync)
    if not windows:
        return sync
    claimed = barrier().claim_partitions(sync.run_id, sync.table.table_id,
                                         [w.to_json() for w in windows])
    windows = tuple(CreatedWindow.from_json(w) for w in claimed)
    status_store().update_table(sync.run_id, sync.table.table_id, partitions=str(len(windows)))
    return steps.partitioned(sync, windows)


@celery_app.task(name="conveyor.extract_table", base=SyncTask, bind=True)
def extract_table(self: SyncTask, sync_json: dict[str, Any]) -> dict[str, Any]:
    """Page the table from its listing's resume point and send each bounded batch to the load
    queue as soon as it is fetched, keeping a copy until it is loaded.

    After EXTRACT_SLICE_SECONDS the task hands over to a new one resuming from the listing's
    cursor, so no task runs long and a killed worker loses little.
    """
    sync = TableSync.from_json(sync_json)
    run_id, table_id = sync.run_id, sync.table.table_id
    status, started = status_store(), time.monotonic()
    extractor = build_extractor(sync.plan.extractor)
    resume = sync.listing
    requests = 0

    def on_page(taken: int) -> None:
        nonlocal requests
        requests += taken

    try:
        for item in steps.listing_batches(extractor, sync, on_page):
            if cancelled(sync):
                return {"state": "cancelled"}
            keep_alive(run_id)
            batch = item.batch
            sync_json = steps.for_loading(sync).to_json()
            barrier().keep_copy(run_id, table_id, batch.batch_no, kept_message(sync_json, item))
            send("conveyor.load_batch", sync_json, kept_reference(batch))
            status.record_fetched(run_id, table_id, batch.batch_no, len(batch.records))
            if item.last:
                status.count_requests(run_id, table_id, requests, recovery=sync.listing.resumed)
                self.record(run_id, table_id, "succeeded")
                return _extracted(sync, batch.batch_no)
            resume = rules.advanced(resume, batch.batch_no, item.cursor)
            if item.cursor is not None:
                following = sync.with_(listing=resume)
                if time.monotonic() - started > policies.EXTRACT_SLICE_SECONDS:
                    status.count_requests(run_id, table_id, requests, recovery=sync.listing.resumed)
                    self.record(run_id, table_id, "continued")
                    hand_on(following, "conveyor.extract_table")
                    return {"state": "continued", "next_batch": resume.next_batch}
                barrier().set_resume(run_id, table_id, "conveyor.extract_table",
                                     [following.to_json()], partition=resume.partition_index)
    except SoftTimeLimitExceeded:  # also when it struck inside a send (handoff.send unwraps it)
        # A slow source (429 penalties, retried 5xx) ate the slice: carry on from the last
        # resumable point; batches sent since then are sent again and load as no-ops.
        status.count_requests(run_id, table_id, requests, recovery=sync.listing.resumed)
        stalled = rules.stalled(resume)
        if rules.gives_up(stalled):
            raise SourceError(f"extraction made no progress in {stalled.stalls} slices") from None
        hand_on(sync.with_(listing=stalled), "conveyor.extract_table")
        return {"state": "continued", "stalls": stalled.stalls}
    except CursorExpiredError:
        status.count_requests(run_id, table_id, requests, recovery=sync.listing.resumed)
        status.reset_table_counts(run_id, table_id, sync.listing.partition_index
                                  if sync.listing.partition else None)
        hand_on(sync.with_(listing=rules.restart(sync.listing)), "conveyor.extract_table")
        return {"state": "restarted"}
    raise SourceError(f"the listing of {sync.table.name!r} ended without a last batch")


def kept_message(sync_json: dict[str, Any], item: steps.FetchedBatch) -> bytes:
    """The UTF-8 JSON text of a batch's load message ``[sync, batch]``, as the barrier keeps it.

    The records' text made while sizing them is put in as it is, not encoded again, when they
    are plain JSON that UTF-8 can carry (a lone surrogate is written escaped otherwise). Bytes,
    not str: a batch's text is a megabyte or more, and as str it would be made, copied and
    widened to four bytes a character (an emoji anywhere) on its way to Redis.
    """
    texts = item.record_texts
    records = None if texts is None else _utf8_records(texts)
    if records is None:
        return json.dumps([sync_json, item.batch.to_json()]).encode()
    head = item.batch.to_json()
    del head["records"]
    return b"".join([b"[", json.dumps(sync_json).encode(), b", ",
                     json.dumps(head)[:-1].encode(), b', "records": [', records, b"]}]"])


def _utf8_records(texts: list[str]) -> bytes | None:
    """The records' texts as one UTF-8 JSON list body, or None if one holds a lone surrogate."""
    try:
        return b", ".join([text.encode() for text in texts])
    except UnicodeEncodeError:
        return None


def _extracted(sync: TableSync, last_batch_no: int) -> dict[str, Any]:
    """The listing ended: the table finishes when its last batch is loaded (perhaps now)."""
    epoch, batches = rules.epoch_of(last_batch_no), rules.batch_count(last_batch_no)
    run_id, table_id, part = sync.run_id, sync.table.table_id, sync.listing.partition_index
    barrier().set_resume(run_id, table_id, None, [], partition=part)
    finish = finish_step(sync)
    if barrier().mark_extracted(run_id, table_id, epoch, batches, part, finish):
        send_step(sync, finish)
    return {"state": "extracted", "batches": batches}
