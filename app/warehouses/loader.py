"""Loading one batch: an idempotent upsert that sets aside the records the database refuses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as dataclasses_replace
from functools import lru_cache
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa

from app.contracts import Batch, BatchResult, Column, Record, RejectedRecord, TableTarget
from app.errors import WarehouseError
from app.warehouses import codec, ddl, naming, rows
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
    if batch.seen:
        ids = [r["id"] for r in batch.records if isinstance(r, dict) and isinstance(r.get("id"), str)]
        catalog.add_seen(conn, batch.run_id, batch.table.table_id, ids)
    if batch.fields is not None:
        result = _load_fields(conn, flavor, target, batch)
        catalog.settle_batch(conn, result)
        return result
    kept, superseded = rows.split_superseded(batch.records)
    rejected = [RejectedRecord(rows.report_id(r), SUPERSEDED) for r in superseded]
    pending: list[tuple[Record, dict[str, Any]]] = []
    make_row = rows.RowMaker(target.columns, batch.run_id, exact_floats=flavor.exact_floats,
                             allows_nul=flavor.allows_nul, json_text=flavor.binds_json_text)
    for record in kept:
        try:
            row = make_row(record)
        except rows.UnstorableRecord as exc:
            rejected.append(RejectedRecord(rows.report_id(record), rows.report_text(str(exc))))
        else:
            pending.append((record, row))
    existing = _existing_ids(conn, flavor, target, [row[naming.ID] for _, row in pending])
    refused = flavor.write_rows(conn, target, pending, batch.run_id)
    refused_ids = {r.record_id for r in refused}
    created = sum(1 for _, row in pending
                  if row[naming.ID] not in existing and row[naming.ID] not in refused_ids)
    result = BatchResult(
        run_id=batch.run_id,
        table_id=batch.table.table_id,
        batch_no=batch.batch_no,
        loaded=len(pending) - len(refused),
        rejected=tuple(rejected + refused),
        created=created,
    )
    catalog.settle_batch(conn, result)
    return result


def _existing_ids(conn: sa.Connection, flavor: Flavor, target: TableTarget,
                  ids: list[str]) -> set[str]:
    """Which of ``ids`` the table already has (to tell created records from updated ones)."""
    if not ids:
        return set()
    table = _id_table(flavor, target.write_to)  # type: ignore[arg-type]  # warehouses hash by identity
    query = sa.select(table.c[naming.ID]).where(_is_one_of(table.c[naming.ID]))
    return set(conn.execute(query, {_IDS: ids}).scalars())


def _load_fields(conn: sa.Connection, flavor: Flavor, target: TableTarget, batch: Batch) -> BatchResult:
    """A batch of some fields only (``Batch.fields``): update those columns of the rows that
    exist, storing each value as a whole record's would be (``rows.cell``), and replace what
    ``__unfit`` kept of those fields; ``()`` (ids only) writes nothing. A record the table
    lacks is left for the listing that gives all of its fields."""
    wanted = set(batch.fields or ())
    columns = [c for c in target.columns if c.field_name in wanted]
    result = BatchResult(run_id=batch.run_id, table_id=batch.table.table_id,
                         batch_no=batch.batch_no, loaded=0)
    if not columns:
        return result
    table = ddl.data_table(flavor, target.write_to, columns)
    records = [r for r in batch.records if isinstance(r, dict) and isinstance(r.get("id"), str)]
    kept_before = _unfit_of(conn, table, [r["id"] for r in records])
    params = []
    for record in records:
        if record["id"] not in kept_before:
            continue
        fields = record.get("fields") or {}
        unfit = {k: v for k, v in (kept_before[record["id"]] or {}).items() if k not in wanted}
        values: dict[str, Any] = {"__b_id": record["id"]}
        for number, col in enumerate(columns):
            value = fields.get(col.field_name)
            values[f"__b_{number}"], keep = rows.cell(col, value, exact_floats=flavor.exact_floats)
            if keep:
                unfit[col.field_name] = value
        values["__b_unfit"] = unfit or None
        params.append(values)
    if params:
        assigned: dict[Any, Any] = {table.c[col.column]: sa.bindparam(f"__b_{number}")
                    for number, col in enumerate(columns)}
        assigned[table.c[naming.UNFIT]] = sa.bindparam("__b_unfit")
        stmt = (sa.update(table).where(table.c[naming.ID] == sa.bindparam("__b_id"))
                .values(assigned))
        conn.execute(stmt, params)
    # Counted as before: every record the batch gave (a missing row is not a rejection).
    return dataclasses_replace(result, loaded=len(records))


def _unfit_of(conn: sa.Connection, table: sa.Table, ids: list[str]) -> dict[str, Any]:
    """``__unfit`` of each row of ``ids`` the table has (a missing row is not a key)."""
    if not ids:
        return {}
    query = sa.select(table.c[naming.ID], table.c[naming.UNFIT]).where(_is_one_of(table.c[naming.ID]))
    return {row_id: kept for row_id, kept in conn.execute(query, {_IDS: ids})}


_IDS = "__ids"


def _is_one_of(column: sa.Column[Any]) -> sa.ColumnElement[bool]:
    """``column IN (the execution's ids)``: the ids are given when the statement runs, not
    built into it; a statement built with its values forms a reference cycle that kept each
    batch's ids alive until a full collection (a load worker grew by 13 MiB over 2,000
    batches with the collector's threshold raised)."""
    return column.in_(sa.bindparam(_IDS, expanding=True))


@lru_cache(maxsize=32)
def _id_table(flavor: Flavor, name: str) -> sa.Table:
    """The table of ``name`` for its id lookup, built once: SQLAlchemy caches a compiled
    statement per ``sa.Table`` object, so a fresh one per batch added an entry per batch to
    the engine's cache (up to 500 statements held in every load worker)."""
    return ddl.data_table(flavor, name, ())


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
            _execute_many(conn, upsert, [row for _, row in pending])
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


@dataclass(frozen=True)
class _DriverUpsert:
    """An upsert compiled once for the driver: its SQL, the row key of each of its parameters
    in order, and SQLAlchemy's bind processor of each parameter that has one (by position),
    with whether it gives None back as it is, and a ``codec.JSONText`` (so those are not
    passed to it)."""

    sql: str
    keys: tuple[str, ...]
    processed: tuple[tuple[int, Callable[[Any], Any], bool, bool], ...]


def _execute_many(conn: sa.Connection, upsert: sa.Insert, rows: list[dict[str, Any]]) -> None:
    """``conn.execute(upsert, rows)`` as the driver's executemany of parameter lists.

    SQLAlchemy checks and processes every row's parameters one by one (a third of a load's
    time); the statement is compiled once instead, and each value goes through the same bind
    processor SQLAlchemy would apply (unless the processor is known to give it back as it
    is), so the database receives the same values. Rows that do not all have the statement's
    keys, or a value a processor refuses, go SQLAlchemy's way, so what is raised stays what
    it was.
    """
    driver = _driver_upsert(conn.dialect, upsert) if conn.dialect.positional else None
    keys = set(rows[0]) if rows else set()
    if driver is None or keys != set(driver.keys) or any(row.keys() != keys for row in rows):
        conn.execute(upsert, rows)
        return
    pick, text = itemgetter(*driver.keys), codec.JSONText
    params = []
    try:
        for row in rows:
            values = list(pick(row))
            for at, process, keeps_none, keeps_text in driver.processed:
                value = values[at]
                if value is None:
                    if not keeps_none:
                        values[at] = process(value)
                elif not keeps_text or type(value) is not text:
                    values[at] = process(value)
            params.append(tuple(values))
    except Exception:  # noqa: BLE001 (SQLAlchemy's own path raises it as SQLAlchemy does)
        conn.execute(upsert, rows)
        return
    conn.exec_driver_sql(driver.sql, params)


_DRIVER_UPSERTS: WeakKeyDictionary[sa.Insert, _DriverUpsert | None] = WeakKeyDictionary()


def _driver_upsert(dialect: sa.Dialect, upsert: sa.Insert) -> _DriverUpsert | None:
    """``upsert`` compiled for ``dialect``'s driver, once per statement (``upsert_for``
    builds one per table layout); None when its parameters are not plain column values."""
    if upsert in _DRIVER_UPSERTS:
        return _DRIVER_UPSERTS[upsert]
    table = upsert.table
    assert isinstance(table, sa.Table)
    compiled = upsert.compile(dialect=dialect, column_keys=[c.key for c in table.columns])
    names = tuple(compiled.positiontup or ())
    driver: _DriverUpsert | None = None
    if len(names) == len(table.columns) and set(names) == {c.key for c in table.columns}:
        processed = []
        for at, name in enumerate(names):
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processed.append((at, process, _gives_back(process, None),
                                  _gives_back(process, codec.JSONText("null"))))
        driver = _DriverUpsert(compiled.string, names, tuple(processed))
    _DRIVER_UPSERTS[upsert] = driver
    return driver


def _gives_back(process: Callable[[Any], Any], value: Any) -> bool:
    """Whether the bind processor ``process`` gives ``value`` back as it is."""
    try:
        return process(value) is value
    except Exception:  # noqa: BLE001 (a processor that refuses it: it must see such values)
        return False


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
