"""Loading batches: every kind round-trips, misfits are kept, upserts and replays are exact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from app.contracts import Batch, FieldSpec, TableRef
from app.errors import WarehouseError
from app.warehouses import PostgresWarehouse, naming
from app.warehouses.kinds import detect_schema
from tests.app.conftest import by_id, sync, table_schema
from tests.support.reflect import reflect

TYPED = table_schema(
    "Everything",
    FieldSpec("Name", "singleLineText", "fld1"),
    FieldSpec("Notes", "multilineText", "fld2"),
    FieldSpec("Amount", "currency", "fld3"),
    FieldSpec("Seq", "autoNumber", "fld4"),
    FieldSpec("Done", "checkbox", "fld5"),
    FieldSpec("Due", "date", "fld6"),
    FieldSpec("Seen", "dateTime", "fld7"),
    FieldSpec("Files", "multipleAttachments", "fld8"),
    FieldSpec("Tags", "multipleSelects", "fld9"),
    FieldSpec("Owner", "singleCollaborator", "fld10"),
    FieldSpec("Calc", "formula", "fld11", result_type="number"),
)
SOURCE = [
    {
        "id": "rec1",
        "createdTime": "2024-03-01T10:20:30.000Z",
        "fields": {
            "Name": "Zoë ☃ 日本",
            "Notes": "line 1\nline 2 'quoted' \"double\"",
            "Amount": 1234.5,
            "Seq": 1,
            "Done": True,
            "Due": "2024-02-29",
            "Seen": "2024-03-01T10:20:30.000Z",
            "Files": [{"id": "att1", "url": "https://x/y.png", "thumbnails": {"small": {"w": 1}}}],
            "Tags": ["ünïcode", "b"],
            "Owner": {"id": "usr1", "email": "a@b.c", "name": "Ann"},
            "Calc": -0.25,
        },
    },
    {"id": "rec2", "createdTime": "2024-03-02T00:00:00.000Z", "fields": {"Name": "only a name"}},
    {"id": "rec3", "fields": {"Seq": 3, "Seen": "1999-12-31T23:59:59.999Z", "Done": True}},
]
EXPECTED_REC1 = {
    "Name": "Zoë ☃ 日本",
    "Notes": "line 1\nline 2 'quoted' \"double\"",
    "Amount": 1234.5,
    "Seq": 1,
    "Done": True,
    "Due": date(2024, 2, 29),
    "Seen": datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC),
    "Files": SOURCE[0]["fields"]["Files"],
    "Tags": ["ünïcode", "b"],
    "Owner": {"id": "usr1", "email": "a@b.c", "name": "Ann"},
    "Calc": -0.25,
}


def raw_rows(warehouse, sql_table):
    table = reflect(warehouse.engine, sql_table, warehouse.schema)
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c[naming.ID])).mappings().all()
    return [dict(row) for row in rows]


def test_every_kind_round_trips(warehouse):
    target = sync(warehouse, TYPED, SOURCE)
    records = by_id(list(warehouse.read_records(TYPED.table)))
    assert records["rec1"] == {
        "id": "rec1",
        "createdTime": "2024-03-01T10:20:30.000Z",
        "fields": EXPECTED_REC1,
    }
    assert isinstance(records["rec1"]["fields"]["Seen"], datetime)
    assert records["rec1"]["fields"]["Seen"].tzinfo is not None
    assert records["rec2"] == SOURCE[1]
    assert records["rec3"]["fields"]["Seen"] == datetime(
        1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC
    )
    assert "createdTime" not in records["rec3"]
    assert [c.kind for c in target.columns] == [
        "text", "text", "number", "integer", "boolean", "date", "timestamp",
        "json", "json", "json", "number",
    ]  # fmt: skip
    assert warehouse.row_count(TYPED.table) == 3


def test_untyped_fields_are_inferred_and_round_trip(warehouse):
    schema = table_schema("Untyped")
    records = [
        {"id": "a", "fields": {"n": 1, "x": 1.5, "b": True, "d": "2024-01-01", "j": {"k": [1]}}},
        {"id": "b", "fields": {"n": 2, "x": 2, "b": False, "d": "2024-01-02", "s": "é"}},
    ]
    target = sync(warehouse, schema, records)
    assert {c.field_name: c.kind for c in target.columns} == {
        "n": "integer", "x": "number", "b": "boolean", "d": "date", "j": "json", "s": "text",
    }  # fmt: skip
    back = by_id(list(warehouse.read_records(schema.table)))
    assert back["a"]["fields"] == {**records[0]["fields"], "d": date(2024, 1, 1)}
    # b is not a checkbox: a real False is kept, not dropped like an unticked checkbox
    assert back["b"]["fields"] == {**records[1]["fields"], "d": date(2024, 1, 2)}


def test_misfits_and_unknown_fields_are_kept_whole_in_unfit(warehouse):
    records = [
        {
            "id": "bad",
            "fields": {
                "Amount": {"error": "#ERROR!"},
                "Seq": "three",
                "Name": ["not", "text"],
                "Due": "next week",
                "Seen": {"specialValue": "NaN"},
                "Calc": "12",
                "Surprise": {"nested": ["ö", 1]},
            },
        },
        {"id": "good", "fields": {"Amount": 1.0, "Name": "ok"}},
    ]
    # Prepared without a sample, as a table whose schema predates "Surprise".
    target = warehouse.prepare_table(detect_schema(TYPED, []), run_id="run-1", replace=False)
    result = warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, records))
    assert (result.loaded, result.rejected) == (2, ())
    back = by_id(list(warehouse.read_records(TYPED.table)))
    assert back["bad"]["fields"] == records[0]["fields"]
    assert back["good"]["fields"] == {"Amount": 1.0, "Name": "ok"}
    bad = next(r for r in raw_rows(warehouse, target.name) if r[naming.ID] == "bad")
    assert bad["amount"] is None and bad["seq"] is None and bad["name"] is None
    assert bad[naming.UNFIT] == records[0]["fields"]


def test_an_absent_checkbox_is_stored_false_and_read_back_absent(warehouse):
    target = sync(warehouse, TYPED, SOURCE)
    done = {r[naming.ID]: r["done"] for r in raw_rows(warehouse, target.name)}
    assert done == {"rec1": True, "rec2": False, "rec3": True}
    assert "Done" not in by_id(list(warehouse.read_records(TYPED.table)))["rec2"]["fields"]


def test_upserting_twice_gives_the_same_table(warehouse):
    target = sync(warehouse, TYPED, SOURCE)
    first = raw_rows(warehouse, target.name)
    sync(warehouse, TYPED, SOURCE, run_id="run-2")
    second = raw_rows(warehouse, target.name)
    assert [r[naming.RUN_ID] for r in second] == ["run-2"] * 3
    assert [{**r, naming.RUN_ID: None} for r in second] == [
        {**r, naming.RUN_ID: None} for r in first
    ]
    changed = [{"id": "rec2", "fields": {"Name": "renamed", "Amount": 2.0}}]
    sync(warehouse, TYPED, changed, run_id="run-3")
    after = {r[naming.ID]: r for r in raw_rows(warehouse, target.name)}
    assert after["rec2"]["name"] == "renamed" and after["rec2"]["amount"] == 2.0
    assert after["rec2"][naming.CREATED_TIME] is None  # the upsert mirrors the record as sent
    assert after["rec2"][naming.RUN_ID] == "run-3"
    assert after["rec1"] == first[0] | {naming.RUN_ID: "run-2"}
    assert warehouse.row_count(TYPED.table) == 3


def test_a_replayed_batch_changes_nothing(open_warehouse):
    warehouse = open_warehouse()
    schema = detect_schema(TYPED, SOURCE)
    target = warehouse.prepare_table(schema, run_id="run-1", replace=False)
    first = warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, SOURCE))
    assert (first.loaded, first.replayed) == (3, False)
    before = raw_rows(warehouse, target.name)
    # A redelivery, even in another process and with different content, is a no-op.
    other = open_warehouse()
    altered = [{"id": "rec1", "fields": {"Name": "changed"}}, {"id": "rec9", "fields": {}}]
    again = other.load_batch(target, Batch("run-1", TYPED.table, 0, altered))
    assert again.replayed is True
    assert (again.loaded, again.rejected) == (first.loaded, first.rejected)
    assert raw_rows(warehouse, target.name) == before
    assert warehouse.loaded_batches("run-1", TYPED.table.table_id) == {0: 3}


def test_duplicate_ids_in_one_batch_last_one_wins_and_the_earlier_is_reported(warehouse):
    records = [
        {"id": "dup", "fields": {"Name": "first"}},
        {"id": "other", "fields": {"Name": "x"}},
        {"id": "dup", "fields": {"Name": "last"}},
    ]
    target = warehouse.prepare_table(detect_schema(TYPED, []), run_id="run-1", replace=False)
    result = warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, records))
    assert result.loaded == 2
    assert [(r.record_id, r.reason.split(":")[0]) for r in result.rejected] == [("dup", "superseded")]
    assert result.loaded + len(result.rejected) == len(records)
    back = by_id(list(warehouse.read_records(TYPED.table)))
    assert back["dup"]["fields"] == {"Name": "last"}
    assert len(back) == 2


def test_a_record_the_database_refuses_is_rejected_by_id_and_the_rest_lands(warehouse):
    schema = detect_schema(TYPED, SOURCE)
    target = warehouse.prepare_table(schema, run_id="run-1", replace=False)
    records = [
        {"id": "nul-text", "fields": {"Name": "a\x00b"}},
        {"id": "fine", "fields": {"Name": "fine"}},
        {"id": "nul-json", "fields": {"Tags": ["x\x00"]}},
        {"id": "surrogate", "fields": {"Name": "\ud800"}},
        {"id": "", "fields": {"Name": "no id"}},
    ]
    result = warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, records))
    rejected = {r.record_id: r.reason for r in result.rejected}
    assert "surrogate" in rejected and "unicode" in rejected["surrogate"]
    assert "" in rejected and "id" in rejected[""]
    if isinstance(warehouse, PostgresWarehouse):
        assert set(rejected) == {"nul-text", "nul-json", "surrogate", ""}
        assert "NUL" in rejected["nul-text"]
        expected = {"fine"}
    else:  # SQLite stores NUL characters
        assert set(rejected) == {"surrogate", ""}
        expected = {"fine", "nul-text", "nul-json"}
    assert all("\n" not in reason for reason in rejected.values())
    assert result.loaded == len(expected)
    assert {r["id"] for r in warehouse.read_records(TYPED.table)} == expected
    replay = warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, records))
    assert replay.replayed and replay.rejected == result.rejected


def test_an_empty_batch_is_recorded(warehouse):
    target = sync(warehouse, TYPED, [])
    assert warehouse.loaded_batches("run-1", TYPED.table.table_id) == {0: 0}
    assert warehouse.row_count(TYPED.table) == 0
    assert warehouse.list_tables() == [target.name]


def test_a_batch_for_another_table_is_refused(warehouse):
    target = warehouse.prepare_table(detect_schema(TYPED, []), run_id="run-1", replace=False)
    other = TableRef("airtable", "tblOther", "Other")
    with pytest.raises(WarehouseError, match="does not belong"):
        warehouse.load_batch(target, Batch("run-1", other, 0, []))


def test_loading_into_a_vanished_table_is_a_terminal_error(warehouse):
    target = warehouse.prepare_table(detect_schema(TYPED, []), run_id="run-1", replace=False)
    with warehouse.engine.begin() as conn:
        sa.Table(target.name, sa.MetaData(schema=warehouse.schema)).drop(conn)
    with pytest.raises(WarehouseError) as caught:
        warehouse.load_batch(target, Batch("run-1", TYPED.table, 0, SOURCE))
    assert type(caught.value) is WarehouseError
    assert warehouse.loaded_batches("run-1", TYPED.table.table_id) == {}


def test_concurrent_writers_each_in_their_own_connection_pool(open_warehouse):
    """Like loader processes: same-named tables prepared at once still get distinct names."""
    names = ["orders", "Orders", "ORDERS", "orders "]
    warehouses = [open_warehouse() for _ in names]
    warehouses[0].check()

    def load(index: int) -> str:
        schema = table_schema(names[index], FieldSpec("N", "number", "f1"), table_id=f"t{index}")
        target = warehouses[index].prepare_table(
            detect_schema(schema, []), run_id="run", replace=index % 2 == 1
        )
        for batch_no in range(5):
            records = [{"id": f"r{batch_no}-{n}", "fields": {"N": n}} for n in range(20)]
            batch = Batch("run", schema.table, batch_no, records)
            assert warehouses[index].load_batch(target, batch).loaded == 20
        warehouses[index].finish_table(target)
        return target.name

    with ThreadPoolExecutor(len(names)) as pool:
        tables = list(pool.map(load, range(len(names))))
    assert sorted(tables) == ["airtable__orders", *(f"airtable__orders_{n}" for n in (2, 3, 4))]
    for index, name in enumerate(names):
        assert warehouses[0].row_count(TableRef("airtable", f"t{index}", name)) == 100


def test_timestamps_with_an_offset_are_stored_as_the_same_instant(warehouse):
    schema = table_schema("Times", FieldSpec("At", "dateTime", "f1"))
    noon_in_paris = "2024-06-01T12:00:00+02:00"
    records = [
        {"id": "a", "createdTime": noon_in_paris, "fields": {"At": noon_in_paris}},
        {"id": "b", "fields": {"At": "2024-06-01T10:00:00.123456Z"}},
    ]
    sync(warehouse, schema, records)
    back = by_id(list(warehouse.read_records(schema.table)))
    assert back["a"]["fields"]["At"] == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert back["a"]["createdTime"] == "2024-06-01T10:00:00.000Z"
    assert back["b"]["fields"]["At"] == datetime(2024, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)


def test_loading_more_batches_compiles_no_more_statements(warehouse):
    """Every batch reuses the statements of the first ones: a statement per batch would grow
    the engine's compiled cache (and a load worker's memory) with the table's size."""
    schema = table_schema("Many", FieldSpec("Name", "singleLineText", kind="text"))

    def statements_added(batches: int, run_id: str) -> int:
        before = len(warehouse.engine._compiled_cache)
        records = [{"id": f"rec{n:05d}", "fields": {"Name": f"n{n}"}} for n in range(batches)]
        sync(warehouse, schema, records, run_id=run_id, replace=True, batch_size=1)
        return len(warehouse.engine._compiled_cache) - before

    statements_added(3, "run-warm")  # the first run compiles what every run shares
    # a run's own staging table has statements of its own, but not one per batch (and a
    # later run may find one more statement already compiled)
    few = statements_added(4, "run-2")
    many = statements_added(12, "run-3")
    assert many <= few


@pytest.mark.parametrize("open_warehouse", ["sqlite"], indirect=True)
def test_the_driver_executemany_stores_what_sqlalchemy_binding_stores(open_warehouse, monkeypatch):
    """The upsert's rows go to the driver as tuples processed by SQLAlchemy's own bind
    processors: the database must hold byte for byte what SQLAlchemy's executemany stores."""
    from app.warehouses import loader

    hostile = [*SOURCE, {"id": "rec4", "createdTime": "2024-03-04T01:02:03.456Z", "fields": {
        "Amount": float("nan"), "Calc": {"error": "#ERROR!"}, "Files": [{"x": -0.0}],
        "Tags": [{"__conveyor_float__": "NaN"}], "Name": "a\x00b", "Extra": {"k": [1, None]}}}]

    def stored(warehouse, name):
        target = sync(warehouse, table_schema(name, *TYPED.fields), hostile)
        with warehouse.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f'SELECT * FROM "{target.write_to}" ORDER BY "{naming.ID}"').all()
        return [tuple(row) for row in rows]

    driver_calls = []
    real = sa.Connection.exec_driver_sql
    monkeypatch.setattr(sa.Connection, "exec_driver_sql", lambda self, sql, params=None, *a, **k: (
        driver_calls.append(sql) if isinstance(params, list) else None,
        real(self, sql, params, *a, **k))[1])
    fast = stored(open_warehouse(), "Fast")
    assert any(sql.startswith("INSERT") for sql in driver_calls)  # the driver's path was taken
    monkeypatch.setattr(loader, "_execute_many", lambda conn, upsert, rows: conn.execute(upsert, rows))
    assert stored(open_warehouse(), "Slow") == fast
    assert len(fast) == 4


@pytest.mark.parametrize("fields_only", [False, True], ids=["whole records", "some fields"])
def test_loading_leaves_no_batch_in_cyclic_garbage(warehouse, fields_only):
    """Reference counting frees a loaded batch at once: nothing of it waits in a reference cycle
    for the collector, whose threshold a sync raises (``app.gc_thresholds``)."""
    import gc

    schema = table_schema("Cycles", FieldSpec("Name", "singleLineText", "fld1"))
    records = [{"id": f"recCycle{n:09d}", "fields": {"Name": f"n{n}"}} for n in range(40)]
    target = sync(warehouse, schema, records[:20], batch_size=20)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for batch_no, start in enumerate(range(0, 40, 10), start=1):
            chunk = [dict(r) for r in records[start:start + 10]]
            warehouse.load_batch(target, Batch("run-1", schema.table, batch_no, chunk,
                                               fields=("Name",) if fields_only else None))
        gc.collect()
        kept = [o for o in gc.garbage if isinstance(o, list | tuple | dict | set)
                and any(isinstance(v, str) and v.startswith("recCycle") for v in o)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert kept == []
