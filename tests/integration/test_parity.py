"""One sync model, two drivers: the same bases synced in-process and on one extract + one load
worker give identical rows, identical column types and identical per-table reports — and a run
enqueued with explicit constructor arguments lands where they say, whatever the workers'
environment names."""

from __future__ import annotations

import json

import pytest
import redis
import sqlalchemy as sa

from app.extractors import AirtableExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.workflows import ETLWorkflow
from broker.producer import enqueue
from sandbox import SandboxConfig, build_base, build_hostile_base, run_sandbox
from tests.conftest import TEST_PG_URL, TEST_REDIS_URL
from tests.support.fixtures import THREE_TABLES, TOKEN
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS_BASE = "appWORKERSDEFAULT1"


def column_types(warehouse: Warehouse, sql_table: str) -> dict[str, str]:
    engine = sa.create_engine(warehouse.url.render_as_string(hide_password=False))
    try:
        columns = sa.inspect(engine).get_columns(sql_table, schema=warehouse.schema)
    finally:
        engine.dispose()
    return {c["name"]: str(c["type"]) for c in columns}


def as_text(records: list) -> list[str]:
    return [json.dumps(r, sort_keys=True, default=str) for r in records]


def report_of(table: dict) -> dict:
    """What a per-table report says, without the run-specific parts."""
    return {"sql_table": table["sql_table"], "state": str(table["state"]),
            "fetched": table["fetched"], "loaded": table["loaded"], "batches": table["batches"],
            "rejected": sorted(r["record_id"] if isinstance(r, dict) else r.record_id
                               for r in table["rejected"])}


def warehouses(backend: str, tmp_path, schema_a: str, schema_b: str) -> tuple[Warehouse, Warehouse]:
    if backend == "sqlite":
        return (SQLiteWarehouse(f"sqlite:///{tmp_path / 'in_process.db'}"),
                SQLiteWarehouse(f"sqlite:///{tmp_path / 'workers.db'}"))
    return PostgresWarehouse(TEST_PG_URL, schema=schema_a), PostgresWarehouse(TEST_PG_URL, schema=schema_b)


@pytest.fixture
def second_schema():
    schema = "raw_parity_workers"
    yield schema
    engine = sa.create_engine(TEST_PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_in_process_and_workers_give_identical_tables_types_and_reports(
        backend, tmp_path, pg_schema, second_schema):
    plain = build_base("appPARITYPLAIN0001", THREE_TABLES, seed=11)
    hostile = build_hostile_base("appPARITYHOSTILE01")
    decoy = build_base(WORKERS_BASE, {"Decoy": 3}, seed=3)
    in_process, on_workers = warehouses(backend, tmp_path, pg_schema, second_schema)
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    # The workers' own environment names another base and a SQLite file: the run's explicit
    # arguments must win over it.
    worker_env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_BASE_ID": WORKERS_BASE,
                  "AIRTABLE_API_KEY": TOKEN, "AIRTABLE_REQUESTS_PER_SECOND": "1000",
                  "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'workers_default.db'}"}
    config = SandboxConfig(token=TOKEN, requests_per_second=0)
    with run_sandbox([plain, hostile, decoy], config) as sandbox:
        worker_env["AIRTABLE_API_URL"] = sandbox.url
        workers = [WorkerProcess(q, worker_env, tmp_path).start() for q in ("extract", "load")]
        try:
            for base in (plain, hostile):
                def extractor() -> AirtableExtractor:
                    return AirtableExtractor(base_id=base.id, api_url=sandbox.url,  # noqa: B023
                                             requests_per_second=1000)

                local = ETLWorkflow(AirtableExtractor(api_key=TOKEN, base_id=base.id,
                                                      api_url=sandbox.url, requests_per_second=1000),
                                    in_process).run(drop_tables=True)
                with pytest.MonkeyPatch.context() as env:
                    env.setenv("AIRTABLE_API_KEY", TOKEN)  # the producer's own; never sent
                    handle = enqueue(ETLWorkflow(extractor(), on_workers), drop_tables=True)
                final = handle.wait(timeout=240, raise_on_failure=False)
                assert final["state"] == str(local.state), (final.get("error"), workers[1].log()[-3000:])
                local_tables = {t.table.table_id: report_of(t.__dict__) for t in local.tables}
                remote_tables = {t["table"]["table_id"]: report_of(t) for t in final["tables"]}
                assert remote_tables == local_tables
                for table in local.tables:
                    assert column_types(on_workers, table.sql_table) == column_types(in_process,
                                                                                   table.sql_table)
                    here = sorted(in_process.read_records(table.table), key=lambda r: r["id"])
                    there = sorted(on_workers.read_records(table.table), key=lambda r: r["id"])
                    # as JSON text, so NaN equals NaN and -0.0 differs from 0.0
                    assert as_text(there) == as_text(here), table.table.name
        finally:
            for worker in workers:
                worker.stop()
    default = SQLiteWarehouse(worker_env["WAREHOUSE_URL"])
    assert default.list_tables() == []  # nothing landed where the workers' environment points
    for warehouse in (in_process, on_workers, default):
        warehouse.dispose()


def test_a_connection_whose_secret_the_workers_lack_fails_with_one_line(tmp_path):
    base = build_base("appCONNECTIONS0001", {"T": 5}, seed=5)
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_KEY": TOKEN, "WAREHOUSE_URL": url,
               "AIRTABLE_API_URL": sandbox.url}
        workers = [WorkerProcess(q, env, tmp_path).start() for q in ("extract", "load")]
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("CONVEYOR_CONNECTION_SALES_AIRTABLE_API_KEY", TOKEN)
                extractor = AirtableExtractor(base_id=base.id, api_url=sandbox.url, connection="sales")
                handle = enqueue(ETLWorkflow(extractor))
            final = handle.wait(timeout=60, raise_on_failure=False)
        finally:
            for worker in workers:
                worker.stop()
    assert final["state"] == "failed"
    assert final["error"].startswith("CONVEYOR_CONNECTION_SALES_AIRTABLE_API_KEY is not set")
    assert "\n" not in final["error"] and TOKEN not in final["error"]


def test_arguments_that_cannot_travel_are_refused_at_enqueue():
    from app.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="api_key given to AirtableExtractor cannot be sent"):
        enqueue(ETLWorkflow(AirtableExtractor(api_key="secret", base_id="appX")))
    with pytest.raises(ConfigurationError, match="unknown run option 'drop_table'"):
        enqueue(ETLWorkflow(AirtableExtractor), drop_table=True)
    with pytest.raises(ConfigurationError, match="unknown run option 'drop_table'"):
        ETLWorkflow(AirtableExtractor(api_key="secret", base_id="appX")).run(drop_table=True)
