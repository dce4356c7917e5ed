"""Replacing loads (staging, swap, abort) and mappings that stay stable across runs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.contracts import Batch, FieldSpec
from app.errors import WarehouseError
from app.warehouses.kinds import detect_schema
from tests.app.conftest import by_id, sync, table_schema
from tests.support.reflect import column_types, reflect, table_names

SCHEMA = table_schema(
    "Clients",
    FieldSpec("Name", "singleLineText", "fldName"),
    FieldSpec("Score", "number", "fldScore"),
)
OLD = [{"id": f"old{n}", "fields": {"Name": f"old {n}", "Score": n}} for n in range(5)]
NEW = [{"id": f"new{n}", "fields": {"Name": f"new {n}", "Score": n}} for n in range(3)]


def start_replace(warehouse, records, run_id="run-2", schema=SCHEMA):
    schema = detect_schema(schema, records)
    target = warehouse.prepare_table(schema, run_id=run_id, replace=True)
    for batch_no, record in enumerate(records):
        warehouse.load_batch(target, Batch(run_id, schema.table, batch_no, [record]))
    return target


def ids(warehouse, table=SCHEMA.table):
    return sorted(r["id"] for r in warehouse.read_records(table))


def catalog_tables(warehouse):
    columns = reflect(warehouse.engine, "_conveyor_columns", warehouse.schema)
    with warehouse.engine.connect() as conn:
        return {row[0] for row in conn.execute(sa.select(columns.c.sql_table).distinct())}


def test_replace_leaves_the_live_table_alone_until_finish(open_warehouse):
    warehouse, reader = open_warehouse(), open_warehouse()
    live = sync(warehouse, SCHEMA, OLD)
    target = start_replace(warehouse, NEW)
    assert target.name == live.name and target.staging and target.staging != live.name
    assert target.staging.startswith("_conveyor_stage_") and len(target.staging) <= 63
    assert ids(reader) == sorted(r["id"] for r in OLD)
    assert reader.list_tables() == [live.name]
    warehouse.finish_table(target)
    assert ids(reader) == sorted(r["id"] for r in NEW)
    assert by_id(list(reader.read_records(SCHEMA.table))) == by_id(NEW)
    with warehouse.engine.connect() as conn:
        tables = table_names(conn, warehouse.schema)
    assert not any(t.startswith(("_conveyor_stage_", "_conveyor_old_")) for t in tables)
    assert catalog_tables(warehouse) == {live.name}


def test_finish_is_idempotent_even_after_a_redelivered_prepare(warehouse):
    sync(warehouse, SCHEMA, OLD)
    target = start_replace(warehouse, NEW)
    warehouse.finish_table(target)
    warehouse.finish_table(target)
    # A late redelivery of the whole table's steps must not swap an empty table in.
    again = start_replace(warehouse, NEW)
    assert again.staging is None
    warehouse.finish_table(again)
    warehouse.finish_table(target)
    assert ids(warehouse) == sorted(r["id"] for r in NEW)


def test_prepare_twice_keeps_the_rows_already_in_staging(open_warehouse):
    warehouse = open_warehouse()
    sync(warehouse, SCHEMA, OLD)
    target = start_replace(warehouse, NEW[:2])
    redelivered = open_warehouse().prepare_table(
        detect_schema(SCHEMA, NEW), run_id="run-2", replace=True
    )
    assert redelivered == target
    warehouse.load_batch(redelivered, Batch("run-2", SCHEMA.table, 2, [NEW[2]]))
    warehouse.finish_table(redelivered)
    assert ids(warehouse) == sorted(r["id"] for r in NEW)


def test_abort_drops_staging_and_keeps_the_previous_table(warehouse):
    live = sync(warehouse, SCHEMA, OLD)
    target = start_replace(warehouse, NEW)
    warehouse.abort_table(target)
    warehouse.abort_table(target)
    assert ids(warehouse) == sorted(r["id"] for r in OLD)
    assert warehouse.list_tables() == [live.name]
    assert catalog_tables(warehouse) == {live.name}
    with pytest.raises(WarehouseError, match="missing"):
        warehouse.finish_table(target)
    with pytest.raises(WarehouseError, match="aborted"):
        warehouse.prepare_table(detect_schema(SCHEMA, NEW), run_id="run-2", replace=True)
    assert ids(warehouse) == sorted(r["id"] for r in OLD)


def test_replacing_a_table_that_does_not_exist_yet(warehouse):
    target = start_replace(warehouse, NEW, run_id="run-1")
    assert warehouse.row_count(SCHEMA.table) == 0
    assert warehouse.list_tables() == []
    warehouse.finish_table(target)
    assert ids(warehouse) == sorted(r["id"] for r in NEW)


def test_replace_with_no_records_empties_the_table(warehouse):
    sync(warehouse, SCHEMA, OLD)
    sync(warehouse, SCHEMA, [], run_id="run-2", replace=True)
    assert warehouse.row_count(SCHEMA.table) == 0


def test_a_renamed_field_keeps_its_column_and_a_new_field_gets_a_new_one(warehouse):
    first = sync(warehouse, SCHEMA, OLD)
    renamed = table_schema(
        "Clients",
        FieldSpec("Full Name", "singleLineText", "fldName"),
        FieldSpec("Score", "number", "fldScore"),
        FieldSpec("Name", "singleLineText", "fldNew"),
    )
    record = {"id": "old1", "fields": {"Full Name": "Ann", "Score": 9, "Name": "nick"}}
    second = sync(warehouse, renamed, [record], run_id="run-2")
    columns = {c.field_key: c.column for c in second.columns}
    assert columns["fldName"] == "name" == {c.field_key: c.column for c in first.columns}["fldName"]
    assert columns["fldNew"] == "name_2"
    assert by_id(list(warehouse.read_records(SCHEMA.table)))["old1"]["fields"] == record["fields"]
    mapping = {c.field_key: (c.field_name, c.column) for c in warehouse.columns_for(second.name)}
    assert mapping["fldName"] == ("Full Name", "name")
    # A replacing run reuses the same names.
    third = sync(warehouse, renamed, [record], run_id="run-3", replace=True)
    assert {c.field_key: c.column for c in third.columns} == columns


def test_a_retyped_field_keeps_its_column_which_takes_the_new_kind(warehouse):
    # Before issue 12 the column kept its old kind and the text went to __unfit.
    sync(warehouse, SCHEMA, OLD)
    retyped = table_schema(
        "Clients",
        FieldSpec("Name", "singleLineText", "fldName"),
        FieldSpec("Score", "singleLineText", "fldScore"),
    )
    record = {"id": "old0", "fields": {"Name": "x", "Score": "high"}}
    target = sync(warehouse, retyped, [record], run_id="run-2")
    assert {c.field_key: c.kind for c in target.columns}["fldScore"] == "text"
    columns = column_types(warehouse.engine, target.name, warehouse.schema)
    assert isinstance(columns["score"], sa.Text)
    back = by_id(list(warehouse.read_records(SCHEMA.table)))
    assert back["old0"]["fields"] == record["fields"]
    # Rows not loaded again were migrated: their numbers read back as they were sent.
    assert [back[f"old{n}"]["fields"]["Score"] for n in range(1, 5)] == [1, 2, 3, 4]
    # A replacing run builds a fresh table of the new kind too.
    replaced = sync(warehouse, retyped, [record], run_id="run-3", replace=True)
    assert {c.field_key: c.kind for c in replaced.columns}["fldScore"] == "text"
    assert by_id(list(warehouse.read_records(SCHEMA.table)))["old0"]["fields"] == record["fields"]


def test_a_new_field_is_added_to_an_existing_table(warehouse):
    sync(warehouse, SCHEMA, OLD)
    wider = table_schema("Clients", *SCHEMA.fields, FieldSpec("Since", "date", "fldSince"))
    target = sync(warehouse, wider, [{"id": "new", "fields": {"Since": "2020-01-01"}}], run_id="r2")
    assert target.columns[-1].column == "since"
    assert warehouse.row_count(SCHEMA.table) == 6
    assert by_id(list(warehouse.read_records(SCHEMA.table)))["old1"]["fields"] == OLD[1]["fields"]
