"""Load-queue tasks: detect the schema, create the table, load batches, finish the table."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task

from app.contracts import Batch, TableSchema, TableTarget
from app.errors import ConveyorError, TransientError, WarehouseError
from app.workflows import etl_steps
from broker import policies
from broker.celery_app import celery_app
from workers.context import build_warehouse, status_store
from workers.payload import EPOCH_SIZE, ended, run_id_of, table_of
from workers.steps import backoff, table_step, where

log = logging.getLogger(__name__)


def _warehouse_for(payload: dict[str, Any]) -> Any:
    return build_warehouse(payload["ctx"].get("warehouse"))


@table_step("detect_schema")
def detect_schema(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """A column kind for every field, from the source types or the sample's values."""
    schema = etl_steps.detect_schema(TableSchema.from_json(payload["schema"]), payload["sample"])
    return {"ctx": payload["ctx"], "state": "ok", "schema": schema.to_json()}


@table_step("create_table")
def create_table(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """The table this run loads into (a staging table when replacing)."""
    warehouse = _warehouse_for(payload)
    replace = bool(payload["ctx"]["options"].get("drop_tables"))
    target = etl_steps.create_table(
        warehouse, TableSchema.from_json(payload["schema"]), run_id_of(payload), replace=replace)
    status_store().update_table(run_id_of(payload), table_of(payload).table_id, sql_table=target.name)
    return {"ctx": payload["ctx"], "state": "ok", "target": target.to_json()}


@celery_app.task(name="conveyor.load_batch", bind=True, max_retries=policies.MAX_RETRIES)
def load_batch(
    self: Task, batch_json: dict[str, Any], target_json: dict[str, Any], warehouse: str | None
) -> dict[str, Any]:
    """Upsert one batch; a redelivered batch is a no-op. Returns counts, never records."""
    batch = Batch.from_json(batch_json)
    target = TableTarget.from_json(target_json)
    status = status_store()
    host, queue = where(self)
    step = dict(table_id=batch.table.table_id, batch_no=batch.batch_no, hostname=host, queue=queue)
    if status.is_cancelled(batch.run_id):
        status.record_step(batch.run_id, "load_batch", state="cancelled", **step)
        return {"state": "cancelled", "batch_no": batch.batch_no}
    try:
        result = etl_steps.load_batch(build_warehouse(warehouse), target, batch)
    except TransientError as exc:
        if self.request.retries < self.max_retries:
            status.record_step(batch.run_id, "load_batch", state="retrying", error=str(exc), **step)
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from None
        return _batch_failed(batch, f"{exc} (gave up after {self.max_retries} retries)", step)
    except ConveyorError as exc:
        return _batch_failed(batch, str(exc), step)
    status.record_loaded(batch.run_id, batch.table.table_id, batch.batch_no, result.loaded,
                         result.rejected)
    status.record_step(batch.run_id, "load_batch", state="succeeded", **step)
    return {"state": "ok", "batch_no": batch.batch_no, "loaded": result.loaded,
            "rejected": len(result.rejected), "replayed": result.replayed}


def _batch_failed(batch: Batch, error: str, step: dict[str, Any]) -> dict[str, Any]:
    status = status_store()
    message = f"batch {batch.batch_no} failed: {error}"
    status.record_step(batch.run_id, "load_batch", state="failed", error=error, **step)
    status.update_table(batch.run_id, batch.table.table_id, state="failed", error=message)
    return {"state": "failed", "batch_no": batch.batch_no, "error": message}


@table_step("finish_table")
def finish_table(task: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Wait for every batch of the table to be loaded, then swap a staging table in."""
    run_id, table = run_id_of(payload), table_of(payload)
    status = status_store()
    warehouse = _warehouse_for(payload)
    target = TableTarget.from_json(payload["target"])
    if status.table_state(run_id, table.table_id) == "failed":
        warehouse.abort_table(target)
        return ended(payload, "failed", _table_error(run_id, table.table_id))
    awaiting = payload.get("awaiting_epoch")
    if awaiting is not None:
        extraction = status.extraction(run_id, table.table_id)
        if not extraction or extraction["epoch"] != awaiting:
            raise task.retry(countdown=policies.FINISH_POLL_SECONDS, max_retries=policies.UNBOUNDED)
        payload = {**payload, **extraction, "awaiting_epoch": None, "seen_at": time.time()}
    loaded = warehouse.loaded_batches(run_id, table.table_id)
    first = payload.get("first_batch", 0)
    missing = [n for n in range(first, first + payload["batches"]) if n not in loaded]
    if missing:
        raise _wait_or_reextract(task, payload, len(loaded), target, warehouse, missing)
    etl_steps.finish_table(warehouse, target)
    status.update_table(run_id, table.table_id, state="succeeded")
    return {"ctx": payload["ctx"], "state": "ok", "loaded": sum(loaded.values())}


def _wait_or_reextract(
    task: Task, payload: dict[str, Any], loaded_count: int, target: TableTarget, warehouse: Any,
    missing: list[int],
) -> Exception:
    """Poll again; if batches stopped arriving long ago, extract the table again first."""
    from workers.extract import reextract_table

    now = time.time()
    seen_at = payload.get("seen_at") or payload["extracted_at"]
    if loaded_count != payload.get("seen_loaded"):
        seen_at = now
    waited = now - payload["extracted_at"]
    if waited > policies.FINISH_MAX_WAIT_SECONDS:
        warehouse.abort_table(target)
        return WarehouseError(f"batches {missing[:5]} never loaded after {waited:.0f} s")
    update: dict[str, Any] = {"seen_loaded": loaded_count, "seen_at": seen_at}
    reextracts = int(payload.get("reextracts", 0))
    if now - seen_at > policies.LOST_BATCH_SECONDS and reextracts < policies.MAX_REEXTRACTS:
        run_id, table = run_id_of(payload), table_of(payload)
        epoch = payload["first_batch"] // EPOCH_SIZE + 1
        log.warning("table %s: batches %s lost on the way to the load workers; extracting it "
                    "again (epoch %d)", table.name, missing[:5], epoch)
        status_store().reset_table_counts(run_id, table.table_id)
        restart = {"cursor": None, "next_batch": epoch * EPOCH_SIZE, "epoch": epoch, "fetched": 0,
                   "stalls": 0}
        reextract_table.apply_async(({"ctx": payload["ctx"], "target": payload["target"],
                                      "state": "ok", "progress": restart},))
        update.update(awaiting_epoch=epoch, reextracts=reextracts + 1, seen_at=now)
    return task.retry(args=({**payload, **update},), countdown=policies.FINISH_POLL_SECONDS,
                      max_retries=policies.UNBOUNDED)


def _table_error(run_id: str, table_id: str) -> str:
    return status_store().table_field(run_id, table_id, "error") or "a batch failed to load"
