"""The DDL side of a load: prepare a table (or a staging table), swap it in, or drop it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.contracts import Column, FieldSpec, SyncCommit, TableRef, TableSchema, TableTarget
from app.errors import WarehouseError
from app.warehouses import ddl, kinds, naming, retype
from app.warehouses.catalog import Catalog, TableEntry
from app.warehouses.ddl import Flavor


def prepare(
    conn: sa.Connection,
    flavor: Flavor,
    catalog: Catalog,
    schema: TableSchema,
    *,
    run_id: str,
    replace: bool,
) -> TableTarget:
    """Create or extend the table ``schema`` loads into; see ``Warehouse.prepare_table``."""
    flavor.lock_catalog(conn)
    table = schema.table
    fields = _distinct_fields(schema.fields)
    entry = _claim_name(conn, flavor, catalog, table)
    live = entry.sql_name
    # After this run swapped its staging table in, a late redelivered prepare gets the live
    # table: an empty new staging table would be swapped over the loaded rows.
    if replace and entry.finished_run_id != run_id:
        stage = naming.staging_name(table.source, table.table_id, run_id)
        carry: list[Column] = []
        if ddl.table_exists(conn, flavor, stage):
            # A redelivered prepare: keep the staging table and the rows already in it.
            known = catalog.column_map(conn, stage)
        elif catalog.loaded_batches(conn, run_id, table.table_id, sql_table=stage):
            raise WarehouseError(
                f"table {table.name!r}: the staging table of run {run_id} was dropped"
                " (aborted); start a new run"
            )
        else:
            # A fresh table: fields keep their live column names, kinds follow the schema.
            known = catalog.column_map(conn, live)
            carry = _retired(conn, flavor, live, fields, known)
            catalog.retire_columns(conn, live, carry, {f.key for f in fields})
        columns = _sync(conn, flavor, catalog, stage, fields, known, carry=carry)
        return TableTarget(run_id=run_id, table=table, name=live, columns=columns, staging=stage)
    known = catalog.column_map(conn, live)
    columns = _sync(conn, flavor, catalog, live, fields, known, retire=True)
    return TableTarget(run_id=run_id, table=table, name=live, columns=columns)


def _retired(conn: sa.Connection, flavor: Flavor, live: str, fields: Sequence[FieldSpec],
             known: Sequence[Column]) -> list[Column]:
    """The live table's columns whose field the source no longer has (kept with their data)."""
    if not ddl.table_exists(conn, flavor, live):
        return []
    physical = ddl.column_names(conn, flavor, live)
    if naming.DELETED_AT not in physical:  # a table made before deletes were tracked
        ddl.add_columns(conn, ddl.data_table(flavor, live, ()), [naming.DELETED_AT])
    keys = {f.key for f in fields}
    return [c for c in known if c.field_key not in keys and c.column in physical]


def finish(conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget,
           commit: SyncCommit | None = None) -> int:
    """Swap a staging table in, mark or delete the rows deleted at the source, and store the
    table's sync state, all in the caller's transaction; see ``Warehouse.finish_table``.

    Returns:
        The rows found deleted at the source (0 when this run finished the table before).
    """
    flavor.lock_catalog(conn)
    entry = catalog.table_entry(conn, target.table)
    if entry is not None and entry.finished_run_id == target.run_id:
        return 0  # a redelivered finish: everything below was committed the first time
    deleted = 0
    if target.staging is not None and ddl.table_exists(conn, flavor, target.staging) \
            and ddl.table_exists(conn, flavor, target.name):
        deleted = _carry_over(conn, flavor, catalog, target,
                              deleted_rows=commit is not None and not commit.hard_deletes)
    if commit is not None:
        if target.staging is None:
            deleted = _apply_deletes(conn, flavor, catalog, target, commit)
        catalog.forget_seen(conn, target.run_id, target.table.table_id)
        if commit.cursor is not None:
            catalog.save_state(conn, commit.source, target.table.table_id, commit.cursor,
                               target.run_id)
    _swap(conn, flavor, catalog, target)
    return deleted


def _apply_deletes(conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget,
                   commit: SyncCommit) -> int:
    """Soft-delete (or delete) the rows of records deleted at the source: those a full
    listing did not see, and those the source named."""
    table = ddl.data_table(flavor, target.name, ())
    record_id, deleted_at = table.c[naming.ID], table.c[naming.DELETED_AT]
    gone: list[sa.ColumnElement[bool]] = []
    if commit.full_listing:
        seen = catalog.seen_clause(record_id, target.run_id, target.table.table_id)
        gone.append(~seen)
        # A record restored at the source (Airtable's trash) lives again.
        conn.execute(sa.update(table).where(deleted_at.is_not(None), seen)
                     .values({deleted_at: None}))
    if commit.deleted_ids:
        gone.append(record_id.in_(list(commit.deleted_ids)))
    if not gone:
        return 0
    which = sa.or_(*gone)
    if commit.hard_deletes:
        result = conn.execute(sa.delete(table).where(which))
    else:
        result = conn.execute(sa.update(table).where(deleted_at.is_(None), which)
                              .values({deleted_at: datetime.now(UTC)}))
    return max(int(result.rowcount or 0), 0)


def _carry_over(conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget,
                *, deleted_rows: bool) -> int:
    """Before a staging table replaces the live one: fill its retired columns from the live
    table and (``deleted_rows``) copy in the live rows the listing no longer has, with
    ``__deleted_at`` set; returns how many rows that newly marks deleted."""
    assert target.staging is not None
    staged_map = catalog.column_map(conn, target.staging)
    live_map = {c.column: c for c in catalog.column_map(conn, target.name)}
    physical = ddl.column_names(conn, flavor, target.name)
    current = {c.column for c in target.columns}
    same = [c for c in staged_map if c.column in physical and c.column in live_map
            and live_map[c.column].kind == c.kind]
    stage = ddl.data_table(flavor, target.staging, staged_map)
    live = ddl.data_table(flavor, target.name, same).alias("live")
    for column in (c for c in same if c.column not in current):
        value = (sa.select(live.c[column.column]).where(live.c[naming.ID] == stage.c[naming.ID])
                 .scalar_subquery())
        conn.execute(sa.update(stage).values({stage.c[column.column]: value}))
    if not deleted_rows:
        return 0
    missing = ~sa.exists().where(stage.c[naming.ID] == live.c[naming.ID])
    newly = sa.select(sa.func.count()).select_from(live).where(
        missing, live.c[naming.DELETED_AT].is_(None))
    count = int(conn.execute(newly).scalar_one())
    names = [naming.ID, naming.CREATED_TIME, naming.RUN_ID, naming.UNFIT, naming.DELETED_AT,
             *(c.column for c in same)]
    now = sa.literal(datetime.now(UTC), type_=live.c[naming.DELETED_AT].type)
    chosen: list[sa.ColumnElement[Any]] = [live.c[n] for n in names]
    chosen[4] = sa.func.coalesce(live.c[naming.DELETED_AT], now)
    conn.execute(stage.insert().from_select(names, sa.select(*chosen).where(missing)))
    return count


def _swap(conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget) -> None:
    if target.staging is None:
        catalog.touch_table(conn, target.table, finished_run_id=target.run_id)
        return
    if not ddl.table_exists(conn, flavor, target.staging):
        entry = catalog.table_entry(conn, target.table)
        if entry is not None and entry.finished_run_id == target.run_id:
            return
        raise WarehouseError(
            f"table {target.table.name!r}: staging table {target.staging} of run"
            f" {target.run_id} is missing (aborted?); start a new run"
        )
    if ddl.table_exists(conn, flavor, target.name):
        retired = naming.retired_name(target.table.source, target.table.table_id, target.run_id)
        ddl.rename_table(conn, flavor, target.name, retired)
        ddl.rename_table(conn, flavor, target.staging, target.name)
        ddl.drop_table(conn, flavor, retired)
    else:
        ddl.rename_table(conn, flavor, target.staging, target.name)
    catalog.move_columns(conn, target.staging, target.name)
    catalog.touch_table(conn, target.table, finished_run_id=target.run_id)


def abort(conn: sa.Connection, flavor: Flavor, catalog: Catalog, target: TableTarget) -> None:
    """Drop a staging table and its mapping; the live table is not touched."""
    if target.staging is None:
        return
    flavor.lock_catalog(conn)
    ddl.drop_table(conn, flavor, target.staging)
    catalog.drop_columns(conn, target.staging)


def _claim_name(
    conn: sa.Connection, flavor: Flavor, catalog: Catalog, table: TableRef
) -> TableEntry:
    """The table's catalog entry: the stored one, or a new name that collides with nothing."""
    entry = catalog.table_entry(conn, table)
    if entry is not None:
        if entry.table_name != table.name:
            catalog.touch_table(conn, table)
        return entry
    taken = [*catalog.sql_names(conn), *ddl.table_names(conn, flavor)]
    name = naming.table_name(table.source, table.name, taken)
    catalog.add_table(conn, table, name)
    return TableEntry(sql_name=name, table_name=table.name, finished_run_id=None)


def _sync(
    conn: sa.Connection,
    flavor: Flavor,
    catalog: Catalog,
    sql_table: str,
    fields: Sequence[FieldSpec],
    known: Sequence[Column],
    *,
    retire: bool = False,
    carry: Sequence[Column] = (),
) -> tuple[Column, ...]:
    """Map ``fields`` to columns of ``sql_table`` and make the table have them.

    A field in ``known`` (by key) keeps its column name; a new field gets a new name, unused
    by any known or physical column. A column takes its field's kind (a field without one
    gets its type's, ``text`` if unknown: there is no sample here). An existing column whose
    field's type now gives another kind is migrated (``retype.migrate``); a column whose
    kind was inferred from values (an untyped field, a formula of unknown result) keeps it,
    so a sample without values cannot flip it to ``text`` and back each run.
    """
    by_key = {col.field_key: col for col in known}
    exists = ddl.table_exists(conn, flavor, sql_table)
    physical = ddl.column_names(conn, flavor, sql_table) if exists else set()
    taken = {col.column for col in known} | physical
    columns: list[Column] = []
    changes: list[tuple[Column, Column]] = []
    for field in fields:
        kind = kinds.kind_for_field(field)
        old = by_key.get(field.key)
        if old is None:
            name = naming.column_name(field.name, taken)
            taken.add(name)
        else:
            name = old.column
        column = Column(field.key, field.name, name, kind, source_type=field.type)
        if old is not None and old.column in physical and old.kind != kind:
            if kinds.kind_for_type(field.type, field.result_type) is None:
                column = dataclasses.replace(column, kind=old.kind)
            else:
                changes.append((old, column))
        columns.append(column)
    table = ddl.data_table(flavor, sql_table, columns)
    if exists:
        # Tables made before deletes were tracked get the column first (NULL: all live).
        system = [naming.DELETED_AT] if naming.DELETED_AT not in physical else []
        ddl.add_columns(conn, table, [*system, *(c.column for c in columns if c.column not in physical)])
        # Columns of fields the source no longer has are still there, with their values.
        current = {c.column for c in columns}
        layout = [*columns, *(c for c in known if c.column in physical and c.column not in current)]
        retype.migrate(conn, flavor, sql_table, changes, layout)
        # ... and are marked retired in the catalog (un-marked if their field comes back).
        if retire:
            catalog.retire_columns(conn, sql_table, [c for c in known if c.column in physical],
                                   {c.field_key for c in columns})
    else:
        # A fresh staging table keeps the live table's retired columns (filled at the swap).
        ddl.data_table(flavor, sql_table, [*columns, *carry]).create(conn)
    catalog.save_columns(conn, sql_table, [*columns, *carry])
    return tuple(columns)


def _distinct_fields(fields: Sequence[FieldSpec]) -> list[FieldSpec]:
    """The fields with one per key, the first one winning (a key maps to exactly one column)."""
    seen: set[str] = set()
    distinct = []
    for field in fields:
        if field.key not in seen:
            seen.add(field.key)
            distinct.append(field)
    return distinct
