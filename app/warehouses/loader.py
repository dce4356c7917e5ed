"""Loading one batch: an idempotent upsert that sets aside the records the database refuses."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from app.contracts import Batch, BatchResult, Column, Record, RejectedRecord, TableTarget
from app.errors import WarehouseError
from app.warehouses import ddl, naming, rows
from app.warehouses.catalog import Catalog
from app.warehouses.ddl import Flavor

#: The reason given for an earlier record of a batch that a later one with its id replaced.
SUPERSEDED = "superseded: a later record in the same batch has the same id and was loaded instead"


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
    kept, superseded = rows.split_superseded(batch.records)
    rejected = [RejectedRecord(rows.report_id(r), SUPERSEDED) for r in superseded]
    pending: list[tuple[Record, dict[str, Any]]] = []
    for record in kept:
        try:
            row = rows.to_row(
                record, target.columns, batch.run_id,
                exact_floats=flavor.exact_floats, allows_nul=flavor.allows_nul,
            )
        except rows.UnstorableRecord as exc:
            rejected.append(RejectedRecord(rows.report_id(record), rows.report_text(str(exc))))
        else:
            pending.append((record, row))
    refused = flavor.write_rows(conn, target, pending, batch.run_id)
    result = BatchResult(
        run_id=batch.run_id,
        table_id=batch.table.table_id,
        batch_no=batch.batch_no,
        loaded=len(pending) - len(refused),
        rejected=tuple(rejected + refused),
    )
    catalog.settle_batch(conn, result)
    return result


@lru_cache(maxsize=32)
def upsert_for(flavor: Flavor, name: str, columns: tuple[Column, ...]) -> sa.Insert:
    """The upsert of one table layout, built once: a fresh statement per batch would miss
    SQLAlchemy's compiled cache every time and grow it with each batch."""
    table = ddl.data_table(flavor, name, columns)
    updated = [c.name for c in table.columns if c.name != naming.ID]
    return flavor.upsert(table, [naming.ID], updated)


def write_rows(
    conn: sa.Connection,
    flavor: Flavor,
    target: TableTarget,
    pending: list[tuple[Record, dict[str, Any]]],
    run_id: str,
) -> list[RejectedRecord]:
    """Upsert every row into ``target``; returns the rows the database refused, with why.

    The batch goes in one statement. If the database refuses a row, each row goes in its
    own savepoint, so only the refused ones are left out; a row too large for the database
    is tried once more with its fields packed into ``__unfit``. (The default of
    ``Warehouse.write_rows``; a warehouse with a faster bulk path overrides that.)
    """
    if not pending:
        return []
    upsert = upsert_for(flavor, target.write_to, target.columns)  # type: ignore[arg-type]  # warehouses hash by identity
    try:
        with conn.begin_nested():
            conn.execute(upsert, [row for _, row in pending])
        return []
    except sa.exc.DBAPIError as exc:
        if not flavor.refuses_row(exc):
            raise
    refused = []
    for record, row in pending:
        error = _try_row(conn, flavor, upsert, row)
        if error is not None and flavor.row_too_large(error):
            try:
                packed = rows.to_row(
                    record, target.columns, run_id,
                    exact_floats=flavor.exact_floats, allows_nul=flavor.allows_nul, packed=True,
                )
            except rows.UnstorableRecord:
                pass  # a value fits its column but not JSON: report the size error
            else:
                error = _try_row(conn, flavor, upsert, packed)
        if error is not None:
            refused.append(RejectedRecord(rows.report_id(record), _reason(error)))
    return refused


def _try_row(
    conn: sa.Connection, flavor: Flavor, upsert: sa.Insert, row: dict[str, Any]
) -> sa.exc.DBAPIError | None:
    """Upsert one row in a savepoint; the error if the database refused the row's data."""
    try:
        with conn.begin_nested():
            conn.execute(upsert, [row])
    except sa.exc.DBAPIError as exc:
        if not flavor.refuses_row(exc):
            raise
        return exc
    return None


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The database's own one-line reason, without the statement or its parameters."""
    message = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    return rows.report_text(f"{type(exc.orig).__name__}: {message}")
