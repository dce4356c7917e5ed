"""SQL names: hostile field and table names map to valid, distinct, stable names that work."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.contracts import FieldSpec, TableRef
from app.warehouses import naming
from tests.app.conftest import by_id, sync, table_schema
from tests.support.reflect import column_types

VALID = re.compile(r"(?!__)[a-z_][a-z0-9_]*")
LONG_A = "A very long field name that goes on and on past the limit of PostgreSQL, ending in A"
LONG_B = "A very long field name that goes on and on past the limit of PostgreSQL, ending in B"

HOSTILE = [
    "Name",
    "name ",
    "Status",
    "status",
    "STATUS",
    "First Name",
    "Prénom",
    "Größe (kg)",
    "名前",
    "🚀",
    'Say "hi"',
    "it's",
    "select",
    "from",
    "order",
    "2024 Revenue",
    "__id",
    "__unfit",
    "_private",
    "a.b;DROP TABLE x;--",
    LONG_A,
    LONG_B,
]


def allocate(names):
    taken: list[str] = []
    for name in names:
        taken.append(naming.column_name(name, taken))
    return taken


def test_snake_case():
    assert naming.snake_case("Client Projects") == "client_projects"
    assert naming.snake_case("createdTime") == "created_time"
    assert naming.snake_case("HTTPStatus Code") == "http_status_code"
    assert naming.snake_case("  Größe (kg) ") == "grosse_kg"
    assert naming.snake_case("Café") == "cafe"
    assert naming.snake_case("名前") == ""


def test_hostile_field_names_get_valid_distinct_columns():
    columns = allocate(HOSTILE)
    assert len(set(columns)) == len(columns)
    assert len({c.lower() for c in columns}) == len(columns)
    for column in columns:
        assert VALID.fullmatch(column), column
        assert len(column.encode()) <= naming.MAX_NAME_BYTES
        assert column not in naming.SYSTEM_COLUMNS
    mapped = dict(zip(HOSTILE, columns, strict=True))
    assert mapped["Name"] == "name" and mapped["name "] == "name_2"
    assert (mapped["Status"], mapped["status"], mapped["STATUS"]) == (
        "status",
        "status_2",
        "status_3",
    )
    assert mapped["Prénom"] == "prenom"
    assert mapped["名前"] == "field" and mapped["🚀"] == "field_2"
    assert mapped["2024 Revenue"] == "_2024_revenue"
    assert mapped["__id"] == "id" and mapped["__unfit"] == "unfit"
    assert mapped["select"] == "select"  # fine: identifiers are always quoted


def test_allocation_is_deterministic_by_source_order():
    assert allocate(HOSTILE) == allocate(HOSTILE)
    assert allocate(["status", "Status"]) == ["status", "status_2"]


def test_long_names_are_cut_to_63_bytes_with_a_hash_that_keeps_them_apart():
    a, b = allocate([LONG_A, LONG_B])
    assert len(a) == len(b) == naming.MAX_NAME_BYTES
    assert a != b
    assert a[:40] == b[:40]
    assert naming.column_name(LONG_A, []) == a  # stable


def test_a_suffix_never_pushes_a_name_past_the_limit():
    base = "x" * 80
    names = allocate([base] * 12)
    assert len(set(names)) == 12
    assert all(len(n) <= naming.MAX_NAME_BYTES for n in names)


def test_table_names():
    assert naming.table_name("airtable", "Clients", []) == "airtable__clients"
    assert naming.table_name("airtable", "Client Projects", []) == "airtable__client_projects"
    assert naming.table_name("airtable", "Orders", ["airtable__orders"]) == "airtable__orders_2"
    assert naming.table_name("airtable", "🚀", []) == "airtable__table"
    long = naming.table_name("airtable", "t" * 100, [])
    assert len(long) == naming.MAX_NAME_BYTES and long.startswith("airtable__ttt")


def test_staging_names_are_short_and_stable_per_run_and_table():
    stage = naming.staging_name("airtable", "tbl1", "run-1")
    assert re.fullmatch(r"_conveyor_stage_[0-9a-f]{8}", stage)
    assert stage == naming.staging_name("airtable", "tbl1", "run-1")
    assert stage != naming.staging_name("airtable", "tbl1", "run-2")
    assert stage != naming.staging_name("airtable", "tbl2", "run-1")


def test_hostile_names_round_trip_through_a_real_table(warehouse):
    fields = [FieldSpec(name, "singleLineText", f"fld{i}") for i, name in enumerate(HOSTILE)]
    records = [
        {"id": f"rec{n}", "fields": {name: f"{name} / {n}" for name in HOSTILE}} for n in range(3)
    ]
    target = sync(warehouse, table_schema("Weird 'Table'; \"x\"", *fields), records)
    assert [c.column for c in target.columns] == allocate(HOSTILE)
    assert by_id(list(warehouse.read_records(target.table))) == by_id(records)
    with warehouse.engine.connect() as conn:
        physical = set(column_types(conn, target.name, warehouse.schema))
    assert physical == {*naming.SYSTEM_COLUMNS, *allocate(HOSTILE)}


def test_tables_differing_only_in_case_land_in_two_tables(warehouse):
    lower = TableRef("airtable", "tblA", "orders")
    upper = TableRef("airtable", "tblB", "Orders")
    field = FieldSpec("Item", "singleLineText", "fld1")
    sync(
        warehouse,
        table_schema("orders", field, table_id="tblA"),
        [{"id": "r1", "fields": {"Item": "a"}}],
    )
    sync(
        warehouse,
        table_schema("Orders", field, table_id="tblB"),
        [{"id": "r2", "fields": {"Item": "b"}}],
    )
    assert warehouse.table_name_for(lower) == "airtable__orders"
    assert warehouse.table_name_for(upper) == "airtable__orders_2"
    assert warehouse.list_tables() == ["airtable__orders", "airtable__orders_2"]
    assert [r["id"] for r in warehouse.read_records(lower)] == ["r1"]
    assert [r["id"] for r in warehouse.read_records(upper)] == ["r2"]


def test_a_table_name_taken_by_a_foreign_table_is_not_reused(warehouse):
    warehouse.check()
    foreign = sa.Table(
        "airtable__clients", sa.MetaData(schema=warehouse.schema), sa.Column("x", sa.Integer)
    )
    with warehouse.engine.begin() as conn:
        foreign.create(conn)
    target = sync(warehouse, table_schema("Clients", FieldSpec("A", "number", "f1")), [])
    assert target.name == "airtable__clients_2"


@pytest.mark.parametrize("renamed_to", ["Customers", "clients"])
def test_a_renamed_table_keeps_its_warehouse_name(warehouse, renamed_to):
    field = FieldSpec("A", "number", "f1")
    first = sync(warehouse, table_schema("Clients", field, table_id="tbl1"), [])
    again = sync(warehouse, table_schema(renamed_to, field, table_id="tbl1"), [], run_id="run-2")
    assert first.name == again.name == "airtable__clients"
