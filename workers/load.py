"""Load-queue tasks (they need the warehouse): create a table's target, load batches, finish
the table."""

from __future__ import annotations

import json
from typing import Any

from app.contracts import Batch
from app.errors import TerminalError
from app.sync import rules, steps
from app.sync.plan import TableSync
from app.sync.states import TableState
from broker import batch_latency
from broker.celery_app import celery_app
from workers.context import barrier, build_warehouse, keep_alive, status_store
from workers.handoff import (
    KEPT,
    SyncTask,
    cancelled,
    end_table,
    finish_step,
    hand_on,
    send_step,
)


@celery_app.task(name="conveyor.create_table", base=SyncTask, bind=True)
def create_table(
    self: SyncTask, sync_json: dict[str, Any], sample: list[Any] | None,
    first: dict[str, Any] | None,
) -> dict[str, Any]:
    """Column kinds from the sample, the table this run loads into (a staging table when
    replacing), and the table's first batch when it came along; then on to the listing."""
    sync = TableSync.from_json(sync_json)
    if cancelled(sync):
        return {"state": "cancelled"}
    warehouse = build_warehouse(sync.plan.warehouse)
    first_batch = Batch.from_json(first["batch"]) if first else None
    records = first_batch.records if first_batch else (sample or [])
    sync = steps.create_target(warehouse, sync, records).with_(schema=None)
    assert sync.target is not None
    status_store().update_table(sync.run_id, sync.table.table_id, sql_table=sync.target.name,
                                target=json.dumps(sync.target.to_json()))
    self.record(sync.run_id, sync.table.table_id, "succeeded")
    for window in sync.partitions[1:]:  # the other partitions page at once, on any worker
        hand_on(sync.with_(listing=steps.window_listing(window)), "conveyor.extract_table")
    if first is None or first_batch is None:
        hand_on(sync, "conveyor.extract_table")
        return {"state": "ok"}
    _load(self, sync, first_batch)
    barrier().mark_loaded(sync.run_id, sync.table.table_id, first_batch.batch_no)  # its listing goes on
    if first["last"]:
        part = sync.listing.partition_index
        finish = finish_step(sync)
        if barrier().mark_extracted(sync.run_id, sync.table.table_id, 0, 1, part, finish):
            send_step(sync, finish)
        return {"state": "ok", "batches": 1}
    hand_on(sync.with_(listing=rules.advanced(sync.listing, first_batch.batch_no, first["cursor"])),
            "conveyor.extract_table")
    return {"state": "ok"}


@celery_app.task(name="conveyor.load_batch", base=SyncTask, bind=True)
def load_batch(self: SyncTask, sync_json: dict[str, Any], batch_json: dict[str, Any]) -> dict[str, Any]:
    """Upsert one batch (given whole, or as a reference to its kept copy); a redelivered batch
    is a no-op. The table's last batch to land sends the table's finish step. Returns counts,
    never records."""
    sync = TableSync.from_json(sync_json)
    batch_no = batch_json["batch_no"]
    if barrier().is_closed(sync.run_id, sync.table.table_id):
        return {"state": "skipped", "batch_no": batch_no}
    if cancelled(sync):
        return {"state": "cancelled", "batch_no": batch_no}
    batch = _batch_of(sync, batch_json)
    if batch is None:  # its copy is gone: loaded by an earlier delivery, or the table closed
        return {"state": "skipped", "batch_no": batch_no}
    keep_alive(sync.run_id)
    result = _load(self, sync, batch)
    finish = finish_step(sync)
    if barrier().mark_loaded(sync.run_id, sync.table.table_id, batch.batch_no, finish):
        send_step(sync, finish)
    return {"state": "ok", "batch_no": batch.batch_no, "loaded": result.loaded,
            "rejected": len(result.rejected), "replayed": result.replayed}


def _batch_of(sync: TableSync, batch_json: dict[str, Any]) -> Batch | None:
    """The batch a load message names: carried whole, or read from its kept copy (None when
    the copy is gone because the batch is loaded or its table closed).

    Raises:
        TerminalError: the copy is gone although the batch was never loaded (it expired).
    """
    if not batch_json.get(KEPT):
        return Batch.from_json(batch_json)
    run_id, table_id, batch_no = sync.run_id, sync.table.table_id, batch_json["batch_no"]
    copy = barrier().kept_copy(run_id, table_id, batch_no)
    if copy is not None:
        return Batch.from_json(copy[1])
    # (the copy goes in the same step that records the batch loaded, or when the table closes)
    if barrier().is_loaded(run_id, table_id, batch_no) or barrier().is_closed(run_id, table_id):
        return None
    raise TerminalError(f"batch {batch_no} of table {sync.table.name!r} was neither loaded nor"
                        " kept any more (its copy expired): sync the table again")


def _load(task: SyncTask, sync: TableSync, batch: Batch) -> Any:
    with batch_latency.timed():
        result = steps.load(build_warehouse(sync.plan.warehouse), sync, batch)
    status_store().record_loaded(sync.run_id, sync.table.table_id, batch.batch_no, result.loaded,
                                 result.rejected, created=result.created)
    task.record(sync.run_id, sync.table.table_id, "succeeded", batch_no=batch.batch_no)
    return result


@celery_app.task(name="conveyor.finish_table", base=SyncTask, bind=True)
def finish_table(self: SyncTask, sync_json: dict[str, Any]) -> dict[str, Any]:
    """Every batch is loaded: swap a staging table in (a second call does nothing)."""
    sync = TableSync.from_json(sync_json)
    if cancelled(sync):
        return {"state": "cancelled"}
    deleted = steps.finish(build_warehouse(sync.plan.warehouse), sync)
    status_store().update_table(sync.run_id, sync.table.table_id, deleted=str(deleted),
                                cursor=json.dumps(sync.change.cursor) if sync.change else None)
    self.record(sync.run_id, sync.table.table_id, "succeeded")
    end_table(sync, TableState.SUCCEEDED)
    return {"state": "ok"}
