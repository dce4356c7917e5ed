"""Distributed runs: real Redis, a real extract worker and a real load worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.producer import RunFailedRemotelyError, enqueue
from tests.conftest import TEST_PG_URL
from tests.support.compare import differences
from tests.support.fixtures import THREE_TABLES, extractor_for
from tests.support.stack import running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FETCH_STEPS = {"plan_run", "start_table", "extract_table"}
LOAD_STEPS = {"create_table", "load_batch", "finish_table", "finish_run"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'warehouse.db'}"
        warehouse, env = SQLiteWarehouse(url), {"WAREHOUSE_URL": url}
    else:
        schema = f"raw_dist_{os.getpid()}"
        warehouse = PostgresWarehouse(TEST_PG_URL, schema=schema)
        env = {"WAREHOUSE_URL": TEST_PG_URL, "WAREHOUSE_SCHEMA": schema}
    with running_stack(THREE_TABLES, warehouse, env, tmp) as stack:
        yield stack
    if request.param == "postgres":
        import sqlalchemy as sa

        engine = sa.create_engine(TEST_PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{env["WAREHOUSE_SCHEMA"]}" CASCADE'))
        engine.dispose()


def conveyor(*args, env=None):
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def etl(stack):
    warehouse_class = type(stack.warehouse)
    return ETLWorkflow(AirtableExtractor, warehouse_class)


def test_three_tables_land_as_in_process_with_steps_on_their_queues(stack, tmp_path):
    handle = enqueue(etl(stack), drop_tables=True)
    try:
        final = handle.wait(timeout=300)
    except Exception:
        print(stack.logs())
        raise
    assert final["state"] == "succeeded"
    refs = extractor_for(stack.sandbox).list_tables()
    # the same base synced in-process into a separate warehouse, for comparison
    reference = SQLiteWarehouse(f"sqlite:///{tmp_path / 'in-process.db'}")
    ETLWorkflow(extractor_for(stack.sandbox), reference).run(drop_tables=True)
    for table, ref in zip(stack.base.tables, refs, strict=True):
        landed = list(stack.warehouse.read_records(ref))
        assert differences(table.records, landed) == [], table.name
        in_process = list(reference.read_records(ref))
        assert sorted(landed, key=lambda r: r["id"]) == sorted(in_process, key=lambda r: r["id"])
    counts = {t["table"]["name"]: (t["fetched"], t["loaded"], t["state"]) for t in final["tables"]}
    assert counts == {"Empty": (0, 0, "succeeded"), "Clients": (250, 250, "succeeded"),
                      "Orders": (20000, 20000, "succeeded")}

    shown = conveyor("status", handle.id, "--json")
    assert shown.returncode == 0, shown.stderr
    steps = json.loads(shown.stdout)["steps"]
    extract_host = stack.workers["extract"].hostname
    load_host = stack.workers["load"].hostname
    seen = {s["step"] for s in steps}
    assert {"plan_run", "start_table", "extract_table", "create_table", "load_batch",
            "finish_table", "finish_run"} <= seen
    for s in steps:
        expected = extract_host if s["step"] in FETCH_STEPS else load_host
        assert (s["hostname"], s["queue"]) == (expected, expected.split("@")[0]), s
    loads = [s for s in steps if s["step"] == "load_batch" and s["table_id"] == refs[2].table_id]
    # the first page (100 records) loads with the table's creation, the rest in batches of 500
    assert len(loads) == 40
    history = stack.warehouse.list_runs(limit=5)
    assert any(r["run_id"] == handle.id and r["state"] == "succeeded" for r in history)


def test_an_unknown_table_fails_alone_and_the_run_reports_it(stack):
    handle = enqueue(etl(stack), tables=["Clients", "No Such Table"])
    with pytest.raises(RunFailedRemotelyError, match="No Such Table"):
        handle.wait(timeout=120)
    final = handle.status()
    states = {t["table"]["name"]: t["state"] for t in final["tables"]}
    assert states == {"Clients": "succeeded", "No Such Table": "failed"}
    failed = next(t for t in final["tables"] if t["state"] == "failed")
    assert "unknown table" in failed["error"]
    assert final["state"] == "failed"
    clients = TableRef("airtable", stack.base.tables[1].id, "Clients")
    assert stack.warehouse.row_count(clients) == 250

    cli = conveyor("enqueue", "airtable", "--tables", "Clients,Nope", "--wait")
    assert cli.returncode == 1
    run_id = cli.stdout.splitlines()[0]
    assert len(run_id) == 32 and "Nope" in cli.stderr


def test_cancel_stops_a_running_run(stack):
    stack.sandbox.config.latency_seconds = 0.05
    try:
        handle = enqueue(etl(stack), tables=["Orders"], drop_tables=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tables = handle.status()["tables"]
            if tables and tables[0]["loaded"] > 0:
                break
            time.sleep(0.1)
        handle.cancel()
        final = handle.wait(timeout=120, raise_on_failure=False)
    finally:
        stack.sandbox.config.latency_seconds = 0.0
    assert final["state"] == "cancelled"
    loaded = final["tables"][0]["loaded"]
    time.sleep(2)
    assert handle.status()["tables"][0]["loaded"] == loaded
    assert 0 < loaded < 20000
    assert not [t for t in stack.warehouse.list_tables() if t.startswith("_conveyor_stage")]


def test_no_message_holds_more_than_a_batch_and_none_holds_the_token(stack):
    if type(stack.warehouse) is not SQLiteWarehouse:
        pytest.skip("what crosses the broker does not depend on the warehouse; once is enough")
    from tests.conftest import TEST_REDIS_URL
    from tests.support.fixtures import TOKEN
    from tests.support.traffic import BrokerTap, most_records, scan_values

    with BrokerTap(TEST_REDIS_URL) as tap:
        handle = enqueue(etl(stack), tables=["Orders"], drop_tables=True)
        mid_run = ""
        while handle.status()["state"] not in ("succeeded", "failed"):
            if not mid_run and handle.status()["tables"] and handle.status()["tables"][0]["loaded"]:
                mid_run = scan_values(TEST_REDIS_URL)
            time.sleep(0.05)
    assert handle.status()["state"] == "succeeded"
    payloads = tap.payloads()
    # (a load message names its batch; the records cross once, in the batch's kept copy)
    batch_messages = [p for p in payloads if most_records(p) > 0]
    assert len(batch_messages) >= 40
    assert max(most_records(p) for p in payloads) <= 500
    assert TOKEN not in tap.decoded_text()
    assert mid_run and TOKEN not in mid_run
    assert TOKEN not in scan_values(TEST_REDIS_URL)
