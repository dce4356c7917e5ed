"""The four ETL steps of one table (fetch, detect schema, create table, load), as plain functions.

The in-process ETLWorkflow and the Celery tasks both call exactly these.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from app.contracts import Batch, BatchResult, Record, TableRef, TableSchema, TableTarget
from app.extractors.base import TabularExtractor
from app.warehouses import Warehouse
from app.warehouses.kinds import detect_schema as detect_kinds


@dataclass(frozen=True)
class FetchedBatch:
    """A batch, whether it is the table's last, and the cursor that resumes the listing after it.

    ``cursor`` is None when the batch ended inside a page (the source can only resume at page
    boundaries) or when it is the last batch.
    """

    batch: Batch
    cursor: str | None
    last: bool


def fetch_schema(extractor: TabularExtractor, table: TableRef) -> TableSchema:
    """Step 1a: the source's fields of ``table``."""
    return extractor.get_schema(table)


def iter_batches(
    extractor: TabularExtractor,
    table: TableRef,
    run_id: str,
    *,
    max_records: int,
    max_bytes: int,
    cursor: str | None = None,
    first_batch_no: int = 0,
) -> Iterator[FetchedBatch]:
    """Step 1b: the records of ``table`` in bounded batches, as the pages arrive.

    A batch holds up to ``max_records`` records and about ``max_bytes`` of JSON, so no batch
    (and no task message) ever holds a whole table. Batches end at page boundaries when they
    can, so that the listing can resume after them. Always yields at least one batch (an
    empty table yields one empty last batch).
    """
    batch_no = first_batch_no
    pending: list[Record] = []
    pending_bytes = 0
    for page in extractor.iter_pages(table, cursor):
        for record in page.records:
            size = len(json.dumps(record, ensure_ascii=False, default=str))
            if pending and (len(pending) >= max_records or pending_bytes + size > max_bytes):
                yield FetchedBatch(Batch(run_id, table, batch_no, pending), None, False)
                batch_no += 1
                pending, pending_bytes = [], 0
            pending.append(record)
            pending_bytes += size
        if page.next_cursor is None:
            break
        if len(pending) >= max_records or pending_bytes >= max_bytes:
            yield FetchedBatch(Batch(run_id, table, batch_no, pending), page.next_cursor, False)
            batch_no += 1
            pending, pending_bytes = [], 0
    yield FetchedBatch(Batch(run_id, table, batch_no, pending), None, True)


def detect_schema(schema: TableSchema, sample: list[Record]) -> TableSchema:
    """Step 2: a column kind for every field, from the source's types or the sample's values."""
    return detect_kinds(schema, sample)


def create_table(warehouse: Warehouse, schema: TableSchema, run_id: str, *, replace: bool) -> TableTarget:
    """Step 3: the table to load into (a staging table when replacing)."""
    return warehouse.prepare_table(schema, run_id=run_id, replace=replace)


def load_batch(warehouse: Warehouse, target: TableTarget, batch: Batch) -> BatchResult:
    """Step 4: upsert one batch; a batch loaded before is a no-op."""
    return warehouse.load_batch(target, batch)


def finish_table(warehouse: Warehouse, target: TableTarget) -> None:
    """After the last batch: swap a staging table in atomically."""
    warehouse.finish_table(target)
