"""In-process ETL from the Airtable sandbox into real SQLite and PostgreSQL warehouses."""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa

from app.gc_thresholds import SYNC_THRESHOLD
from app.settings import reload_settings
from app.warehouses import DuckDBWarehouse, SQLiteWarehouse
from app.workflows import ETLWorkflow, RunFailedError
from app.workflows.report import SilentProgress
from tests.conftest import TEST_PG_URL
from tests.support.compare import differences
from tests.support.fixtures import (
    THREE_TABLES,
    extractor_for,
    make_warehouse,
    own_engine,
    sandbox_with,
    schema_of,
)
from tests.support.reflect import column_types, reflect

pytestmark = pytest.mark.integration

NUMERIC = {"number", "currency", "percent", "rating", "duration", "autoNumber", "count"}
TIMESTAMPS = {"dateTime", "createdTime", "lastModifiedTime"}
JSONISH = {"multipleAttachments", "multipleRecordLinks", "singleCollaborator",
           "multipleCollaborators", "createdBy", "lastModifiedBy", "multipleSelects",
           "multipleLookupValues", "barcode", "button"}


def expected_type_family(field_type: str) -> str | None:
    if field_type in NUMERIC:
        return "numeric"
    if field_type == "checkbox":
        return "boolean"
    if field_type == "date":
        return "date"
    if field_type in TIMESTAMPS:
        return "timestamp"
    if field_type in JSONISH:
        return "json"
    return None


def type_family(column_type: sa.types.TypeEngine) -> str:
    name = type(column_type).__name__.upper()
    if "BOOL" in name:
        return "boolean"
    if name in ("DATE",):
        return "date"
    if "TIMESTAMP" in name or "DATETIME" in name:
        return "timestamp"
    if "JSON" in name:
        return "json"
    if any(k in name for k in ("FLOAT", "DOUBLE", "NUMERIC", "REAL", "INT", "DECIMAL")):
        return "numeric"
    return name.lower()


@pytest.fixture(params=["sqlite", "postgres", "duckdb"])
def warehouse(request, tmp_path, pg_schema):
    wh = make_warehouse(request.param, tmp_path, TEST_PG_URL, pg_schema)
    yield wh
    wh.dispose()


def test_three_tables_land_losslessly_with_mapped_types(warehouse):
    # test_parity syncs the 20,000-record table in-process on SQLite and PostgreSQL already;
    # here they take a quarter of it (DuckDB's in-process 20,000 is checked only here)
    tables = THREE_TABLES if isinstance(warehouse, DuckDBWarehouse) else {**THREE_TABLES, "Orders": 5000}
    with sandbox_with(tables) as (sandbox, base):
        report = ETLWorkflow(extractor_for(sandbox), warehouse).run(drop_tables=True)
        assert report.state == "succeeded"
        extractor = extractor_for(sandbox)
        engine = own_engine(warehouse)
        schema = schema_of(warehouse)
        for table in base.tables:
            ref = next(t for t in extractor.list_tables() if t.table_id == table.id)
            assert warehouse.row_count(ref) == len(table.records), table.name
            landed = list(warehouse.read_records(ref))
            assert differences(table.records, landed) == [], table.name
            sql_table = warehouse.table_name_for(ref)
            columns = {c.field_key: c for c in warehouse.columns_for(sql_table)}
            db_types = column_types(engine, sql_table, schema)
            checked = 0
            for field in table.fields:
                family = expected_type_family(field.type)
                if family is None:
                    continue
                column = columns[field.id].column
                assert type_family(db_types[column]) == family, (table.name, field.name, db_types[column])
                checked += 1
            assert checked >= 15
        report_counts = {t.table.name: (t.fetched, t.loaded) for t in report.tables}
        orders = tables["Orders"]
        assert report_counts == {"Empty": (0, 0), "Clients": (250, 250), "Orders": (orders, orders)}
        engine.dispose()


class ThresholdSeen(SilentProgress):
    """Notes the collector's threshold as each table starts loading."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def table_started(self, report) -> None:
        self.seen.append(gc.get_threshold()[0])


def test_a_run_raises_the_collectors_threshold_while_it_syncs_and_restores_it_after(tmp_path):
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    listener = ThresholdSeen()
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        with sandbox_with({"Clients": 30, "Orders": 50}) as (sandbox, _):
            ETLWorkflow(extractor_for(sandbox), warehouse).run(drop_tables=True, progress=listener)
        assert listener.seen == [SYNC_THRESHOLD, SYNC_THRESHOLD]
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
        warehouse.dispose()


def _snapshot(warehouse, extractor):
    engine = own_engine(warehouse)
    schema = schema_of(warehouse)
    rows = {}
    with engine.connect() as conn:
        for ref in extractor.list_tables():
            name = warehouse.table_name_for(ref)
            table = reflect(conn, name, schema)
            data_columns = [c for c in table.c if c.name != "__run_id"]
            rows[name] = sorted(conn.execute(sa.select(*data_columns)).all(), key=lambda r: r[0])
    engine.dispose()
    return rows


def test_syncing_twice_without_drop_tables_gives_identical_tables(warehouse):
    with sandbox_with({"Clients": 250, "Projects": 40}) as (sandbox, _):
        ETLWorkflow(extractor_for(sandbox), warehouse).run()
        first = _snapshot(warehouse, extractor_for(sandbox))
        ETLWorkflow(extractor_for(sandbox), warehouse).run()
        second = _snapshot(warehouse, extractor_for(sandbox))
    assert sum(len(r) for r in first.values()) == 290
    assert first == second


class FailAfterFirstBatch:
    """A progress listener that makes the sandbox start failing once a batch has loaded."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.loaded_before_failure = 0

    def table_started(self, report):
        pass

    def table_progress(self, report):
        if report.loaded and not self.loaded_before_failure:
            self.loaded_before_failure = report.loaded
            self.sandbox.config.failure_rate = 1.0

    def table_finished(self, report):
        pass


def test_a_replacing_run_that_fails_half_way_leaves_the_previous_table_intact(warehouse, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("BATCH_MAX_RECORDS", "200")
    reload_settings()
    with sandbox_with({"Orders": 2000}) as (sandbox, base):
        ETLWorkflow(extractor_for(sandbox), warehouse).run(drop_tables=True)
        before = _snapshot(warehouse, extractor_for(sandbox))
        # the source changes, then the next replacing run dies after its first batch
        sandbox.bases[base.id].tables[0].records.pop()
        listener = FailAfterFirstBatch(sandbox)
        with pytest.raises(RunFailedError, match="Orders"):
            ETLWorkflow(extractor_for(sandbox), warehouse).run(drop_tables=True, progress=listener)
        assert listener.loaded_before_failure == 100  # the first page is a batch of its own
        sandbox.config.failure_rate = 0.0
        after = _snapshot(warehouse, extractor_for(sandbox))
    assert len(next(iter(before.values()))) == 2000
    assert after == before
    leftovers = [t for t in warehouse.list_tables() if t.startswith("_conveyor_stage")]
    assert leftovers == []


def test_hostile_table_and_field_names_land_in_distinct_valid_tables(warehouse):
    from sandbox import hostile_table_names

    names = hostile_table_names()
    with sandbox_with({name: 30 for name in names}) as (sandbox, base):
        ETLWorkflow(extractor_for(sandbox), warehouse).run(drop_tables=True)
        refs = extractor_for(sandbox).list_tables()
        sql_names = [warehouse.table_name_for(ref) for ref in refs]
        assert len(set(sql_names)) == len(names)
        assert len({n.lower() for n in sql_names}) == len(names)
        for table, ref in zip(base.tables, refs, strict=True):
            landed = list(warehouse.read_records(ref))
            assert differences(table.records, landed) == [], table.name
            columns = [c.column for c in warehouse.columns_for(warehouse.table_name_for(ref))]
            assert len({c.lower() for c in columns}) == len(columns)
            assert all(len(c.encode()) <= 63 for c in columns)
