"""Retypes between two upserting runs: the column takes the new type, no value is lost."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.contracts import FieldSpec
from app.errors import WarehouseError
from app.warehouses import PostgresWarehouse, naming, retype
from tests.app.conftest import by_id, sync, table_schema
from tests.support.compare import differences
from tests.support.reflect import column_types as reflected_types
from tests.support.reflect import reflect, table_names


def schema(amount_type, label_type="singleLineText", *, extra=()):
    return table_schema(
        "Retyped",
        FieldSpec("Name", "singleLineText", "fldName"),
        FieldSpec("Amount", amount_type, "fldAmount"),
        FieldSpec("Label", label_type, "fldLabel"),
        *extra,
    )


def column_types(warehouse, name):
    return reflected_types(warehouse.engine, name, warehouse.schema)


def stored(warehouse, name):
    table = reflect(warehouse.engine, name, warehouse.schema)
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return {row[naming.ID]: dict(row) for row in rows}


NUMBERS = [
    {"id": "r0", "fields": {"Name": "a", "Amount": 1.25, "Label": "x"}},
    {"id": "r1", "fields": {"Name": "b", "Amount": 3, "Label": "true"}},
    {"id": "r2", "fields": {"Name": "c", "Amount": 0.1 + 0.2}},
    {"id": "r3", "fields": {"Name": "d"}},
    {"id": "r4", "fields": {"Name": "e", "Amount": 1e16, "Label": "false"}},
]


def test_number_to_text_keeps_every_value_and_gives_the_column_the_text_type(warehouse):
    first = sync(warehouse, schema("number"), NUMBERS)
    assert isinstance(column_types(warehouse, first.name)["amount"], sa.Float)
    # The second run sees the retyped field but loads no record: only the migration acts.
    second = sync(warehouse, schema("singleLineText", "checkbox"), [], run_id="run-2")
    assert second.name == first.name
    assert isinstance(column_types(warehouse, first.name)["amount"], sa.Text)
    assert isinstance(column_types(warehouse, first.name)["label"], sa.Boolean)
    assert [c.kind for c in warehouse.columns_for(first.name)] == ["text", "text", "boolean"]
    rows = stored(warehouse, first.name)
    assert {i: r["amount"] for i, r in rows.items()} == {
        "r0": "1.25", "r1": "3", "r2": "0.30000000000000004", "r3": None, "r4": "1e+16",
    }  # fmt: skip
    # "true"/"false" became booleans; "x" cannot, and an absent checkbox is unticked.
    assert {i: r["label"] for i, r in rows.items()} == {
        "r0": None, "r1": True, "r2": False, "r3": False, "r4": False,
    }  # fmt: skip
    assert rows["r0"][naming.UNFIT] == {"Amount": 1.25, "Label": "x"}
    assert rows["r3"][naming.UNFIT] is None
    # Reading the records gives back exactly what was sent: the originals were kept.
    assert differences(NUMBERS, list(warehouse.read_records(first.table))) == []


TEXTS = [
    {"id": "t0", "fields": {"Name": "a", "Amount": "42"}},
    {"id": "t1", "fields": {"Name": "b", "Amount": "042.50"}},
    {"id": "t2", "fields": {"Name": "c", "Amount": "about 7"}},
    {"id": "t3", "fields": {"Name": "d", "Amount": "9007199254740993"}},
    {"id": "t4", "fields": {"Name": "e", "Amount": "-1e-3"}},
]


def test_text_to_number_and_back_loses_nothing(warehouse):
    first = sync(warehouse, schema("singleLineText"), TEXTS)
    sync(warehouse, schema("number"), [], run_id="run-2")
    assert isinstance(column_types(warehouse, first.name)["amount"], sa.Float)
    rows = stored(warehouse, first.name)
    assert {i: r["amount"] for i, r in rows.items()} == {
        "t0": 42.0, "t1": 42.5, "t2": None, "t3": None, "t4": -0.001,
    }  # fmt: skip
    assert {i: (r[naming.UNFIT] or {}).get("Amount") for i, r in rows.items()} == {
        "t0": "42", "t1": "042.50", "t2": "about 7", "t3": "9007199254740993", "t4": "-1e-3",
    }  # fmt: skip
    assert differences(TEXTS, list(warehouse.read_records(first.table))) == []
    # Back to text: every original string, leading zero and all, returns to the column.
    sync(warehouse, schema("singleLineText"), [], run_id="run-3")
    rows = stored(warehouse, first.name)
    assert {i: r["amount"] for i, r in rows.items()} == {r["id"]: r["fields"]["Amount"] for r in TEXTS}
    assert all(r[naming.UNFIT] is None for r in rows.values())


def test_new_values_load_into_the_migrated_column(warehouse):
    sync(warehouse, schema("number"), NUMBERS)
    fresh = [{"id": "r0", "fields": {"Name": "a", "Amount": "1.25"}}, {"id": "n1", "fields": {"Amount": "7"}}]
    target = sync(warehouse, schema("singleLineText"), fresh, run_id="run-2")
    rows = stored(warehouse, target.name)
    assert rows["r0"]["amount"] == "1.25" and rows["r0"][naming.UNFIT] is None
    assert rows["n1"]["amount"] == "7" and rows["r1"]["amount"] == "3"
    back = by_id(list(warehouse.read_records(target.table)))
    assert back["r1"]["fields"]["Amount"] == 3  # not loaded again: the kept original


def test_json_date_and_timestamp_columns_retype(warehouse):
    before = table_schema(
        "Shapes",
        FieldSpec("Tags", "multipleSelects", "fldTags"),
        FieldSpec("Due", "date", "fldDue"),
        FieldSpec("Seen", "dateTime", "fldSeen"),
    )
    after = table_schema(
        "Shapes",
        FieldSpec("Tags", "singleLineText", "fldTags"),
        FieldSpec("Due", "dateTime", "fldDue"),
        FieldSpec("Seen", "date", "fldSeen"),
    )
    records = [
        {"id": "a", "fields": {"Tags": ["x", "y"], "Due": "2024-02-29", "Seen": "2024-03-01T00:00:00.000Z"}},
        {"id": "b", "fields": {"Tags": ["z"], "Seen": "2024-03-01T10:20:30.000Z"}},
    ]
    first = sync(warehouse, before, records)
    sync(warehouse, after, [], run_id="run-2")
    rows = stored(warehouse, first.name)
    assert rows["a"]["tags"] is None and rows["a"]["due"].isoformat().startswith("2024-02-29T00:00:00")
    assert rows["a"]["seen"].isoformat() == "2024-03-01" and rows["b"]["seen"] is None
    # A list is no scalar: it waits in __unfit; converted dates and times keep their original.
    assert rows["a"][naming.UNFIT] == {
        "Tags": ["x", "y"], "Due": "2024-02-29", "Seen": "2024-03-01T00:00:00.000Z",
    }  # fmt: skip
    assert rows["b"][naming.UNFIT] == {"Tags": ["z"], "Seen": "2024-03-01T10:20:30.000Z"}
    assert differences(records, list(warehouse.read_records(first.table))) == []


def test_a_failed_migration_leaves_the_table_as_it_was(warehouse, monkeypatch):
    first = sync(warehouse, schema("number"), NUMBERS)
    before = stored(warehouse, first.name)

    def broken(*args, **kwargs):
        raise sa.exc.DataError("UPDATE", {}, Exception("simulated failure half way"))

    monkeypatch.setattr(retype, "_replaced", broken)
    with pytest.raises(WarehouseError):
        sync(warehouse, schema("singleLineText"), [], run_id="run-2")
    monkeypatch.undo()
    assert isinstance(column_types(warehouse, first.name)["amount"], sa.Float)
    assert stored(warehouse, first.name) == before
    assert [c.kind for c in warehouse.columns_for(first.name)] == ["text", "number", "text"]
    assert not any(t.startswith("_conveyor_retype") or t.startswith("_conveyor_rebuild")
                   for t in table_names(warehouse.engine, warehouse.schema))


def test_many_rows_and_a_column_the_source_dropped_survive(warehouse):
    gone = FieldSpec("Gone", "number", "fldGone")
    records = [
        {"id": f"r{i:05d}", "fields": {"Name": f"n{i}", "Amount": i / 4, "Gone": i}} for i in range(2500)
    ]
    first = sync(warehouse, schema("number", extra=(gone,)), records, batch_size=500)
    # "Gone" was deleted from the source: its column stays, with its values.
    sync(warehouse, schema("singleLineText"), [], run_id="run-2")
    rows = stored(warehouse, first.name)
    assert len(rows) == 2500
    assert rows["r00003"]["amount"] == "0.75" and rows["r00004"]["amount"] == "1"
    assert rows["r02499"]["gone"] == 2499
    assert differences(records, list(warehouse.read_records(first.table))) == []


def test_an_inferred_kind_does_not_retype_its_column(warehouse):
    untyped = table_schema("Untyped", FieldSpec("Count", None, "fldCount"))
    first = sync(warehouse, untyped, [{"id": "a", "fields": {"Count": 1}}])
    # A sample with no value infers text; the column stays an integer column.
    second = sync(warehouse, untyped, [{"id": "b", "fields": {}}], run_id="run-2")
    assert [c.kind for c in second.columns] == ["integer"]
    assert isinstance(column_types(warehouse, first.name)["count"], sa.BigInteger)


def test_a_column_added_by_hand_survives_or_stops_the_retype_with_a_reason(warehouse):
    first = sync(warehouse, schema("number"), NUMBERS)
    table = reflect(warehouse.engine, first.name, warehouse.schema)
    with warehouse.engine.begin() as conn:
        target = conn.dialect.identifier_preparer.format_table(table)
        conn.exec_driver_sql(f"ALTER TABLE {target} ADD COLUMN my_note TEXT")
        conn.exec_driver_sql(f"UPDATE {target} SET my_note = 'mine'")
    if isinstance(warehouse, PostgresWarehouse):  # ALTER … TYPE in place: nothing is dropped
        sync(warehouse, schema("singleLineText"), [], run_id="run-2")
        assert {r["my_note"] for r in stored(warehouse, first.name).values()} == {"mine"}
        return
    # A rebuild would drop the column: the run stops with a reason, the table unchanged.
    with pytest.raises(WarehouseError, match="my_note"):
        sync(warehouse, schema("singleLineText"), [], run_id="run-2")
    assert isinstance(column_types(warehouse, first.name)["amount"], sa.Float)
    assert {r["my_note"] for r in stored(warehouse, first.name).values()} == {"mine"}
