"""The hostile-data base, in-process and on real workers: everything lands or is reported by id."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.workflows import ETLWorkflow
from sandbox import (
    Sandbox,
    SandboxBase,
    SandboxConfig,
    build_hostile_base,
    rename_and_retype,
    run_sandbox,
)
from tests.conftest import TEST_PG_URL
from tests.support.compare import differences, same_float
from tests.support.fixtures import TOKEN, make_warehouse
from tests.support.reflect import reflect
from tests.support.stack import serving_base

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def serving(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        yield sandbox


def extractor_for(sandbox: Sandbox, base: SandboxBase, **kwargs: Any) -> AirtableExtractor:
    return AirtableExtractor(api_key=TOKEN, base_id=base.id, api_url=sandbox.url,
                             requests_per_second=1000, **kwargs)


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


def unstorable_ids(table: Any, warehouse: Warehouse) -> set[str]:
    """The records this warehouse cannot store: those holding NUL, on PostgreSQL only."""
    if not isinstance(warehouse, PostgresWarehouse):
        return set()
    return {r["id"] for r in table.records if holds_nul(r["fields"])}


def check_landed(warehouse: Warehouse, table: Any, ref: Any, rejected: list[dict[str, str]]) -> None:
    """Rejected are exactly the unstorable records, with a reason; all others read back equal."""
    ids = [r["record_id"] for r in rejected]
    assert len(ids) == len(set(ids)), ids
    assert set(ids) == unstorable_ids(table, warehouse), table.name
    assert all("NUL" in r["reason"] and "\n" not in r["reason"] for r in rejected), rejected
    expected = [r for r in table.records if r["id"] not in set(ids)]
    landed = list(warehouse.read_records(ref))
    assert differences(expected, landed) == [], table.name
    assert warehouse.row_count(ref) == len(expected)


@pytest.fixture(params=["sqlite", "postgres", "duckdb"])
def warehouse(request, tmp_path, pg_schema):
    wh = make_warehouse(request.param, tmp_path, TEST_PG_URL, pg_schema)
    yield wh
    wh.dispose()


def test_the_hostile_base_lands_or_is_reported_by_id_in_process(warehouse):
    base = build_hostile_base()
    with serving(base) as sandbox:
        report = ETLWorkflow(extractor_for(sandbox, base), warehouse).run(drop_tables=True)
    nul_rejected = isinstance(warehouse, PostgresWarehouse)
    assert report.state == ("succeeded_with_rejections" if nul_rejected else "succeeded")
    assert [t.table.table_id for t in report.tables] == [t.id for t in base.tables]
    for table, table_report in zip(base.tables, report.tables, strict=True):
        source = len(table.records)
        assert table_report.fetched == source, table.name
        assert table_report.loaded + len(table_report.rejected) == source, table.name
        rejected = [{"record_id": r.record_id, "reason": r.reason} for r in table_report.rejected]
        check_landed(warehouse, table, table_report.table, rejected)
    rejected_texts = next(t for t in report.tables if t.table.name == "Text").rejected
    assert len(rejected_texts) == (5 if isinstance(warehouse, PostgresWarehouse) else 0)
    # Floats exactly, beyond what differences() checks: NaN as NaN, -0.0 with its sign.
    numbers = next(t for t in base.tables if t.name == "Numbers")
    back = {r["id"]: r for r in warehouse.read_records(report.tables[2].table)}
    for record in numbers.records:
        for name in ("Amount", "Ratio"):
            value = record["fields"][name]
            if isinstance(value, float):
                assert same_float(value, back[record["id"]]["fields"][name]), (record["id"], name)
    wide = report.tables[3]
    assert len(warehouse.columns_for(wide.sql_table)) == 500
    # The run history holds the same report, rejected ids included.
    history = warehouse.list_runs(limit=1)[0]
    assert history["run_id"] == report.run_id
    stored = {t["table"]["name"]: [r["record_id"] for r in t["rejected"]] for t in history["tables"]}
    assert stored["Text"] == [r.record_id for r in rejected_texts]


@pytest.mark.parametrize("drop_tables", [False, True], ids=["upsert", "drop_tables"])
def test_fields_renamed_and_retyped_between_two_runs(warehouse, drop_tables):
    base = build_hostile_base()
    with serving(base) as sandbox:
        def run() -> Any:
            extractor = extractor_for(sandbox, base, tables=["Changes"])
            report = ETLWorkflow(extractor, warehouse).run(drop_tables=drop_tables)
            (table_report,) = report.tables
            assert table_report.rejected == [] and table_report.loaded == 20
            return table_report

        first = run()
        before = {c.field_key: c for c in warehouse.columns_for(first.sql_table)}
        rename_and_retype(base, "Changes", "Name", name="Full name")
        rename_and_retype(base, "Changes", "Amount", name="Amount (text)", type="singleLineText")
        rename_and_retype(base, "Changes", "Label", type="checkbox")
        rename_and_retype(base, "Changes", "Done", name="Done count", type="number")
        second = run()
    changes = base.table("Changes")
    assert second.sql_table == first.sql_table
    after = {c.field_key: c for c in warehouse.columns_for(second.sql_table)}
    assert {k: c.column for k, c in after.items()} == {k: c.column for k, c in before.items()}
    names = {f.id: f.name for f in changes.fields}
    assert {k: c.field_name for k, c in after.items()} == names
    new_kinds = {"Full name": "text", "Amount (text)": "text", "Label": "boolean",
                 "Done count": "number", "Kind": "text"}
    # Before issue 12 an upsert kept each column's old kind and sent the new values to
    # __unfit; now the upsert migrates the columns, so both paths end with the new kinds.
    for key, column in after.items():
        assert column.kind == new_kinds[names[key]], (names[key], column.kind)
    assert differences(changes.records, list(warehouse.read_records(second.table))) == []
    assert warehouse.row_count(second.table) == 20
    engine = sa.create_engine(warehouse.url.render_as_string(hide_password=False))
    table = reflect(engine, second.sql_table, warehouse.schema)
    with engine.connect() as conn:
        unfit = [row[0] for row in conn.execute(sa.select(table.c["__unfit"]))]
    engine.dispose()
    assert unfit == [None] * 20  # every new value fits its retyped column
    columns = {c.field_name: c.column for c in after.values()}
    assert isinstance(table.c[columns["Amount (text)"]].type, sa.Text)
    assert isinstance(table.c[columns["Done count"]].type, sa.Float)
    assert isinstance(table.c[columns["Label"]].type, sa.Boolean)


# -- on real workers ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_hostile_base_on_workers_reports_every_record(backend, tmp_path, pg_schema):
    from broker.producer import enqueue

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        warehouse: Warehouse = SQLiteWarehouse(url)
        env = {"WAREHOUSE_URL": url}
    else:
        warehouse = PostgresWarehouse(TEST_PG_URL, schema=pg_schema)
        env = {"WAREHOUSE_URL": TEST_PG_URL, "WAREHOUSE_SCHEMA": pg_schema}
    base = build_hostile_base()
    try:
        with serving_base(base, env, tmp_path) as (_, workers):
            handle = enqueue(ETLWorkflow(AirtableExtractor, type(warehouse)), drop_tables=True)
            try:
                final = handle.wait(timeout=120, raise_on_failure=False)
            finally:
                logs = "\n".join(w.log()[-3000:] for w in workers)
            expected = "succeeded_with_rejections" if backend == "postgres" else "succeeded"
            assert final["state"] == expected, (final.get("error"), logs)
            status = handle.status()
        by_id = {t["table"]["table_id"]: t for t in status["tables"]}
        assert set(by_id) == {t.id for t in base.tables}
        for table in base.tables:
            counts = by_id[table.id]
            assert counts["state"] == "succeeded", (table.name, counts["error"])
            assert counts["fetched"] == len(table.records), table.name
            assert counts["loaded"] + len(counts["rejected"]) == len(table.records), table.name
            ref = TableRef("airtable", table.id, table.name)
            check_landed(warehouse, table, ref, counts["rejected"])
        text = by_id[base.table("Text").id]
        assert len(text["rejected"]) == (5 if backend == "postgres" else 0)
    finally:
        warehouse.dispose()


@pytest.mark.slow
def test_values_shaped_like_kombu_type_markers_cross_the_broker_as_data(tmp_path):
    from broker.producer import enqueue

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = SQLiteWarehouse(url)
    base = build_hostile_base(broker_lookalikes=True)
    deep = base.table("Deep")
    try:
        with serving_base(base, {"WAREHOUSE_URL": url}, tmp_path):
            handle = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse), tables=["Deep"],
                             drop_tables=True)
            final = handle.wait(timeout=15, raise_on_failure=False)
        assert final["state"] == "succeeded"
        (counts,) = final["tables"]
        assert (counts["loaded"], counts["rejected"]) == (len(deep.records), [])
        check_landed(warehouse, deep, TableRef("airtable", deep.id, deep.name), [])
    finally:
        warehouse.dispose()
