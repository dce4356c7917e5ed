"""Every value in its own column, and retypes between merge runs, in-process and on workers.

The expected column values are written out here by hand for each odd value the mixed base
holds, not computed with Conveyor's converters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.warehouses import DuckDBWarehouse, PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.workflows import ETLWorkflow
from sandbox import SandboxBase, SandboxConfig, build_mixed_base, rename_and_retype, run_sandbox
from sandbox.mixed import DATE_FIELD_ODDITIES, FORMULA_ERRORS, NUMBER_FIELD_STRINGS, TEXT_FIELD_SCALARS
from tests.conftest import TEST_PG_URL
from tests.support.compare import differences
from tests.support.fixtures import TOKEN, own_engine, schema_of
from tests.support.reflect import reflect
from tests.support.stack import serving_base

pytestmark = pytest.mark.integration

#: Each non-string a text field receives, and the text its column must hold.
TEXT_OF: list[tuple[Any, str]] = [
    (7, "7"), (0, "0"), (-12, "-12"), (2**60, "1152921504606846976"), (4.0, "4"), (2.5, "2.5"),
    (0.1 + 0.2, "0.30000000000000004"), (-1e-7, "-1e-07"), (1e16, "1e+16"),
    (123456789.125, "123456789.125"), (True, "true"), (False, "false"),
]
#: Each string a number field receives, and the number its column must hold (None: NULL).
NUMBER_OF: dict[str, float | None] = {
    "42": 42.0, "3.50": 3.5, "-0.25": -0.25, "1e3": 1000.0, "007": 7.0,
    "9007199254740993": None,  # a double would hold 9007199254740992
    "n/a": None, "12 kg": None,
}
#: Each non-date a date field receives, and the date its column must hold (None: NULL).
DATE_OF: dict[str, date | None] = {
    "2024-05-02T00:00:00.000Z": date(2024, 5, 2), "2024-05-03T10:30:00.000Z": None, "soon": None,
}
assert [v for v, _ in TEXT_OF] == list(TEXT_FIELD_SCALARS)
assert set(NUMBER_OF) == set(NUMBER_FIELD_STRINGS) and set(DATE_OF) == set(DATE_FIELD_ODDITIES)


def text_of(value: Any) -> str:
    return next(text for v, text in TEXT_OF if type(v) is type(value) and v == value)


def expected_cell(field: str, value: Any) -> tuple[Any, bool]:
    """(what the field's column holds, whether ``__unfit`` keeps the value) in table Mixed."""
    if value is None:
        return (False if field == "Done" else None), False
    if field in ("Name", "Label"):
        return (value, False) if isinstance(value, str) else (text_of(value), True)
    if field == "Amount":
        return (NUMBER_OF[value], True) if isinstance(value, str) else (float(value), False)
    if field == "Score":
        return (None, True) if value in FORMULA_ERRORS else (value, False)
    if field == "Due":
        return (DATE_OF[value], True) if value in DATE_OF else (date.fromisoformat(value), False)
    return value, False  # Done: True


def stored_rows(warehouse: Warehouse, table: TableRef) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The rows as the database holds them (read with an engine of our own), and the columns."""
    name = warehouse.table_name_for(table)
    assert name is not None
    engine = own_engine(warehouse)
    try:
        reflected = reflect(engine, name, schema_of(warehouse))
        with engine.connect() as conn:
            rows = {r["__id"]: dict(r) for r in conn.execute(sa.select(reflected)).mappings()}
    finally:
        engine.dispose()
    return rows, {c.name: c.type for c in reflected.columns}


def column_of(warehouse: Warehouse, table: TableRef) -> dict[str, str]:
    name = warehouse.table_name_for(table)
    assert name is not None
    return {c.field_name: c.column for c in warehouse.columns_for(name)}


def check_mixed(warehouse: Warehouse, base: SandboxBase) -> None:
    source = base.table("Mixed")
    assert source is not None
    ref = TableRef("airtable", source.id, source.name)
    rows, _ = stored_rows(warehouse, ref)
    columns = column_of(warehouse, ref)
    assert len(rows) == len(source.records)
    non_strings_in_text = 0
    for record in source.records:
        row = rows[record["id"]]
        kept = {}
        for field, column in columns.items():
            value = record["fields"].get(field)
            held, keep = expected_cell(field, value)
            assert row[column] == held, (record["id"], field, value, row[column])
            assert type(row[column]) is type(held), (record["id"], field, row[column])
            if keep:
                kept[field] = value
            non_strings_in_text += field == "Label" and not isinstance(value, str) and held is not None
        # __unfit holds what its column cannot hold, and the original of each conversion:
        # each kept value is either NULL in its column or held there as another type.
        assert (row["__unfit"] or {}) == kept, record["id"]
        for field, value in kept.items():
            held = row[columns[field]]
            assert held is None or type(held) is not type(value), (record["id"], field)
    # About half the text field's values are not strings (False is absent, as Airtable sends it).
    assert non_strings_in_text == sum(not isinstance(r["fields"].get("Label", ""), str)
                                      for r in source.records) >= 25
    assert differences(source.records, list(warehouse.read_records(ref))) == []


# -- running a workflow in-process or on workers ---------------------------------------------

Run = Callable[..., None]


@pytest.fixture(params=["sqlite", "postgres", "duckdb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Warehouse, dict[str, str]]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        warehouse: Warehouse = SQLiteWarehouse(url)
        env = {"WAREHOUSE_URL": url}
    elif request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        warehouse = DuckDBWarehouse(url)
        env = {"WAREHOUSE_URL": url}
    else:
        schema = request.getfixturevalue("pg_schema")
        warehouse = PostgresWarehouse(TEST_PG_URL, schema=schema)
        env = {"WAREHOUSE_URL": TEST_PG_URL, "WAREHOUSE_SCHEMA": schema}
    yield warehouse, env
    warehouse.dispose()


@contextlib.contextmanager
def in_process(base: SandboxBase, warehouse: Warehouse, env: dict[str, str], log_dir: Path) -> Iterator[Run]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:

        def run(tables: list[str], *, drop_tables: bool) -> None:
            extractor = AirtableExtractor(api_key=TOKEN, base_id=base.id, api_url=sandbox.url,
                                          requests_per_second=1000, tables=tables)
            report = ETLWorkflow(extractor, warehouse).run(drop_tables=drop_tables)
            assert report.state == "succeeded", report
            assert all(not t.rejected for t in report.tables)

        yield run


@contextlib.contextmanager
def on_workers(base: SandboxBase, warehouse: Warehouse, env: dict[str, str], log_dir: Path) -> Iterator[Run]:
    from broker.producer import enqueue

    with serving_base(base, env, log_dir) as (_, workers):

        def run(tables: list[str], *, drop_tables: bool) -> None:
            workflow = ETLWorkflow(AirtableExtractor, type(warehouse))
            handle = enqueue(workflow, tables=tables, drop_tables=drop_tables)
            final = handle.wait(timeout=120, raise_on_failure=False)
            logs = "\n".join(w.log()[-3000:] for w in workers)
            assert final["state"] == "succeeded", (final.get("error"), logs)
            assert all(not t["rejected"] for t in final["tables"]), final

        yield run


MODES = [pytest.param(in_process, id="in-process"),
         pytest.param(on_workers, id="workers", marks=pytest.mark.slow)]


@pytest.mark.parametrize("mode", MODES)
def test_every_value_lands_in_its_own_column(mode, target, tmp_path):
    warehouse, env = target
    base = build_mixed_base()
    with mode(base, warehouse, env, tmp_path) as run:
        run(["Mixed"], drop_tables=True)
    check_mixed(warehouse, base)


@pytest.mark.parametrize("mode", MODES)
def test_number_to_text_and_text_to_number_between_two_merge_runs(mode, target, tmp_path):
    warehouse, env = target
    base = build_mixed_base()
    table = base.table("Retype")
    assert table is not None
    ref = TableRef("airtable", table.id, table.name)
    with mode(base, warehouse, env, tmp_path) as run:
        run(["Retype"], drop_tables=False)
        _, types = stored_rows(warehouse, ref)
        columns = column_of(warehouse, ref)
        assert isinstance(types[columns["Amount"]], sa.Float)
        assert isinstance(types[columns["Code"]], sa.Text)
        # Records deleted from the source stay in the warehouse (a merge deletes nothing):
        # no run loads them again, so only the migration can give them the new types.
        gone = {r["id"]: r for r in (table.records[i] for i in (1, 3, 6, 9, 13))}
        assert {r["fields"]["Code"] for r in gone.values()} == {"001", "3.5", "true", "90", "013"}
        for record_id in gone:
            table.delete(record_id)
        table = rename_and_retype(base, "Retype", "Amount", type="singleLineText")
        table = rename_and_retype(base, "Retype", "Code", type="number")
        run(["Retype"], drop_tables=False)
    rows, types = stored_rows(warehouse, ref)
    assert isinstance(types[columns["Amount"]], sa.Text)
    assert isinstance(types[columns["Code"]], sa.Float)
    assert len(rows) == len(table.records) + len(gone) == 60
    name = warehouse.table_name_for(ref)
    assert name is not None
    assert {c.field_name: c.kind for c in warehouse.columns_for(name)} == {
        "Name": "text", "Amount": "text", "Code": "number",
    }  # fmt: skip
    # Loaded again: each value in its column, exactly as the source now has it.
    for record in table.records:
        row = rows[record["id"]]
        assert row[columns["Amount"]] == record["fields"].get("Amount")
        code = record["fields"].get("Code")
        assert row[columns["Code"]] == (None if code is None else float(code))
        assert row["__unfit"] is None, record
    # Migrated: the old number as text and the old text as a number where one spells it,
    # each original kept, so the records read back as they were loaded.
    for record_id, record in gone.items():
        row, fields = rows[record_id], record["fields"]
        amount, code = fields.get("Amount"), fields["Code"]
        assert row[columns["Amount"]] == (None if amount is None else text_of_number(amount))
        number = float(code) if code.replace(".", "", 1).isdigit() else None
        assert row[columns["Code"]] == number, (code, row[columns["Code"]])
        assert row["__unfit"] == {k: v for k, v in fields.items() if k != "Name"}
    back = {r["id"]: r for r in warehouse.read_records(ref)}
    assert differences(table.records, [back[r["id"]] for r in table.records]) == []
    assert differences(list(gone.values()), [back[i] for i in gone]) == []


def text_of_number(value: int | float) -> str:
    """The column text of the Retype table's numbers (whole ones without ``.0``)."""
    return str(int(value)) if float(value).is_integer() else repr(value)
