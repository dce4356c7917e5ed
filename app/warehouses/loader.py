"""Loading one batch: an idempotent upsert that sets aside the records the database refuses."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.contracts import Batch, BatchResult, RejectedRecord, TableTarget
from app.errors import WarehouseError
from app.warehouses import ddl, naming, rows
from app.warehouses.catalog import Catalog
from app.warehouses.ddl import Flavor

#: Errors about one row's data. Anything else (a lost connection, a missing table) is about
#: the whole batch and must fail it, not reject its rows one by one.
_ROW_ERRORS = (sa.exc.DataError, sa.exc.IntegrityError)


def load(
    conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget, batch: Batch
) -> BatchResult:
    """Upsert ``batch`` into ``target`` in the caller's transaction; see ``Warehouse.load_batch``.

    Raises:
        WarehouseError: the batch belongs to another run or table than ``target``.
    """
    if (batch.run_id, batch.table.table_id) != (target.run_id, target.table.table_id):
        raise WarehouseError(
            f"batch {batch.batch_no} of run {batch.run_id} table {batch.table.table_id} does not"
            f" belong to the target of run {target.run_id} table {target.table.table_id}"
        )
    # The key goes in first, in the same transaction as the rows: a second delivery of this
    # batch finds it (or waits for it) and changes nothing.
    if not catalog.claim_batch(conn, batch, target.write_to):
        return catalog.stored_batch(conn, batch)
    table_rows: list[dict[str, Any]] = []
    rejected: list[RejectedRecord] = []
    for record in rows.dedupe(batch.records):
        try:
            table_rows.append(rows.to_row(record, target.columns, batch.run_id))
        except rows.UnstorableRecord as exc:
            rejected.append(RejectedRecord(str(record.get("id")), str(exc)))
    table = ddl.data_table(flavor, target.write_to, target.columns)
    updated = [c.name for c in table.columns if c.name != naming.ID]
    upsert = flavor.upsert(table, [naming.ID], updated)
    refused = _write(conn, upsert, table_rows)
    result = BatchResult(
        run_id=batch.run_id,
        table_id=batch.table.table_id,
        batch_no=batch.batch_no,
        loaded=len(table_rows) - len(refused),
        rejected=tuple(rejected + refused),
    )
    catalog.settle_batch(conn, result)
    return result


def _write(
    conn: sa.Connection, upsert: sa.Insert, table_rows: list[dict[str, Any]]
) -> list[RejectedRecord]:
    """Execute ``upsert`` for every row; returns the rows the database refused, with why."""
    if not table_rows:
        return []
    try:
        with conn.begin_nested():
            conn.execute(upsert, table_rows)
        return []
    except _ROW_ERRORS:
        pass  # Some row is refused: find which, one savepoint per row, and keep the others.
    refused = []
    for row in table_rows:
        try:
            with conn.begin_nested():
                conn.execute(upsert, [row])
        except _ROW_ERRORS as exc:
            refused.append(RejectedRecord(row[naming.ID], _reason(exc)))
    return refused


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The database's own one-line reason, without the statement or its parameters."""
    message = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    return f"{type(exc.orig).__name__}: {message}"[:300]
